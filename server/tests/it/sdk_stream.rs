//! The Rust SDK's event stream against a real server: every event once and in order
//! across a server restart under the stream, and a clean end when the session ends.

use std::time::Duration;

use futures::StreamExt;
use secureconnect_sdk::{
    Error, StreamEvent,
    proto::{
        auth::v1::RevokeSessionRequest, event::v1::conversation_event::Change,
        message::v1::SendMessageRequest,
    },
};

use crate::common::*;

/// The text of the next message the stream delivers (skipping other events).
async fn next_text(
    stream: &mut (impl futures::Stream<Item = Result<(StreamEvent, String), Error>> + Unpin),
) -> (String, u64, String) {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event within 20 s")
            .expect("the stream goes on")
            .expect("no error");
        if let (StreamEvent::Conversation(event), cursor) = item
            && let Some(Change::MessageSent(message)) = event.change
        {
            let text = text_of(&message).unwrap_or_default().to_owned();
            return (text, event.seq, cursor);
        }
    }
}

/// Reads until the stream is live (it subscribes when first polled).
async fn until_live(
    stream: &mut (impl futures::Stream<Item = Result<(StreamEvent, String), Error>> + Unpin),
) {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("caught up within 10 s")
            .expect("open")
            .expect("ok");
        if item.0 == StreamEvent::CaughtUp {
            return;
        }
    }
}

/// Sends `text` under request id `text`, retrying while the server is away: the id makes
/// the retries safe.
async fn send_surely(user: &TestUser, conversation_id: &str, text: &str) {
    for _ in 0..100 {
        let sent = user
            .client
            .messages()
            .send_message(SendMessageRequest {
                conversation_id: conversation_id.into(),
                content: Some(text_content(text)),
                request_id: text.into(),
                ..Default::default()
            })
            .await;
        if sent.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not send {text}");
}

/// Bob's SDK stream hears every message alice sends into `conversation`, once and in
/// order, across a restart of the server under it. Returns the last cursor it handed out.
async fn every_message_once_across_a_restart(
    mut server: TestServer,
    alice: &TestUser,
    bob: &TestUser,
    conversation: &str,
) -> String {
    let mut stream = Box::pin(bob.client.event_stream(""));
    until_live(&mut stream).await;
    for i in 0..10 {
        send_surely(alice, conversation, &format!("m{i}")).await;
    }
    let mut received = Vec::new();
    for _ in 0..10 {
        received.push(next_text(&mut stream).await);
    }
    server.restart().await;
    for i in 10..20 {
        send_surely(alice, conversation, &format!("m{i}")).await;
    }
    for _ in 10..20 {
        received.push(next_text(&mut stream).await);
    }
    let texts: Vec<&str> = received.iter().map(|(text, ..)| text.as_str()).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "every message once, in order");
    assert!(
        received.windows(2).all(|w| w[0].1 < w[1].1),
        "seq increases"
    );
    server.shutdown().await;
    received
        .pop()
        .map(|(.., cursor)| cursor)
        .unwrap_or_default()
}

#[tokio::test]
async fn the_event_stream_delivers_every_event_once_in_order_across_a_server_restart() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let conversation = alice.direct_with(&bob).await.conversation_id;
    every_message_once_across_a_restart(server, &alice, &bob, &conversation).await;
}

#[tokio::test]
async fn a_group_fanned_out_on_read_streams_every_event_once_across_a_server_restart() {
    // Test servers fan groups of three or more out on read: the SDK resumes with the
    // two-part cursor that takes.
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let carol = server.register("carol").await;
    let conversation = alice
        .group_with("big", &[&bob, &carol])
        .await
        .conversation_id;
    let cursor = every_message_once_across_a_restart(server, &alice, &bob, &conversation).await;
    assert!(cursor.starts_with("2:"), "on the shared timeline: {cursor}");
}

#[tokio::test]
async fn the_event_stream_ends_with_an_error_when_the_session_ends() {
    // A revoked session's stream ends within a heartbeat period.
    let server = TestServer::start_with(|c| c.stream.heartbeat_secs = 1).await;
    let (alice, _) = server.pair().await;
    let laptop = server.client().await;
    laptop
        .login(alice.email.clone(), alice.password.clone())
        .await
        .expect("second device");
    let mut stream = Box::pin(alice.client.event_stream(""));
    // Live first, so the revocation reaches an open stream.
    until_live(&mut stream).await;
    laptop
        .auth()
        .revoke_session(RevokeSessionRequest {
            session_id: alice.tokens.session_id.clone(),
        })
        .await
        .expect("revoke");
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("told within 10 s")
        .expect("an item");
    assert!(matches!(ended, Err(Error::SessionEnded)), "{ended:?}");
    assert!(stream.next().await.is_none(), "and the stream ends");
}
