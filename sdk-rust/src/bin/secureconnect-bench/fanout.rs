//! One publisher, N subscribers of one conversation (a Centrifugo channel): server CPU
//! per delivered event and send→deliver latency.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use secureconnect_sdk::proto::{
    event::v1::{SubscribeRequest, conversation_event::Change, subscribe_response::Event},
    message::v1::{MessageContent, SendMessageRequest, message_content::Body},
};

use crate::{
    Target, centrifugo,
    report::{self, Clock, Deliveries},
    secureconnect::{self, BoxError},
    server_stats::ServerStats,
    streams,
};

/// Streams opened at once while setting up.
const OPENING_AT_ONCE: usize = 32;
/// How long deliveries may trail the last send before the run counts what it has.
const DRAIN: Duration = Duration::from_secs(5);
const CHANNEL: &str = "bench";

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Streams following the conversation (the publisher is not one of them).
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Messages published per second.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// Seconds to publish for.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

/// Sends one message stamped with its send time.
enum Publisher {
    Secureconnect {
        client: secureconnect_sdk::Client,
        conversation_id: String,
    },
    Centrifugo(centrifugo::Api),
}

impl Publisher {
    async fn publish(&self, n: u64, sent_us: u64) -> Result<(), tonic::Status> {
        let text = format!("load message {n}");
        match self {
            Publisher::Secureconnect {
                client,
                conversation_id,
            } => {
                let request = SendMessageRequest {
                    conversation_id: conversation_id.clone(),
                    content: Some(MessageContent {
                        body: Some(Body::Text(text)),
                    }),
                    metadata: [("t".to_owned(), sent_us.to_string())].into(),
                    request_id: format!("m{n}"),
                    ..Default::default()
                };
                client.messages().send_message(request).await.map(drop)
            }
            Publisher::Centrifugo(api) => {
                let data = serde_json::json!({ "text": text, "t": sent_us });
                api.clone()
                    .publish(CHANNEL, data.to_string().into_bytes())
                    .await
            }
        }
    }
}

pub async fn run(
    target: &Target,
    server: ServerStats,
    options: Options,
) -> Result<report::Result, BoxError> {
    let clock = Clock::start();
    let deliveries = Arc::new(Deliveries::default());
    eprintln!(
        "{}: opening {} subscriber streams…",
        target.name(),
        options.subscribers
    );
    let publisher = match target {
        Target::Secureconnect { endpoint } => {
            secureconnect_streams(endpoint, options.subscribers, clock, &deliveries).await?
        }
        Target::Centrifugo {
            endpoint,
            api,
            api_key,
            secret,
        } => {
            centrifugo_streams(endpoint, secret, options.subscribers, clock, &deliveries).await?;
            Publisher::Centrifugo(centrifugo::Api::new(
                secureconnect::connect(api).await?,
                api_key,
            )?)
        }
    };
    let publisher = Arc::new(publisher);
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!(
        "publishing {} msg/s for {} s…",
        options.rate, options.duration
    );
    let cpu_before = server.cpu_seconds()?;
    let published = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / options.rate.max(1) as f64);
    let begin = tokio::time::Instant::now();
    let mut sends = Vec::new();
    for n in 0..options.rate * options.duration {
        tokio::time::sleep_until(begin + interval.mul_f64(n as f64)).await;
        let (publisher, published, failed) = (
            Arc::clone(&publisher),
            Arc::clone(&published),
            Arc::clone(&failed),
        );
        sends.push(tokio::spawn(async move {
            match publisher.publish(n, clock.now_us()).await {
                Ok(()) => published.fetch_add(1, Ordering::Relaxed),
                Err(status) => {
                    if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("first failed publish: {status}");
                    }
                    0
                }
            };
        }));
    }
    futures::future::join_all(sends).await;
    let published = published.load(Ordering::Relaxed);
    let expected = published * options.subscribers as u64;
    let drain_until = tokio::time::Instant::now() + DRAIN;
    while deliveries.count() < expected && tokio::time::Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = server.cpu_seconds()? - cpu_before;
    let delivered = deliveries.count();
    let [p50, p99, max] = deliveries.percentiles_ms();
    let cpu_ms_per_1000 = cpu * 1_000_000.0 / delivered.max(1) as f64;
    // With no subscribers, what publishing alone costs (a persisted send, for SecureConnect).
    let cpu_ms_per_1000_published = cpu * 1_000_000.0 / published.max(1) as f64;
    Ok(report::Result::new("fanout", target.name())
        .with("subscribers", options.subscribers)
        .with("rate", options.rate)
        .with("published", published)
        .with("publish_errors", failed.load(Ordering::Relaxed))
        .with("delivered", delivered)
        .with("expected", expected)
        .with_f("cpu_s", cpu, 2)
        .with_f("cpu_ms_per_1000", cpu_ms_per_1000, 1)
        .with_f("cpu_ms_per_1000_published", cpu_ms_per_1000_published, 1)
        .with_f("p50_ms", p50, 1)
        .with_f("p99_ms", p99, 1)
        .with_f("max_ms", max, 1)
        .with_f("rss_mib", server.rss_bytes()? as f64 / 1048576.0, 1))
}

/// Registers a publisher and `subscribers` members of one group, opens each member's
/// event stream (live) on its own connection and records the messages they receive.
async fn secureconnect_streams(
    endpoint: &str,
    subscribers: usize,
    clock: Clock,
    deliveries: &Arc<Deliveries>,
) -> Result<Publisher, BoxError> {
    let mut accounts = secureconnect::accounts(endpoint, subscribers + 1).await?;
    let conversation_id = secureconnect::group(&accounts).await?;
    let members = accounts.split_off(1);
    streams::open_all(members, OPENING_AT_ONCE, |member, mut live| {
        let deliveries = Arc::clone(deliveries);
        async move {
            let mut events = member
                .client
                .events()
                .subscribe(SubscribeRequest::default())
                .await?
                .into_inner();
            tokio::spawn(async move {
                let _client = member.client;
                while let Ok(Some(item)) = events.message().await {
                    match item.event {
                        Some(Event::CaughtUp(_)) => live.report().await,
                        Some(Event::ConversationEvent(event)) => {
                            if let Some(Change::MessageSent(message)) = event.change
                                && let Some(sent) = message.metadata.get("t")
                                && let Ok(sent_us) = sent.parse()
                            {
                                deliveries.record(sent_us, clock.now_us());
                            }
                        }
                        _ => {}
                    }
                }
            });
            Ok(())
        }
    })
    .await?;
    let publisher = accounts.pop().ok_or("no publisher")?;
    Ok(Publisher::Secureconnect {
        client: publisher.client,
        conversation_id,
    })
}

/// Opens `subscribers` unidirectional streams on the bench channel, each on its own
/// connection, and records the publications they receive.
async fn centrifugo_streams(
    endpoint: &str,
    secret: &str,
    subscribers: usize,
    clock: Clock,
    deliveries: &Arc<Deliveries>,
) -> Result<(), BoxError> {
    let tokens = (0..subscribers)
        .map(|i| centrifugo::connection_token(secret, &format!("u{i}"), &[CHANNEL]))
        .collect();
    streams::open_all(tokens, OPENING_AT_ONCE, |token, mut live| {
        let deliveries = Arc::clone(deliveries);
        async move {
            let connection = secureconnect::connect(endpoint).await?;
            let mut pushes = centrifugo::consume(connection, token).await?;
            tokio::spawn(async move {
                while let Ok(Some(push)) = pushes.message().await {
                    if push.connect.is_some() {
                        live.report().await;
                    }
                    if let Some(disconnect) = push.disconnect {
                        eprintln!("disconnected: {} {}", disconnect.code, disconnect.reason);
                    }
                    if let Some(publication) = push.publication
                        && let Some(sent_us) = centrifugo::sent_us(&publication.data)
                    {
                        deliveries.record(sent_us, clock.now_us());
                    }
                }
            });
            Ok(())
        }
    })
    .await?;
    Ok(())
}
