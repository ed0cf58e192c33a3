//! `kill -9` of a real server process under a steady send load: clients of the dead node
//! reconnect to another node with their cursor and lose nothing.
//!
//! Ignored in the embedded pass; `deploy/local/test.sh` runs it on its services pass.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::common::*;
use secureconnect_sdk::{
    Client,
    proto::{
        event::v1::{SubscribeRequest, conversation_event::Change},
        message::v1::SendMessageRequest,
    },
};

/// A `secureconnect serve` process on the shared database and Redis.
fn spawn_node(dir: &std::path::Path, database: &str, redis: &str, key: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secureconnect"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("SECURECONNECT_DATABASE__URL", database)
        .env("SECURECONNECT_REDIS__URL", redis)
        .env(
            "SECURECONNECT_CQL__CONTACT_POINTS",
            crate::common::cql_config()
                .contact_points
                .unwrap_or_default(),
        )
        .env(
            "SECURECONNECT_CQL__KEYSPACE",
            crate::common::cql_config().keyspace,
        )
        .env("SECURECONNECT_CQL__REPLICATION_FACTOR", "1")
        .env("SECURECONNECT_AUTH__ROOT_KEY_FILE", key)
        .env("SECURECONNECT_LIMITS__MESSAGES_PER_SECOND", "1000")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn secureconnect");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.split("addr=").nth(1) {
                    break rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node exited before serving");
            }
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{addr}"))
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (SC_TEST_POSTGRES_URL, SC_TEST_REDIS_URL); run by deploy/local/test.sh"]
async fn kill_9_of_a_node_under_load_loses_nothing_for_its_clients() {
    let database = fresh_database().await;
    let redis = std::env::var("SC_TEST_REDIS_URL").unwrap_or_default();
    assert!(
        !database.is_empty() && !redis.is_empty(),
        "needs SC_TEST_POSTGRES_URL and SC_TEST_REDIS_URL"
    );
    let dir = tempfile::tempdir().expect("dir");
    let key = dir.path().join("root-key.pem").display().to_string();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).expect("dir a");
    std::fs::create_dir_all(&dir_b).expect("dir b");
    let (mut doomed, endpoint_a) = spawn_node(&dir_a, &database, &redis, &key);
    let (mut survivor, endpoint_b) = spawn_node(&dir_b, &database, &redis, &key);

    // Users and their conversation, through the surviving node.
    let harness = TestServerAt::new(&endpoint_b);
    let alice = harness.register("alice").await;
    let bob = harness.register("bob").await;
    let chat = alice.direct_with(&bob).await;

    // Bob's device is connected to node A.
    let bob_on_a = Client::connect(endpoint_a).await.expect("connect A");
    bob_on_a.set_access_token(bob.client.access_token());
    let mut stream = bob_on_a
        .events()
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    until_caught_up(&mut stream).await;

    let total = 60;
    let sender = {
        let client = alice.client.clone();
        let id = chat.conversation_id.clone();
        tokio::spawn(async move {
            for i in 0..total {
                let request = SendMessageRequest {
                    conversation_id: id.clone(),
                    content: Some(text_content(&format!("m{i}"))),
                    request_id: format!("r{i}"),
                    ..Default::default()
                };
                client
                    .messages()
                    .send_message(request)
                    .await
                    .expect("send through node B");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let mut received = Vec::new();
    let mut cursor = String::new();
    while received.len() < 15 {
        let (item_cursor, event) = next_conversation_event(&mut stream).await;
        if let Some(Change::MessageSent(m)) = event.change {
            received.push(text_of(&m).unwrap_or_default().to_owned());
        }
        cursor = item_cursor;
    }
    doomed.kill().expect("kill -9 node A");
    doomed.wait().expect("reap node A");

    // The app notices the dead stream and resumes on node B with its last cursor.
    let bob_on_b = Client::connect(endpoint_b).await.expect("connect B");
    bob_on_b.set_access_token(bob.client.access_token());
    let mut resumed = bob_on_b
        .events()
        .subscribe(SubscribeRequest { cursor })
        .await
        .expect("resume")
        .into_inner();
    sender.await.expect("sender");
    while received.len() < total {
        let (_, event) = next_conversation_event(&mut resumed).await;
        if let Some(Change::MessageSent(m)) = event.change {
            received.push(text_of(&m).unwrap_or_default().to_owned());
        }
    }
    let expected: Vec<String> = (0..total).map(|i| format!("m{i}")).collect();
    assert_eq!(received, expected, "zero loss, zero duplicates, in order");
    let _ = survivor.kill();
    let _ = survivor.wait();
}
