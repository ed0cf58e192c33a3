//! Several nodes on one PostgreSQL database and one Redis: cross-node live delivery, a
//! Redis outage under load, a node crashing under load, and a call carried by one node
//! and reached through another. Each test runs its own Redis
//! server so it can stop and restart it.
//!
//! Ignored in the embedded pass; `deploy/local/test.sh` runs them on its PostgreSQL pass.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::common::*;
use futures::StreamExt;
use secureconnect_sdk::proto::{
    conversation::v1::Conversation,
    event::v1::{SubscribeResponse, conversation_event::Change, subscribe_response::Event},
    presence::v1::{GetPresenceRequest, PresenceState, SetTypingRequest},
};
use secureconnect_server::config::Config;
use tonic::Streaming;

/// A private `redis-server` on a fixed loopback port that the test can kill and restart.
struct RedisProcess {
    port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut redis = Self { port, child: None };
        redis.restart().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (installed by deploy/local/services.sh)");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `n` nodes sharing one fresh database, `redis` and one token signing key.
async fn cluster(n: usize, redis: &RedisProcess, keys: &tempfile::TempDir) -> Vec<TestServer> {
    cluster_with(n, redis, keys, |_| {}).await
}

/// [`cluster`] with extra settings applied to every node.
async fn cluster_with(
    n: usize,
    redis: &RedisProcess,
    keys: &tempfile::TempDir,
    adjust: impl Fn(&mut Config) + Clone + Send + 'static,
) -> Vec<TestServer> {
    let database = fresh_database().await;
    assert!(
        !database.is_empty(),
        "cluster tests need SC_TEST_POSTGRES_URL"
    );
    // One signing key for the whole cluster, as a deployment mounts one secret.
    let key = keys.path().join("root-key.pem").display().to_string();
    let prefix = format!("c{}", uuid::Uuid::new_v4().simple());
    let mut nodes = Vec::new();
    for _ in 0..n {
        let (database, redis_url, key, prefix, adjust) = (
            database.clone(),
            redis.url(),
            key.clone(),
            prefix.clone(),
            adjust.clone(),
        );
        nodes.push(
            TestServer::start_with(move |c| {
                c.database.url = Some(database.into());
                c.redis.url = Some(redis_url.into());
                c.redis.key_prefix = prefix;
                c.auth.root_key_file = Some(key.into());
                // Long enough that the heartbeat's feed check cannot stand in for Redis:
                // whatever arrives within a test's 10 s read deadline came over the bus
                // (or from the resync it triggers on reconnecting).
                c.stream.heartbeat_secs = 60;
                adjust(c);
            })
            .await,
        );
    }
    nodes
}

/// Two nodes; alice on the first, bob on the second, a direct chat between them, and
/// bob's stream open (caught up) on his node.
struct Pair {
    nodes: Vec<TestServer>,
    alice: TestUser,
    bob: TestUser,
    chat: Conversation,
    bob_stream: Streaming<SubscribeResponse>,
}

impl Pair {
    async fn start(redis: &RedisProcess, keys: &tempfile::TempDir) -> Self {
        let nodes = cluster(2, redis, keys).await;
        let alice = nodes[0].register("alice").await;
        let bob = nodes[1].register("bob").await;
        let chat = alice.direct_with(&bob).await;
        let mut bob_stream = bob.subscribe("").await;
        until_caught_up(&mut bob_stream).await;
        Self {
            nodes,
            alice,
            bob,
            chat,
            bob_stream,
        }
    }
}

/// The texts of the next `n` sent messages on `stream`, asserting seqs rise by one.
async fn texts(stream: &mut Streaming<SubscribeResponse>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut last_seq = None;
    while out.len() < n {
        let (_, event) = next_conversation_event(stream).await;
        if let Some(last) = last_seq {
            assert_eq!(event.seq, last + 1, "hole or duplicate in the timeline");
        }
        last_seq = Some(event.seq);
        if let Some(Change::MessageSent(message)) = event.change {
            out.push(text_of(&message).unwrap_or_default().to_owned());
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn a_message_sent_through_one_node_reaches_a_subscriber_on_another() {
    let redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let Pair {
        nodes,
        alice,
        bob,
        chat,
        mut bob_stream,
    } = Pair::start(&redis, &keys).await;
    let mut alice_stream = alice.subscribe("").await;
    until_caught_up(&mut alice_stream).await;

    alice.send(&chat.conversation_id, "from node A").await;
    assert_eq!(texts(&mut bob_stream, 1).await, ["from node A"]);
    bob.send(&chat.conversation_id, "from node B").await;
    // Alice sees her own message (local delivery) and then bob's (via Redis).
    assert_eq!(
        texts(&mut alice_stream, 2).await,
        ["from node A", "from node B"]
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn events_travel_only_to_the_nodes_streaming_to_their_recipients() {
    let redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let prefix = format!("r{}", uuid::Uuid::new_v4().simple());
    let shared = prefix.clone();
    let nodes = cluster_with(3, &redis, &keys, move |c| {
        c.redis.key_prefix = shared.clone();
    })
    .await;
    let alice = nodes[0].register("alice").await;
    let bob = nodes[1].register("bob").await;
    let chat = alice.direct_with(&bob).await;
    let mut bob_stream = bob.subscribe("").await;
    until_caught_up(&mut bob_stream).await;

    // Listen to every channel of this deployment, as a fourth party.
    let client = deadpool_redis::redis::Client::open(redis.url()).expect("redis client");
    let mut spy = client.get_async_pubsub().await.expect("pubsub");
    spy.psubscribe(format!("{prefix}:v1:*"))
        .await
        .expect("psubscribe");
    let mut heard = spy.into_on_message();

    for i in 0..5 {
        alice
            .send(&chat.conversation_id, &format!("routed {i}"))
            .await;
    }
    assert_eq!(
        texts(&mut bob_stream, 5).await.len(),
        5,
        "bob got them live"
    );
    let mut channels = Vec::new();
    while channels.len() < 5 {
        let message = tokio::time::timeout(Duration::from_secs(10), heard.next())
            .await
            .expect("published within 10 s")
            .expect("spy connected");
        channels.push(message.get_channel_name().to_owned());
    }
    assert!(
        channels
            .iter()
            .all(|c| c.starts_with(&format!("{prefix}:v1:node:"))),
        "only node channels, never the shared one: {channels:?}"
    );
    channels.dedup();
    assert_eq!(channels.len(), 1, "one node (bob's) got them all");
    // Nothing more (the third node, with no stream for bob or alice, got nothing).
    assert!(
        tokio::time::timeout(Duration::from_millis(500), heard.next())
            .await
            .is_err(),
        "no further publishes"
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn typing_and_presence_cross_nodes() {
    let redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let Pair {
        nodes,
        alice,
        bob,
        chat,
        mut bob_stream,
    } = Pair::start(&redis, &keys).await;

    // Bob's stream is on node B; node A sees him online (presence lives in Redis).
    let seen_from_a = alice
        .client
        .presence()
        .get_presence(GetPresenceRequest {
            user_ids: vec![bob.id.clone()],
        })
        .await
        .expect("presence")
        .into_inner()
        .presences;
    assert_eq!(seen_from_a.len(), 1);
    assert_eq!(seen_from_a[0].state(), PresenceState::Online);

    // Alice types through node A; bob hears it on node B.
    alice
        .client
        .presence()
        .set_typing(SetTypingRequest {
            conversation_id: chat.conversation_id.clone(),
            typing: true,
        })
        .await
        .expect("typing");
    loop {
        match next(&mut bob_stream).await.event {
            Some(Event::Typing(typing)) => {
                assert_eq!(typing.user_id, alice.id);
                break;
            }
            Some(Event::Heartbeat(_)) => {}
            other => panic!("expected typing, got {other:?}"),
        }
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn a_redis_outage_under_load_loses_nothing_and_live_delivery_returns() {
    let mut redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let Pair {
        nodes,
        alice,
        chat,
        mut bob_stream,
        ..
    } = Pair::start(&redis, &keys).await;

    let total = 30;
    for i in 0..total {
        if i == 10 {
            redis.kill();
        }
        if i == 20 {
            redis.restart().await;
        }
        alice.send(&chat.conversation_id, &format!("m{i}")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected: Vec<String> = (0..total).map(|i| format!("m{i}")).collect();
    assert_eq!(
        texts(&mut bob_stream, total).await,
        expected,
        "every message, once, in order"
    );

    // Live delivery is back: a new message arrives well before the 10 s read deadline.
    alice.send(&chat.conversation_id, "after the outage").await;
    assert_eq!(texts(&mut bob_stream, 1).await, ["after the outage"]);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn clients_of_a_crashed_node_resume_on_another_with_nothing_lost() {
    let redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let mut nodes = cluster(2, &redis, &keys).await;
    let survivor = nodes.pop().expect("node B");
    let doomed = nodes.pop().expect("node A");
    let alice = survivor.register("alice").await;
    let bob = doomed.register("bob").await;
    let chat = alice.direct_with(&bob).await;
    let mut bob_stream = bob.subscribe("").await;
    until_caught_up(&mut bob_stream).await;

    let sender = {
        let client = alice.client.clone();
        let id = chat.conversation_id.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                client
                    .messages()
                    .send_message(secureconnect_sdk::proto::message::v1::SendMessageRequest {
                        conversation_id: id.clone(),
                        content: Some(text_content(&format!("m{i}"))),
                        request_id: format!("r{i}"),
                        ..Default::default()
                    })
                    .await
                    .expect("send through the surviving node");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    // Read a little, then node A dies mid-stream.
    let mut received = Vec::new();
    let mut cursor = String::new();
    while received.len() < 10 {
        let (item_cursor, event) = next_conversation_event(&mut bob_stream).await;
        if let Some(Change::MessageSent(m)) = event.change {
            received.push(text_of(&m).unwrap_or_default().to_owned());
        }
        cursor = item_cursor;
    }
    doomed.crash();

    // Bob's app reconnects to node B with its last cursor.
    let bob_on_b = secureconnect_sdk::Client::connect(survivor.endpoint.clone())
        .await
        .expect("connect to B");
    bob_on_b.set_access_token(bob.client.access_token());
    let mut resumed = bob_on_b
        .events()
        .subscribe(secureconnect_sdk::proto::event::v1::SubscribeRequest { cursor })
        .await
        .expect("resume on B")
        .into_inner();
    sender.await.expect("sender");
    received.extend(texts(&mut resumed, 40 - received.len()).await);
    let expected: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    assert_eq!(received, expected, "zero loss, zero duplicates, in order");
    survivor.shutdown().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn signing_out_on_one_node_ends_the_session_on_every_node() {
    let redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let nodes = cluster(2, &redis, &keys).await;
    let alice = nodes[0].register("alice").await;
    let on_b = secureconnect_sdk::Client::connect(nodes[1].endpoint.clone())
        .await
        .expect("connect to B");
    on_b.set_access_token(alice.client.access_token());
    let me = secureconnect_sdk::proto::user::v1::GetCurrentUserRequest {};
    on_b.users()
        .get_current_user(me)
        .await
        .expect("the token works on node B");
    let mut stream_on_b = on_b
        .events()
        .subscribe(secureconnect_sdk::proto::event::v1::SubscribeRequest::default())
        .await
        .expect("subscribe on B")
        .into_inner();
    until_caught_up(&mut stream_on_b).await;

    alice
        .client
        .auth()
        .logout(secureconnect_sdk::proto::auth::v1::LogoutRequest {})
        .await
        .expect("logout on A");

    // Node B hears of it over Redis: its stream for the session ends, and so does the token.
    let item = next(&mut stream_on_b).await;
    let Some(secureconnect_sdk::proto::event::v1::subscribe_response::Event::Closing(closing)) =
        item.event
    else {
        panic!("expected closing, got {item:?}")
    };
    assert_eq!(
        closing.reason,
        i32::from(secureconnect_sdk::proto::event::v1::ClosingReason::SessionEnded)
    );
    assert_code(
        on_b.users().get_current_user(me).await,
        tonic::Code::Unauthenticated,
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn the_send_rate_limit_is_shared_by_all_nodes() {
    let redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let nodes = cluster_with(2, &redis, &keys, |c| c.limits.messages_per_second = 3).await;
    let alice = nodes[0].register("alice").await;
    let bob = nodes[1].register("bob").await;
    let chat = alice.direct_with(&bob).await;
    let alice_on_b = secureconnect_sdk::Client::connect(nodes[1].endpoint.clone())
        .await
        .expect("connect");
    alice_on_b.set_access_token(alice.client.access_token());

    // Start just after a second begins, so all four sends fall in one counting window.
    start_of_next_second().await;
    let mut outcomes = Vec::new();
    for i in 0..4 {
        let client = if i % 2 == 0 {
            &alice.client
        } else {
            &alice_on_b
        };
        let request = secureconnect_sdk::proto::message::v1::SendMessageRequest {
            conversation_id: chat.conversation_id.clone(),
            content: Some(text_content("spread over nodes")),
            request_id: format!("s{i}"),
            ..Default::default()
        };
        outcomes.push(
            client
                .messages()
                .send_message(request)
                .await
                .map(|_| ())
                .map_err(|s| s.code()),
        );
    }
    assert_eq!(outcomes[..3], [Ok(()), Ok(()), Ok(())]);
    assert_eq!(
        outcomes[3],
        Err(tonic::Code::ResourceExhausted),
        "two nodes, one allowance"
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn login_throttling_counts_attempts_on_every_node_together() {
    let redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let nodes = cluster_with(2, &redis, &keys, |c| c.auth.login_attempts_per_minute = 3).await;
    let alice = nodes[0].register("alice").await;
    let attempt = |node: usize, password: &str| {
        let endpoint = nodes[node].endpoint.clone();
        let request = secureconnect_sdk::proto::auth::v1::LoginRequest {
            email: alice.email.clone(),
            password: password.to_owned(),
            device: None,
        };
        async move {
            let client = secureconnect_sdk::Client::connect(endpoint)
                .await
                .expect("connect");
            client
                .auth()
                .login(request)
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    };
    // Three wrong guesses spread over both nodes use up the allowance of both.
    for node in [0, 1, 0] {
        assert_eq!(
            attempt(node, "guess").await,
            Err(tonic::Code::Unauthenticated)
        );
    }
    assert_eq!(
        attempt(1, &alice.password).await,
        Err(tonic::Code::ResourceExhausted)
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and redis-server; run by deploy/local/test.sh"]
async fn a_call_is_reached_through_any_node_and_its_carrier_dying_is_told() {
    use secureconnect_sdk::proto::call::v1::{CallClosingReason, CallMedia, JoinCallRequest};
    use str0m::media::MediaKind;

    use crate::call_media::{Participant, eventually};

    let redis = RedisProcess::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let Pair {
        mut nodes,
        alice,
        bob,
        chat,
        ..
    } = Pair::start(&redis, &keys).await;
    // Alice starts the call on the first node, which carries it; bob's client talks to
    // the second, which forwards his call RPCs and relays his watch stream.
    let (call, _) = alice
        .client
        .start_call(&chat.conversation_id, CallMedia::Video)
        .await
        .expect("start");
    let join = JoinCallRequest {
        call_id: call.call_id.clone(),
    };
    bob.client
        .calls()
        .join_call(join.clone())
        .await
        .expect("join through the other node");
    let alices = Participant::connect(&alice, &call.call_id, 1).await;
    let bobs = Participant::connect(&bob, &call.call_id, 2).await;
    eventually(
        20,
        "media flows both ways across the nodes' signaling",
        || {
            alices.media.count(2, MediaKind::Video) >= 20
                && bobs.media.count(1, MediaKind::Video) >= 20
        },
    )
    .await;

    // The carrier dies: bob's relayed stream tells him to join again.
    nodes.remove(0).crash();
    eventually(10, "bob is told the call's node went away", || {
        *bobs.closing.lock().expect("lock") == Some(CallClosingReason::Shutdown)
    })
    .await;
    // Once the dead node's claim lapses, his node takes the call over and he is back in.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match bob.client.calls().join_call(join.clone()).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(
                    std::time::Instant::now() < deadline,
                    "no node took the call over"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let again = Participant::connect(&bob, &call.call_id, 2).await;
    eventually(10, "bob's new connection is in the call", || {
        again.call().is_some_and(|call| {
            call.participants
                .iter()
                .any(|p| p.user_id == bob.id && !p.stream_id.is_empty())
        })
    })
    .await;
    drop(nodes);
}
