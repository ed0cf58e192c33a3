//! Many idle streams, each on its own connection: the server's memory per stream.

use std::time::Duration;

use secureconnect_sdk::{Client, proto::event::v1::SubscribeRequest};

use crate::{
    Target, centrifugo, report,
    secureconnect::{self, BoxError},
    server_stats::ServerStats,
    streams::{self, Live},
};

const OPENING_AT_ONCE: usize = 64;
/// Time for the server to settle (allocator, timers) before memory is read, and the
/// window over which idle CPU is measured.
const SETTLE: Duration = Duration::from_secs(5);
const IDLE_WINDOW: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Streams to open.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// SecureConnect accounts the streams belong to, round-robin (registering is slow by
    /// design: each password hash costs tens of ms). Centrifugo streams are each their own
    /// user.
    #[arg(long, default_value_t = 100)]
    users: usize,
}

pub async fn run(
    target: &Target,
    server: ServerStats,
    options: Options,
) -> Result<report::Result, BoxError> {
    let tokens = match target {
        Target::Secureconnect { endpoint } => {
            let accounts = secureconnect::accounts(endpoint, options.users.max(1)).await?;
            accounts
                .iter()
                .map(|a| a.client.access_token().ok_or("not signed in"))
                .collect::<Result<Vec<_>, _>>()?
        }
        Target::Centrifugo { secret, .. } => (0..options.streams)
            .map(|i| centrifugo::connection_token(secret, &format!("u{i}"), &["idle"]))
            .collect(),
    };
    tokio::time::sleep(SETTLE).await;
    let rss_before = server.rss_bytes()?;
    eprintln!(
        "{}: opening {} idle streams…",
        target.name(),
        options.streams
    );
    let tokens = (0..options.streams)
        .map(|i| tokens[i % tokens.len()].clone())
        .collect();
    streams::open_all(tokens, OPENING_AT_ONCE, |token, live| {
        open(target, token, live)
    })
    .await?;
    tokio::time::sleep(SETTLE).await;
    let rss_after = server.rss_bytes()?;
    let cpu_before = server.cpu_seconds()?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_cpu = server.cpu_seconds()? - cpu_before;
    let per_stream = rss_after.saturating_sub(rss_before) as f64 / options.streams.max(1) as f64;
    Ok(report::Result::new("idle", target.name())
        .with("streams", options.streams)
        .with_f("rss_before_mib", rss_before as f64 / 1048576.0, 1)
        .with_f("rss_after_mib", rss_after as f64 / 1048576.0, 1)
        .with_f("bytes_per_stream", per_stream, 0)
        .with_f(
            "idle_cpu_ms_per_s",
            idle_cpu * 1000.0 / IDLE_WINDOW.as_secs_f64(),
            1,
        ))
}

/// Opens one stream on its own connection, reports it `live` when the server says so
/// (SecureConnect: caught up; Centrifugo: connected), then reads it until it ends.
async fn open(target: &Target, token: String, mut live: Live) -> Result<(), BoxError> {
    match target {
        Target::Secureconnect { endpoint } => {
            let client = Client::from_channel(secureconnect::connect(endpoint).await?);
            client.set_access_token(Some(token));
            let mut events = client
                .events()
                .subscribe(SubscribeRequest::default())
                .await?
                .into_inner();
            tokio::spawn(async move {
                let _client = client;
                while let Ok(Some(_)) = events.message().await {
                    live.report().await;
                }
            });
        }
        Target::Centrifugo { endpoint, .. } => {
            let mut pushes =
                centrifugo::consume(secureconnect::connect(endpoint).await?, token).await?;
            tokio::spawn(async move {
                while let Ok(Some(push)) = pushes.message().await {
                    if push.connect.is_some() {
                        live.report().await;
                    }
                }
            });
        }
    }
    Ok(())
}
