//! Presence and typing: typing reaches the other members' streams (and nobody else's),
//! presence follows open streams, and only related users see it.

use std::time::Duration;

use crate::common::*;
use secureconnect_sdk::proto::{
    event::v1::{SubscribeResponse, Typing, subscribe_response::Event},
    presence::v1::{GetPresenceRequest, PresenceState, SetTypingRequest, UserPresence},
    user::v1::BlockUserRequest,
};
use tonic::{Code, Status, Streaming};

/// Presence calls of a test user.
trait PresenceCalls {
    async fn set_typing(&self, conversation_id: &str, typing: bool) -> Result<(), Status>;
    async fn presence_of(&self, users: &[&TestUser]) -> Vec<UserPresence>;
}

impl PresenceCalls for TestUser {
    async fn set_typing(&self, conversation_id: &str, typing: bool) -> Result<(), Status> {
        self.client
            .presence()
            .set_typing(SetTypingRequest {
                conversation_id: conversation_id.to_owned(),
                typing,
            })
            .await
            .map(|_| ())
    }

    async fn presence_of(&self, users: &[&TestUser]) -> Vec<UserPresence> {
        self.client
            .presence()
            .get_presence(GetPresenceRequest {
                user_ids: users.iter().map(|u| u.id.clone()).collect(),
            })
            .await
            .expect("get presence")
            .into_inner()
            .presences
    }
}

/// The next item that is not a heartbeat or `caught_up`.
async fn next_significant(stream: &mut Streaming<SubscribeResponse>) -> SubscribeResponse {
    loop {
        let item = next(stream).await;
        if !matches!(item.event, Some(Event::Heartbeat(_) | Event::CaughtUp(_))) {
            return item;
        }
    }
}

fn typing_of(item: &SubscribeResponse) -> Option<&Typing> {
    match &item.event {
        Some(Event::Typing(typing)) => Some(typing),
        _ => None,
    }
}

#[tokio::test]
async fn typing_reaches_the_other_members_and_nobody_else() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let carol = server.register("carol").await;
    let other = bob.direct_with(&carol).await;

    let mut bobs = bob.subscribe("").await;
    let cursor = until_caught_up(&mut bobs).await;
    let mut alices = alice.subscribe("").await;
    until_caught_up(&mut alices).await;
    let mut carols = carol.subscribe("").await;
    until_caught_up(&mut carols).await;

    alice
        .set_typing(&group.conversation_id, true)
        .await
        .expect("typing");
    let item = next_significant(&mut bobs).await;
    let typing = typing_of(&item).expect("a typing event");
    assert_eq!(typing.conversation_id, group.conversation_id);
    assert_eq!(typing.user_id, alice.id);
    assert!(typing.typing);
    assert!(typing.expire_time.is_some());
    assert_eq!(
        item.cursor, cursor,
        "ephemeral events do not move the cursor"
    );

    alice
        .set_typing(&group.conversation_id, false)
        .await
        .expect("stopped");
    let item = next_significant(&mut bobs).await;
    let stopped = typing_of(&item).expect("a typing event");
    assert!(!stopped.typing && stopped.expire_time.is_none());

    // The typist's own devices and non-members got nothing: their next item is
    // whatever happens next to them.
    alice.send(&group.conversation_id, "after typing").await;
    let item = next_significant(&mut alices).await;
    assert!(
        matches!(item.event, Some(Event::ConversationEvent(_))),
        "{item:?}"
    );
    bob.send(&other.conversation_id, "to carol").await;
    let item = next_significant(&mut carols).await;
    assert!(
        matches!(item.event, Some(Event::ConversationEvent(_))),
        "{item:?}"
    );

    // Outsiders cannot type into a conversation, or learn it exists.
    let status = assert_code(
        carol.set_typing(&group.conversation_id, true).await,
        Code::NotFound,
    );
    assert!(!status.message().contains(&group.conversation_id));
    server.shutdown().await;
}

#[tokio::test]
async fn presence_follows_open_streams() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    alice.direct_with(&bob).await;

    let before = bob.presence_of(&[&alice]).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].state(), PresenceState::Offline);
    assert!(before[0].last_seen_time.is_none(), "never seen");

    let mut stream = alice.subscribe("").await;
    until_caught_up(&mut stream).await;
    let online = bob.presence_of(&[&alice]).await;
    assert_eq!(online[0].state(), PresenceState::Online);
    assert!(online[0].last_seen_time.is_none());

    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let gone = loop {
        let now = bob.presence_of(&[&alice]).await;
        if now[0].state() == PresenceState::Offline {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still online 10 s after the stream closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(gone[0].last_seen_time.is_some(), "last seen is recorded");
    server.shutdown().await;
}

#[tokio::test]
async fn only_related_users_see_presence() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let stranger = server.register("stranger").await;
    alice.direct_with(&bob).await;
    let mut stream = alice.subscribe("").await;
    until_caught_up(&mut stream).await;

    assert!(
        stranger.presence_of(&[&alice]).await.is_empty(),
        "no shared conversation, no contact: nothing"
    );
    assert_eq!(bob.presence_of(&[&alice, &stranger]).await.len(), 1);

    alice
        .client
        .users()
        .block_user(BlockUserRequest {
            user_id: bob.id.clone(),
        })
        .await
        .expect("block");
    assert!(
        bob.presence_of(&[&alice]).await.is_empty(),
        "blocked: hidden"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn typing_is_rate_limited() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let chat = alice.direct_with(&bob).await;
    for _ in 0..20 {
        alice
            .set_typing(&chat.conversation_id, true)
            .await
            .expect("within the limit");
    }
    let status = assert_code(
        alice.set_typing(&chat.conversation_id, true).await,
        Code::ResourceExhausted,
    );
    assert!(!status.details().is_empty(), "says when to retry");
    server.shutdown().await;
}

#[tokio::test]
async fn a_block_silences_typing_both_ways() {
    let server = TestServer::start().await;
    let (alice, [bob, carol], group) = server.group(3).await.into_parts();
    let mut bobs = bob.subscribe("").await;
    until_caught_up(&mut bobs).await;
    bob.client
        .users()
        .block_user(BlockUserRequest {
            user_id: alice.id.clone(),
        })
        .await
        .expect("block");

    alice
        .set_typing(&group.conversation_id, true)
        .await
        .expect("the typist is not told");
    carol
        .set_typing(&group.conversation_id, true)
        .await
        .expect("typing");
    let item = next_significant(&mut bobs).await;
    let typing = typing_of(&item).expect("a typing event");
    assert_eq!(typing.user_id, carol.id, "carol's, not alice's");
    server.shutdown().await;
}
