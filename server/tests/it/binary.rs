//! The shipped binary, as the README runs it: `secureconnect serve` with no configuration
//! starts the embedded default, keeps its state in `./data`, and stops cleanly on SIGTERM:
//! start-up stages logged, then after the drain its background tasks stopped in order.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use secureconnect_sdk::{
    Client,
    proto::{
        auth::v1::{LoginRequest, RegisterRequest},
        user::v1::GetCurrentUserRequest,
    },
};

/// The server's log lines, as they come.
type Log = Arc<Mutex<Vec<String>>>;

/// Starts the binary in `dir` and returns it with the address it reports and its log.
fn start(dir: &Path) -> (Child, String, Log) {
    start_logging(dir, "info")
}

/// [`start`] with the log at `level` (`RUST_LOG`).
fn start_logging(dir: &Path, level: &str) -> (Child, String, Log) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secureconnect"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("RUST_LOG", level)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn secureconnect");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let log: Log = Arc::default();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server exited before serving");
        };
        log.lock().expect("log").push(line.clone());
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep reading the log so the server never blocks on a full pipe.
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().expect("log").push(line);
        }
    });
    (child, format!("http://{addr}"), log)
}

/// SIGTERM, then wait (yielding, so this test's own client connections can see the
/// server's GOAWAY and close) for a clean exit.
async fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..100 {
        if let Some(exit) = child.try_wait().expect("wait") {
            assert!(exit.success(), "server exited with {exit}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not stop within 10 s of SIGTERM");
}

#[tokio::test]
async fn serve_runs_the_embedded_default_and_keeps_state_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, endpoint, log) = start(dir.path());
    let client = Client::connect(endpoint).await.expect("connect");
    let registered = client
        .auth()
        .register(RegisterRequest {
            email: "ann@example.com".into(),
            password: "correct horse".into(),
            username: "ann".into(),
            ..Default::default()
        })
        .await
        .expect("register")
        .into_inner();
    let token = registered.tokens.expect("tokens").access_token;
    stop(server).await;
    assert_in_order(
        &log,
        &[
            "configuration loaded",
            "database connected and migrated",
            "token signing key loaded",
            "background tasks started",
            "SecureConnect is serving",
            "stopping background tasks",
            "stopped poll closing",
            "stopped upload expiry",
            "stopped feed trimming",
            "stopped health watch",
            "stopped revocation follower",
        ],
    );
    assert!(dir.path().join("data/secureconnect.db").exists());
    assert!(dir.path().join("data/biscuit-root-key.pem").exists());

    // Same data dir: the account and the signing key survive, so the old token still works.
    let (server, endpoint, _) = start(dir.path());
    let client = Client::connect(endpoint).await.expect("connect");
    client.set_access_token(Some(token));
    let me = client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect("old token valid");
    assert_eq!(me.into_inner().user.expect("user").username, "ann");
    let login = LoginRequest {
        email: "ann@example.com".into(),
        password: "correct horse".into(),
        device: None,
    };
    client
        .auth()
        .login(login)
        .await
        .expect("login after restart");
    stop(server).await;
}

/// Each of `expected` appears in the log, in this order (waiting a moment for the reader
/// thread to take in the last lines of a server that just exited).
fn assert_in_order(log: &Log, expected: &[&str]) {
    let missing = |lines: &[String]| {
        let mut from = 0;
        for wanted in expected {
            match lines[from..].iter().position(|line| line.contains(wanted)) {
                Some(at) => from += at + 1,
                None => return Some((*wanted, from)),
            }
        }
        None
    };
    for _ in 0..50 {
        if missing(&log.lock().expect("log")).is_none() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = log.lock().expect("log").clone();
    if let Some((wanted, from)) = missing(&lines) {
        panic!(
            "log lacks {wanted:?} after line {from}:\n{}",
            lines.join("\n")
        );
    }
}

/// An anonymous poll's voters appear in no log line, even at `debug` (where every refused
/// call is logged with its message).
#[tokio::test]
async fn anonymous_votes_leave_no_voter_in_the_log() {
    use secureconnect_sdk::proto::{
        conversation::v1::{ConversationType, CreateConversationRequest},
        poll::v1::{CastVoteRequest, ListPollVotersRequest, PollSettings},
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, endpoint, log) = start_logging(dir.path(), "debug");
    let mut people = Vec::new();
    for name in ["ann", "bob", "carol"] {
        let client = Client::connect(endpoint.clone()).await.expect("connect");
        let session = client
            .register(RegisterRequest {
                email: format!("{name}@example.com"),
                password: "correct horse".into(),
                username: name.into(),
                ..Default::default()
            })
            .await
            .expect("register");
        people.push((client, session.user_id));
    }
    let (ann, _) = &people[0];
    let group = ann
        .conversations()
        .create_conversation(CreateConversationRequest {
            r#type: ConversationType::Group.into(),
            title: "secret ballot".into(),
            member_user_ids: people[1..].iter().map(|(_, id)| id.clone()).collect(),
            ..Default::default()
        })
        .await
        .expect("group")
        .into_inner()
        .conversation
        .expect("conversation");
    let poll = ann
        .create_poll(
            &group.conversation_id,
            "Chair?",
            ["Bob", "Carol"],
            PollSettings {
                anonymous: true,
                ..Default::default()
            },
        )
        .await
        .expect("poll");
    let before_votes = log.lock().expect("log").len();
    for (i, (voter, _)) in people[1..].iter().enumerate() {
        let vote = CastVoteRequest {
            poll_id: poll.poll_id.clone(),
            option_ids: vec![poll.options[i].option_id.clone()],
        };
        voter.polls().cast_vote(vote.clone()).await.expect("vote");
        // Refused (votes are final): logged at debug with its message.
        assert!(voter.polls().cast_vote(vote).await.is_err());
    }
    let listed = ann
        .polls()
        .list_poll_voters(ListPollVotersRequest {
            poll_id: poll.poll_id.clone(),
            ..Default::default()
        })
        .await;
    assert!(listed.is_err(), "anonymous: no voter list");
    stop(server).await;
    let log = log.lock().expect("log");
    let after: Vec<&String> = log[before_votes..].iter().collect();
    assert!(
        after.iter().any(|line| line.contains("call failed")),
        "the refused calls were logged: {after:#?}"
    );
    for (_, voter) in &people[1..] {
        for line in &after {
            assert!(
                !line.contains(voter.as_str()),
                "a voter's id in the log: {line}"
            );
        }
    }
}
