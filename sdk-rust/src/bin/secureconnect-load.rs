//! Load generator: drives running SecureConnect nodes the way apps do and reports send and
//! delivery throughput and send→deliver latency.
//!
//! ```sh
//! secureconnect-load --endpoint http://127.0.0.1:50051 --users 60 --conversations 10 \
//!     --rate 200 --duration 20
//! ```
//! Users are spread round-robin over the `--endpoint`s (several nodes: cross-node
//! delivery); each subscribes to its event stream, and messages carry their send time so
//! receivers measure latency on one clock (this process).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use secureconnect_sdk::{
    Client,
    proto::{
        auth::v1::RegisterRequest,
        conversation::v1::{ConversationType, CreateConversationRequest},
        event::v1::{SubscribeRequest, conversation_event::Change, subscribe_response::Event},
        message::v1::{
            ListMessagesRequest, MessageContent, SendMessageRequest, message_content::Body,
        },
    },
};
use tokio::sync::Mutex;

#[derive(Parser, Debug)]
#[command(about = "Load generator for SecureConnect")]
struct Args {
    /// Node to connect to; repeat for several nodes (users are spread round-robin).
    #[arg(long = "endpoint", default_value = "http://127.0.0.1:50051")]
    endpoints: Vec<String>,
    /// Users to register.
    #[arg(long, default_value_t = 60)]
    users: usize,
    /// Group conversations; users are spread evenly over them.
    #[arg(long, default_value_t = 10)]
    conversations: usize,
    /// Messages per second to send, in total.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Seconds to send for.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Users that keep an event stream open (the first N).
    #[arg(long)]
    subscribers: Option<usize>,
    /// History reads per second while sending, in total: `ListMessages`, newest 50 of the
    /// reader's conversation (0: none).
    #[arg(long, default_value_t = 0)]
    reads: u64,
}

struct User {
    client: Client,
    conversation: String,
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    send_errors: AtomicU64,
    delivered: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    read_errors: AtomicU64,
    read_latencies_us: Mutex<Vec<u64>>,
}

/// p50, p90, p99 and max of `samples` (µs), in ms.
fn percentiles(samples: &mut [u64]) -> [f64; 4] {
    samples.sort_unstable();
    [0.50, 0.90, 0.99, 1.0].map(|p| {
        if samples.is_empty() {
            return f64::NAN;
        }
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[index] as f64 / 1000.0
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..8];
    let groups = args.conversations.max(1);
    eprintln!(
        "registering {} users on {} node(s)…",
        args.users,
        args.endpoints.len()
    );
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for i in 0..args.users {
        let client = Client::connect(args.endpoints[i % args.endpoints.len()].clone()).await?;
        let response = client
            .auth()
            .register(RegisterRequest {
                email: format!("load{i}.{run}@example.com"),
                password: "load-test-password".into(),
                username: format!("l{run}u{i}"),
                ..Default::default()
            })
            .await?
            .into_inner();
        client.set_access_token(response.tokens.map(|t| t.access_token));
        clients.push(client);
        ids.push(response.user_id);
    }
    let mut conversation_of = vec![String::new(); args.users];
    for g in 0..groups {
        let members: Vec<usize> = (0..args.users).filter(|i| i % groups == g).collect();
        let Some(&owner) = members.first() else {
            continue;
        };
        let conversation = clients[owner]
            .conversations()
            .create_conversation(CreateConversationRequest {
                r#type: ConversationType::Group.into(),
                member_user_ids: members[1..].iter().map(|&i| ids[i].clone()).collect(),
                title: format!("load {g}"),
                ..Default::default()
            })
            .await?
            .into_inner()
            .conversation
            .ok_or("no conversation")?;
        for &i in &members {
            conversation_of[i] = conversation.conversation_id.clone();
        }
    }
    let users: Vec<User> = clients
        .into_iter()
        .zip(conversation_of)
        .map(|(client, conversation)| User {
            client,
            conversation,
        })
        .collect();

    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let subscribers = args.subscribers.unwrap_or(args.users).min(args.users);
    for user in users.iter().take(subscribers) {
        let mut stream = user
            .client
            .events()
            .subscribe(SubscribeRequest::default())
            .await?
            .into_inner();
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            while let Ok(Some(item)) = stream.message().await {
                let Some(Event::ConversationEvent(event)) = item.event else {
                    continue;
                };
                let Some(Change::MessageSent(message)) = event.change else {
                    continue;
                };
                let Some(sent_us) = message
                    .metadata
                    .get("t")
                    .and_then(|t| t.parse::<u64>().ok())
                else {
                    continue;
                };
                let now_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                stats
                    .latencies_us
                    .lock()
                    .await
                    .push(now_us.saturating_sub(sent_us));
            }
        });
    }
    // Let the streams settle before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    eprintln!("sending {} msg/s for {} s…", args.rate, args.duration);
    let users = Arc::new(users);
    let readers = (args.reads > 0).then(|| {
        tokio::spawn(read_history(
            Arc::clone(&users),
            Arc::clone(&stats),
            args.reads,
            args.duration,
        ))
    });
    let total = args.rate * args.duration;
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let send_start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..total {
        let due = send_start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let users = Arc::clone(&users);
        let stats = Arc::clone(&stats);
        tasks.push(tokio::spawn(async move {
            let user = &users[(n as usize) % users.len()];
            let sent_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            let request = SendMessageRequest {
                conversation_id: user.conversation.clone(),
                content: Some(MessageContent {
                    body: Some(Body::Text(format!("load message {n}"))),
                }),
                metadata: [("t".to_owned(), sent_us.to_string())].into(),
                request_id: format!("m{n}"),
                ..Default::default()
            };
            match user.client.messages().send_message(request).await {
                Ok(_) => stats.sent.fetch_add(1, Ordering::Relaxed),
                Err(_) => stats.send_errors.fetch_add(1, Ordering::Relaxed),
            };
        }));
    }
    futures::future::join_all(tasks).await;
    let send_secs = send_start.elapsed().as_secs_f64();
    if let Some(readers) = readers {
        readers.await?;
    }
    // Give the last deliveries a moment to land.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent = stats.sent.load(Ordering::Relaxed);
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let [p50, p90, p99, max] = percentiles(&mut stats.latencies_us.lock().await);
    let members_per_group = args.users as f64 / groups as f64;
    let expected = sent as f64 * members_per_group * subscribers as f64 / args.users as f64;
    println!(
        "nodes={} users={} conversations={} subscribers={}",
        args.endpoints.len(),
        args.users,
        groups,
        subscribers
    );
    println!(
        "sent={sent} send_errors={} sends/s={:.0}",
        stats.send_errors.load(Ordering::Relaxed),
        sent as f64 / send_secs
    );
    println!(
        "delivered={delivered} (expected≈{expected:.0}) deliveries/s={:.0}",
        delivered as f64 / send_secs
    );
    println!("send→deliver latency ms: p50={p50:.1} p90={p90:.1} p99={p99:.1} max={max:.1}");
    if args.reads > 0 {
        let mut reads = stats.read_latencies_us.lock().await;
        let done = reads.len();
        let [p50, p90, p99, max] = percentiles(&mut reads);
        println!(
            "history reads={done} read_errors={} latency ms: p50={p50:.1} p90={p90:.1} p99={p99:.1} max={max:.1}",
            stats.read_errors.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

/// `rate` `ListMessages` calls per second for `duration` seconds, spread over the users.
async fn read_history(users: Arc<Vec<User>>, stats: Arc<Stats>, rate: u64, duration: u64) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..rate * duration {
        tokio::time::sleep_until((begin + interval.mul_f64(n as f64)).into()).await;
        let (users, stats) = (Arc::clone(&users), Arc::clone(&stats));
        tasks.push(tokio::spawn(async move {
            let user = &users[users.len() - 1 - (n as usize) % users.len()];
            let asked = Instant::now();
            let request = ListMessagesRequest {
                conversation_id: user.conversation.clone(),
                page_size: 50,
                ..Default::default()
            };
            match user.client.messages().list_messages(request).await {
                Ok(_) => {
                    let took = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
                    stats.read_latencies_us.lock().await.push(took);
                }
                Err(_) => {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    futures::future::join_all(tasks).await;
}
