//! Unary calls at a fixed concurrency: `grpc.health.v1.Health/Check` (the floor: a bare
//! RPC through the same server), `SendMessage` into a 6-member group and `ListMessages`
//! (newest 50), each measured alone on the same connections.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::uri::PathAndQuery;
use secureconnect_sdk::proto::message::v1::{
    ListMessagesRequest, MessageContent, SendMessageRequest, message_content::Body,
};
use tonic::{Request, Status, client::Grpc};
use tonic_prost::ProstCodec;

use crate::{
    Target, report,
    secureconnect::{self, Account, BoxError},
    server_stats::ServerStats,
};

const GROUP_MEMBERS: usize = 6;
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// Messages per `ListMessages` page.
const LIST_PAGE: i32 = 50;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Calls in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per call kind.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// The call kinds to run, in order (one alone is handy under a profiler).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Call::Health, Call::Send, Call::List])]
    calls: Vec<Call>,
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Call {
    Health,
    Send,
    List,
}

/// One call kind's run.
struct Phase {
    per_second: f64,
    cpu_us_per_call: f64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run(
    target: &Target,
    server: ServerStats,
    options: Options,
) -> Result<report::Result, BoxError> {
    let Target::Secureconnect { endpoint } = target else {
        return Err("the unary scenario drives SecureConnect only".into());
    };
    let accounts = Arc::new(secureconnect::accounts(endpoint, GROUP_MEMBERS).await?);
    let conversation_id: Arc<str> = secureconnect::group(&accounts).await?.into();
    let mut result = report::Result::new("unary", target.name())
        .with("concurrency", options.concurrency)
        .with("connections", GROUP_MEMBERS);
    let (mut health, mut send) = (None, None);
    for &call in &options.calls {
        // A page of an empty conversation costs a fraction of a full one: measure full pages.
        if call == Call::List && send.is_none() {
            seed(&accounts[0], &conversation_id).await?;
        }
        let name = match call {
            Call::Health => "health",
            Call::Send => "send",
            Call::List => "list",
        };
        eprintln!(
            "{name}: {} s at {} in flight…",
            options.duration, options.concurrency
        );
        let phase = measure(call, &accounts, &conversation_id, server, &options).await?;
        match call {
            Call::Health => health = Some(phase.per_second),
            Call::Send => send = Some(phase.per_second),
            Call::List => {}
        }
        result = result
            .with_f(format!("{name}_per_s"), phase.per_second, 0)
            .with_f(format!("{name}_cpu_us"), phase.cpu_us_per_call, 0)
            .with(format!("{name}_errors"), phase.errors)
            .with_f(format!("{name}_p50_ms"), phase.p50_ms, 2)
            .with_f(format!("{name}_p99_ms"), phase.p99_ms, 2);
    }
    if let (Some(health), Some(send)) = (health, send) {
        result = result.with_f("send_per_health", send / health.max(f64::MIN_POSITIVE), 3);
    }
    Ok(result)
}

async fn measure(
    call: Call,
    accounts: &Arc<Vec<Account>>,
    conversation_id: &Arc<str>,
    server: ServerStats,
    options: &Options,
) -> Result<Phase, BoxError> {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = server.cpu_seconds()?;
    let begin = Instant::now();
    let until = begin + Duration::from_secs(options.duration);
    let workers: Vec<_> = (0..options.concurrency)
        .map(|worker| {
            let (accounts, conversation_id) = (Arc::clone(accounts), Arc::clone(conversation_id));
            let (done, errors) = (Arc::clone(&done), Arc::clone(&errors));
            tokio::spawn(async move {
                let account = &accounts[worker % accounts.len()];
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < until {
                    n += 1;
                    let asked = Instant::now();
                    let answer = once(call, account, &conversation_id, worker, n).await;
                    latencies.push(u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX));
                    match answer {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(status) => {
                            if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first {call:?} error: {status}");
                            }
                            0
                        }
                    };
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let seconds = begin.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds()? - cpu_before;
    let done = done.load(Ordering::Relaxed);
    let [p50_ms, p99_ms, _] = report::percentiles_ms(&mut latencies);
    Ok(Phase {
        per_second: done as f64 / seconds,
        cpu_us_per_call: cpu * 1_000_000.0 / done.max(1) as f64,
        errors: errors.load(Ordering::Relaxed),
        p50_ms,
        p99_ms,
    })
}

/// Sends a full page of messages, for a `list` run that follows no `send` run.
async fn seed(account: &Account, conversation_id: &str) -> Result<(), BoxError> {
    eprintln!("list: sending {LIST_PAGE} messages to list…");
    for n in 0..LIST_PAGE.unsigned_abs() {
        once(Call::Send, account, conversation_id, usize::MAX, n.into()).await?;
    }
    Ok(())
}

/// One call.
async fn once(
    call: Call,
    account: &Account,
    conversation_id: &str,
    worker: usize,
    n: u64,
) -> Result<(), Status> {
    match call {
        Call::Health => {
            let mut grpc = Grpc::new(account.channel.clone());
            grpc.ready()
                .await
                .map_err(|err| Status::unavailable(err.to_string()))?;
            let _: tonic::Response<HealthCheckResponse> = grpc
                .unary(
                    Request::new(HealthCheckRequest::default()),
                    PathAndQuery::from_static(HEALTH_CHECK),
                    ProstCodec::default(),
                )
                .await?;
            Ok(())
        }
        Call::Send => {
            let request = SendMessageRequest {
                conversation_id: conversation_id.to_owned(),
                content: Some(MessageContent {
                    body: Some(Body::Text(format!("bench message {worker}.{n}"))),
                }),
                request_id: format!("w{worker}n{n}"),
                ..Default::default()
            };
            account
                .client
                .messages()
                .send_message(request)
                .await
                .map(drop)
        }
        Call::List => {
            let request = ListMessagesRequest {
                conversation_id: conversation_id.to_owned(),
                page_size: LIST_PAGE,
                ..Default::default()
            };
            account
                .client
                .messages()
                .list_messages(request)
                .await
                .map(drop)
        }
    }
}
