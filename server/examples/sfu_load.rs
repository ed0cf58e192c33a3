//! SFU load scenario: `--publishers` peers send Opus audio (and, with `--video`, VP8 video)
//! at 50 frames a second each into one room, `--subscribers` peers only receive, all over
//! loopback UDP with full WebRTC (ICE, DTLS, SRTP) on str0m clients. Once every subscriber
//! receives every publisher, it measures for `--seconds`: frames forwarded per second, the
//! SFU's CPU time (its task runs alone on a thread named `sfu`, read from /proc), CPU per
//! 1,000 forwarded frames, and audio consumers (publisher→subscriber streams at 50 packets
//! a second) one core would carry at that cost. The clients run on the same machine.
//!
//! ```sh
//! cargo run --release -p secureconnect-server --example sfu_load -- --publishers 1 --subscribers 50
//! ```

// A benchmark run by hand: any failure ends it with its message, as in the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The test suite's client; this scenario does not use all of it.
#[allow(dead_code)]
#[path = "../tests/it/sfu_client.rs"]
mod sfu_client;

use std::time::{Duration, Instant};

use clap::Parser;
use secureconnect_server::sfu::{Sfu, SfuConfig};
use sfu_client::{Client, Publish};
use str0m::media::MediaKind;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(about = "SFU load scenario")]
struct Args {
    #[arg(long, default_value_t = 1)]
    publishers: u8,
    #[arg(long, default_value_t = 50)]
    subscribers: u8,
    /// Publishers also send video (1,200-byte frames, 50 a second).
    #[arg(long)]
    video: bool,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// CPU seconds used so far by this process's thread named `name`.
fn thread_cpu(name: &str) -> Option<f64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the parenthesised name; utime and stime are the 14th and 15th.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        return Some(ticks / 100.0); // USER_HZ is 100 on Linux.
    }
    None
}

/// The SFU on a thread of its own, so its CPU time is measurable apart from the clients'.
fn start_sfu() -> Sfu {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sfu".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let config = SfuConfig {
                    bind: "127.0.0.1:0".parse().expect("address"),
                    public_ip: None,
                };
                sender
                    .send(Sfu::start(config).await.expect("SFU"))
                    .expect("send");
                std::future::pending::<()>().await;
            });
        })
        .expect("SFU thread");
    receiver.recv().expect("SFU started")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let sfu = start_sfu();
    let room = Uuid::new_v4();
    let mut publishers = Vec::new();
    for tag in 1..=args.publishers {
        let publish = Publish {
            video: args.video,
            ..Publish::default()
        };
        publishers.push(Client::join_with(&sfu, room, tag, publish).await);
    }
    let mut subscribers = Vec::new();
    for i in 0..args.subscribers {
        let listen = Publish {
            audio: false,
            video: false,
            ..Publish::default()
        };
        subscribers.push(Client::join_with(&sfu, room, 100 + i, listen).await);
    }
    let everyone_hears = |subscribers: &[Client]| {
        subscribers
            .iter()
            .all(|s| (1..=args.publishers).all(|tag| s.count(tag, MediaKind::Audio) > 0))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !everyone_hears(&subscribers) {
        assert!(
            Instant::now() < deadline,
            "not every subscriber receives every publisher"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let received = |subscribers: &[Client]| -> u64 {
        subscribers
            .iter()
            .flat_map(|s| (1..=args.publishers).map(move |tag| (s, tag)))
            .map(|(s, tag)| u64::from(s.count(tag, MediaKind::Audio)))
            .sum()
    };
    let (cpu0, stats0, heard0) = (
        thread_cpu("sfu").expect("SFU thread CPU"),
        sfu.stats().await.expect("stats"),
        received(&subscribers),
    );
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let wall = started.elapsed().as_secs_f64();
    let cpu = thread_cpu("sfu").expect("SFU thread CPU") - cpu0;
    let stats = sfu.stats().await.expect("stats");
    let forwarded = stats.frames_forwarded - stats0.frames_forwarded;
    let heard = received(&subscribers) - heard0;

    let streams = u64::from(args.publishers) * u64::from(args.subscribers);
    let per_second = forwarded as f64 / wall;
    let cpu_per_1000 = cpu / forwarded.max(1) as f64 * 1000.0;
    // One audio consumer receives 50 packets a second.
    let consumers_per_core = 1.0 / (cpu_per_1000 / 1000.0 * 50.0);
    println!(
        "{} publishers ({}) x {} subscribers = {streams} streams, {} peers",
        args.publishers,
        if args.video { "audio + video" } else { "audio" },
        args.subscribers,
        stats.peers
    );
    println!("forwarded: {per_second:.0} frames/s ({forwarded} in {wall:.1} s)");
    println!(
        "subscribers received {heard} audio frames (expected about {:.0})",
        streams as f64 * 50.0 * wall
    );
    println!("SFU CPU: {cpu:.2} s ({:.0}% of a core)", cpu / wall * 100.0);
    println!(
        "SFU CPU per 1,000 forwarded frames: {:.1} ms",
        cpu_per_1000 * 1000.0
    );
    if !args.video {
        println!("audio consumers one core would carry at this cost: {consumers_per_core:.0}");
    }
    for client in publishers.into_iter().chain(subscribers) {
        let _ = client.stop.send(());
    }
}
