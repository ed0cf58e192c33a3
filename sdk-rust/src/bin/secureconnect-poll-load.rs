//! Poll load scenario: one group whose members all keep an event stream open, all voting on
//! one poll within a short window. Reports votes per second, p50/p99 vote latency, and the
//! tally updates each member's stream received per second (what coalescing keeps small),
//! and checks that the final tally counts every vote.
//!
//! ```sh
//! secureconnect-poll-load --endpoint http://127.0.0.1:50051 --members 500 --window 2
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use rand::Rng;
use secureconnect_sdk::{
    Client,
    proto::{
        auth::v1::RegisterRequest,
        conversation::v1::{AddMembersRequest, ConversationType, CreateConversationRequest},
        event::v1::{SubscribeRequest, subscribe_response::Event},
        poll::v1::{CastVoteRequest, GetPollRequest, PollSettings},
    },
};

#[derive(Parser, Debug)]
#[command(about = "Poll load scenario for SecureConnect")]
struct Args {
    /// Node to connect to; repeat for several nodes (members are spread round-robin).
    #[arg(long = "endpoint", default_value = "http://127.0.0.1:50051")]
    endpoints: Vec<String>,
    /// Group members, all subscribed and all voting (the creator included).
    #[arg(long, default_value_t = 500)]
    members: usize,
    /// Seconds over which the votes are spread (each member at a random moment).
    #[arg(long, default_value_t = 2.0)]
    window: f64,
    /// Seconds to keep listening after the last vote (for the last tally updates).
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
}

/// p50, p99 and max of `samples` (µs), in ms.
fn percentiles(samples: &mut [u64]) -> [f64; 3] {
    samples.sort_unstable();
    [0.50, 0.99, 1.0].map(|p| {
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
    let members = args.members.max(2);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..8];
    eprintln!("registering {members} members…");
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for i in 0..members {
        let client = Client::connect(args.endpoints[i % args.endpoints.len()].clone()).await?;
        let registered = client
            .auth()
            .register(RegisterRequest {
                email: format!("voter{i}.{run}@example.com"),
                password: "poll-load-password".into(),
                username: format!("p{run}v{i}"),
                ..Default::default()
            })
            .await?
            .into_inner();
        client.set_access_token(registered.tokens.map(|t| t.access_token));
        clients.push(client);
        ids.push(registered.user_id);
    }
    let group = clients[0]
        .conversations()
        .create_conversation(CreateConversationRequest {
            r#type: ConversationType::Group.into(),
            title: format!("poll load {run}"),
            member_user_ids: ids[1..2].to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .conversation
        .ok_or("no conversation")?
        .conversation_id;
    for chunk in ids[2..].chunks(256) {
        clients[0]
            .conversations()
            .add_members(AddMembersRequest {
                conversation_id: group.clone(),
                user_ids: chunk.to_vec(),
            })
            .await?;
    }
    let poll = clients[0]
        .create_poll(
            &group,
            "Where to?",
            ["North", "South", "East", "West"],
            PollSettings {
                allow_vote_changes: true,
                ..Default::default()
            },
        )
        .await?;

    eprintln!("opening {members} event streams…");
    let tallies = Arc::new(AtomicU64::new(0));
    for client in &clients {
        let mut stream = client
            .events()
            .subscribe(SubscribeRequest::default())
            .await?
            .into_inner();
        let tallies = Arc::clone(&tallies);
        tokio::spawn(async move {
            while let Ok(Some(item)) = stream.message().await {
                if let Some(Event::PollTally(_)) = item.event {
                    tallies.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    tallies.store(0, Ordering::Relaxed);

    eprintln!("{members} votes within {} s…", args.window);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in &clients {
        let client = client.clone();
        let delay = Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..args.window));
        let option = poll.options[rand::thread_rng().gen_range(0..poll.options.len())]
            .option_id
            .clone();
        let poll_id = poll.poll_id.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let sent = Instant::now();
            let result = client
                .polls()
                .cast_vote(CastVoteRequest {
                    poll_id,
                    option_ids: vec![option],
                })
                .await;
            (
                result.is_ok(),
                u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX),
            )
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    for task in tasks {
        let (ok, micros) = task.await?;
        if ok {
            latencies.push(micros);
        } else {
            failed += 1;
        }
    }
    let voting = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let listened = started.elapsed().as_secs_f64();
    let received = tallies.load(Ordering::Relaxed);

    let last = clients[0]
        .polls()
        .get_poll(GetPollRequest {
            poll_id: poll.poll_id.clone(),
        })
        .await?
        .into_inner()
        .poll
        .and_then(|p| p.results)
        .ok_or("no results")?;
    let counted: u32 = last.counts.iter().map(|c| c.votes).sum();
    let [p50, p99, max] = percentiles(&mut latencies);
    println!(
        "members: {members}, votes ok: {}, failed: {failed}",
        latencies.len()
    );
    println!(
        "votes/s: {:.0} (all votes in {voting:.2} s)",
        latencies.len() as f64 / voting
    );
    println!("vote latency ms: p50 {p50:.1}, p99 {p99:.1}, max {max:.1}");
    println!(
        "tally updates: {received} in all, {:.1} per member, {:.2} per member per second over {listened:.1} s",
        received as f64 / members as f64,
        received as f64 / members as f64 / listened
    );
    println!(
        "final tally: {} voters, {counted} votes (expected {})",
        last.total_voters,
        latencies.len()
    );
    if u64::from(last.total_voters) != latencies.len() as u64 {
        return Err("the final tally does not count every vote".into());
    }
    Ok(())
}
