//! Memory benchmark for password hashing: how much a running server's resident memory
//! grows with registrations and during a burst of concurrent sign-ins, and whether it
//! comes back down. Reads the server's RSS from `/proc/<pid>/status` (same machine).
//!
//! ```sh
//! secureconnect-sign-in-burst --endpoint http://127.0.0.1:50051 --server-pid $PID \
//!     --registrations 100 --burst 200
//! ```
//! Run the server with a sign-in limit above the burst (e.g.
//! `SECURECONNECT_AUTH__LOGIN_ATTEMPTS_PER_MINUTE=1000`), or the per-address limit answers
//! most of the burst before any hashing. Goals (issue 7): RSS below 150 MB during 200 concurrent sign-ins; idle RSS after 100
//! registrations within 2× the fresh-start figure.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use clap::Parser;
use secureconnect_sdk::{
    Client,
    proto::{
        auth::v1::{LoginRequest, RegisterRequest},
        types::v1::ErrorReason,
    },
};

#[derive(Parser, Debug)]
#[command(about = "Sign-in memory benchmark for SecureConnect")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// The server process to watch (it must run on this machine).
    #[arg(long)]
    server_pid: u32,
    /// Accounts to register first, one after another.
    #[arg(long, default_value_t = 100)]
    registrations: usize,
    /// Concurrent sign-ins (with unknown emails) in the burst.
    #[arg(long, default_value_t = 200)]
    burst: usize,
    /// Seconds to wait before reading the idle figures.
    #[arg(long, default_value_t = 5)]
    settle: u64,
}

/// Resident set size of `pid`, in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let settle = Duration::from_secs(args.settle);
    let fresh = rss_mb(args.server_pid);
    println!("fresh RSS: {fresh:.1} MB");

    let client = Client::connect(args.endpoint.clone()).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..args.registrations {
        let request = RegisterRequest {
            email: format!("bench{i}-{}@example.com", &run[..8]),
            password: "correct horse battery".into(),
            username: format!("b{i}_{}", &run[..8]),
            ..Default::default()
        };
        register_with_retry(&client, request).await?;
    }
    tokio::time::sleep(settle).await;
    let after_registrations = rss_mb(args.server_pid);
    println!(
        "idle RSS after {} registrations: {after_registrations:.1} MB ({:.2}× fresh)",
        args.registrations,
        after_registrations / fresh
    );

    // Sample RSS every 10 ms while the burst runs.
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (Arc::clone(&peak), Arc::clone(&done), args.server_pid);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let kb = (rss_mb(pid) * 1024.0) as u64;
                peak.fetch_max(kb, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let calls: Vec<_> = (0..args.burst)
        .map(|i| {
            let client = client.clone();
            let email = format!("nobody{i}-{}@example.com", &run[..8]);
            tokio::spawn(async move {
                client
                    .auth()
                    .login(LoginRequest {
                        email,
                        password: "wrong password".into(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    let (mut refused_credentials, mut busy, mut rate_limited, mut other) = (0, 0, 0, 0);
    for call in calls {
        match call.await? {
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                refused_credentials += 1
            }
            Err(status) => match secureconnect_sdk::error_reason(&status) {
                Some(ErrorReason::ServerBusy) => busy += 1,
                Some(ErrorReason::RateLimited) => rate_limited += 1,
                _ => other += 1,
            },
            Ok(()) => other += 1,
        }
    }
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let peak_mb = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    println!(
        "burst of {}: peak RSS {peak_mb:.1} MB; answered: {refused_credentials} wrong credentials, {busy} server busy, {rate_limited} rate limited, {other} other",
        args.burst
    );
    tokio::time::sleep(settle).await;
    let idle = rss_mb(args.server_pid);
    println!("idle RSS {}s after the burst: {idle:.1} MB", args.settle);
    Ok(())
}

/// Registers, waiting out `SERVER_BUSY` refusals.
async fn register_with_retry(
    client: &Client,
    request: RegisterRequest,
) -> Result<(), tonic::Status> {
    loop {
        match client.auth().register(request.clone()).await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => return Err(status),
        }
    }
}
