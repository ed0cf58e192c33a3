//! The real-time stream: resume without loss or duplicates, ordering under concurrent
//! writers, gaps, heartbeats and slow consumers.

use std::collections::HashSet;

use crate::common::*;
use secureconnect_sdk::proto::{
    event::v1::{ClosingReason, conversation_event::Change, subscribe_response::Event},
    message::v1::{ListDirection, ListMessagesRequest},
};
use tonic::Code;

#[tokio::test]
async fn resume_after_disconnect_delivers_every_missed_message_once_in_order() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let chat = alice.direct_with(&bob).await;

    let mut stream = bob.subscribe("").await;
    until_caught_up(&mut stream).await;
    alice
        .send(&chat.conversation_id, "before the disconnect")
        .await;
    let (cursor, first) = next_conversation_event(&mut stream).await;
    assert!(matches!(first.change, Some(Change::MessageSent(_))));
    drop(stream);

    for i in 0..100 {
        alice
            .send(&chat.conversation_id, &format!("missed {i}"))
            .await;
    }

    let mut resumed = bob.subscribe(&cursor).await;
    let mut seqs = Vec::new();
    for i in 0..100 {
        let (_, event) = next_conversation_event(&mut resumed).await;
        let Some(Change::MessageSent(message)) = event.change else {
            panic!("expected a message, got {event:?}");
        };
        assert_eq!(text_of(&message), Some(format!("missed {i}").as_str()));
        seqs.push(event.seq);
    }
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seqs not contiguous: {seqs:?}"
    );
    // Replay ends with caught_up, not with a duplicate.
    let item = next(&mut resumed).await;
    assert!(
        matches!(item.event, Some(Event::CaughtUp(_))),
        "got {item:?}"
    );

    // And the stream is live afterwards.
    alice.send(&chat.conversation_id, "live again").await;
    let (_, live) = next_conversation_event(&mut resumed).await;
    let Some(Change::MessageSent(message)) = live.change else {
        panic!("{live:?}")
    };
    assert_eq!(text_of(&message), Some("live again"));
    assert_eq!(live.seq, seqs[99] + 1);
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_senders_never_duplicate_or_skip_a_seq() {
    let server = TestServer::start().await;
    let Group {
        owner,
        members: others,
        conversation: group,
    } = server.group(4).await;
    let mut watcher = owner.subscribe("").await;
    until_caught_up(&mut watcher).await;

    let mut senders = vec![owner.client.clone()];
    senders.extend(others.iter().map(|u| u.client.clone()));
    let mut tasks = Vec::new();
    for (n, client) in senders.into_iter().enumerate() {
        let id = group.conversation_id.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                client
                    .messages()
                    .send_message(secureconnect_sdk::proto::message::v1::SendMessageRequest {
                        conversation_id: id.clone(),
                        content: Some(text_content(&format!("{n}-{i}"))),
                        request_id: format!("{n}-{i}"),
                        ..Default::default()
                    })
                    .await
                    .expect("send");
            }
        }));
    }
    for task in tasks {
        task.await.expect("sender task");
    }

    // The store: 100 messages at seq 2..=101 (seq 1 is the creation), no holes, no repeats.
    let listed = owner
        .client
        .messages()
        .list_messages(ListMessagesRequest {
            conversation_id: group.conversation_id.clone(),
            direction: ListDirection::Forward.into(),
            page_size: 200,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .messages;
    let seqs: Vec<u64> = listed.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (2..=101).collect::<Vec<u64>>());

    // The live stream: the same 100, each once, in seq order.
    let mut live = Vec::new();
    while live.len() < 100 {
        let (_, event) = next_conversation_event(&mut watcher).await;
        live.push(event.seq);
    }
    assert_eq!(live, (2..=101).collect::<Vec<u64>>());
    server.shutdown().await;
}

#[tokio::test]
async fn a_cursor_older_than_the_replay_limit_yields_a_gap() {
    let server = TestServer::start_with(|c| c.stream.max_replay_events = 5).await;
    let (alice, bob) = server.pair().await;
    let chat = alice.direct_with(&bob).await;
    let mut stream = bob.subscribe("").await;
    let start = until_caught_up(&mut stream).await;
    drop(stream);
    for i in 0..10 {
        alice.send(&chat.conversation_id, &format!("m{i}")).await;
    }
    let mut resumed = bob.subscribe(&start).await;
    let gap = next(&mut resumed).await;
    assert!(matches!(gap.event, Some(Event::Gap(_))), "got {gap:?}");
    // Then `caught_up`: from here on the stream is live (a client waiting for it to
    // know it has everything must not wait forever).
    let caught_up = next(&mut resumed).await;
    assert!(
        matches!(caught_up.event, Some(Event::CaughtUp(_))),
        "got {caught_up:?}"
    );
    assert_eq!(caught_up.cursor, gap.cursor, "nothing between the two");
    alice.send(&chat.conversation_id, "after gap").await;
    let (_, event) = next_conversation_event(&mut resumed).await;
    let Some(Change::MessageSent(message)) = event.change else {
        panic!("{event:?}")
    };
    assert_eq!(text_of(&message), Some("after gap"));
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats_and_outlives_the_request_timeout() {
    let server = TestServer::start_with(|c| {
        c.stream.heartbeat_secs = 1;
        c.request_timeout_secs = 1;
    })
    .await;
    let alice = server.register("alice").await;
    let mut stream = alice.subscribe("").await;
    let caught_up = until_caught_up(&mut stream).await;
    // Three heartbeats span about three seconds: well past the 1 s call timeout.
    for _ in 0..3 {
        let beat = next(&mut stream).await;
        assert!(
            matches!(beat.event, Some(Event::Heartbeat(_))),
            "got {beat:?}"
        );
        assert_eq!(
            beat.cursor, caught_up,
            "heartbeats keep the cursor where it was"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_reader_is_cut_off_with_a_cursor_that_resumes_exactly() {
    let server = TestServer::start_with(|c| c.stream.buffer_events = 4).await;
    let alice = server.register("alice").await;
    let bob = server.register_on("bob", server.slow_client().await).await;
    let chat = alice.direct_with(&bob).await;
    let mut stream = bob.subscribe("").await;
    until_caught_up(&mut stream).await;

    // Far more than bob's HTTP/2 flow-control windows hold while he reads nothing.
    let body = "x".repeat(2000);
    let total = 300;
    for i in 0..total {
        alice
            .send(&chat.conversation_id, &format!("{i} {body}"))
            .await;
    }

    let mut seen = HashSet::new();
    let cursor = loop {
        let item = next(&mut stream).await;
        match item.event {
            Some(Event::ConversationEvent(event)) => assert!(seen.insert(event.seq)),
            Some(Event::Closing(closing)) => {
                assert_eq!(closing.reason, i32::from(ClosingReason::SlowConsumer));
                break item.cursor;
            }
            Some(Event::Heartbeat(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        seen.len() < total,
        "the reader should have been cut off early"
    );
    assert!(
        stream.message().await.map(|m| m.is_none()).unwrap_or(true),
        "stream ends after closing"
    );

    let mut resumed = bob.subscribe(&cursor).await;
    while seen.len() < total {
        let (_, event) = next_conversation_event(&mut resumed).await;
        assert!(seen.insert(event.seq), "seq {} delivered twice", event.seq);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_or_foreign_cursors_are_rejected() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for cursor in ["garbage", "1:x", "1:999999"] {
        let status = assert_code(alice.try_subscribe(cursor).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["cursor"]);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_tells_streams_to_reconnect() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mut stream = alice.subscribe("").await;
    until_caught_up(&mut stream).await;
    let stopping = tokio::spawn(server.shutdown());
    let item = next(&mut stream).await;
    let Some(Event::Closing(closing)) = item.event else {
        panic!("got {item:?}")
    };
    assert_eq!(closing.reason, i32::from(ClosingReason::Shutdown));
    stopping.await.expect("shutdown");
}

#[tokio::test]
async fn signing_out_ends_the_devices_stream() {
    let server = TestServer::start_with(|c| c.stream.heartbeat_secs = 1).await;
    let alice = server.register("alice").await;
    let mut stream = alice.subscribe("").await;
    until_caught_up(&mut stream).await;
    alice
        .client
        .auth()
        .logout(secureconnect_sdk::proto::auth::v1::LogoutRequest {})
        .await
        .expect("logout");
    let closing = loop {
        let item = next(&mut stream).await;
        match item.event {
            Some(Event::Heartbeat(_)) => continue,
            Some(Event::Closing(closing)) => break closing,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(closing.reason, i32::from(ClosingReason::SessionEnded));
    server.shutdown().await;
}

#[tokio::test]
async fn others_chatting_does_not_starve_an_idle_streams_heartbeats() {
    let server = TestServer::start_with(|c| c.stream.heartbeat_secs = 1).await;
    let (alice, bob) = server.pair().await;
    let carol = server.register("carol").await;
    let chat = alice.direct_with(&bob).await;
    let mut carol_stream = carol.subscribe("").await;
    until_caught_up(&mut carol_stream).await;

    // Alice and bob talk every 200 ms, far more often than carol's heartbeat period.
    let talker = {
        let client = alice.client.clone();
        let id = chat.conversation_id.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let request = secureconnect_sdk::proto::message::v1::SendMessageRequest {
                    conversation_id: id.clone(),
                    content: Some(text_content("chatter")),
                    request_id: format!("c{i}"),
                    ..Default::default()
                };
                client.messages().send_message(request).await.expect("send");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    };
    let beat = tokio::time::timeout(std::time::Duration::from_secs(3), next(&mut carol_stream))
        .await
        .expect("carol's heartbeat within 3 s despite the traffic around her");
    assert!(
        matches!(beat.event, Some(Event::Heartbeat(_))),
        "got {beat:?}"
    );
    talker.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn a_resume_whose_events_were_trimmed_meanwhile_gets_a_gap_not_a_silent_skip() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let chat = alice.direct_with(&bob).await;
    let mut stream = bob.subscribe("").await;
    let cursor = until_caught_up(&mut stream).await;
    drop(stream);
    for i in 0..10 {
        alice.send(&chat.conversation_id, &format!("m{i}")).await;
    }
    // Retention runs with a window of 3 between bob's disconnect and his return (within
    // the server's replay limit, so the server still starts a replay).
    server.open_store().await.trim_feeds(3).await.expect("trim");

    let mut resumed = bob.subscribe(&cursor).await;
    assert_eq!(
        gap_then_messages(&mut resumed, 3).await,
        ["m7", "m8", "m9"],
        "then the rest, in order"
    );
    server.shutdown().await;
}
