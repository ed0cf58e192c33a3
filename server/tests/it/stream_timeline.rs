//! Conversations fanned out on read (stored once on the shared timeline): a member hears
//! exactly what fan-out on write would have told them, live and on resume — from the
//! event that adds them to the one that removes them — and a conversation that moves to
//! the timeline mid-stream keeps its order.

use crate::common::*;
use secureconnect_sdk::proto::{
    conversation::v1::{AddMembersRequest, RemoveMemberRequest},
    event::v1::{conversation_event::Change, subscribe_response::Event},
    message::v1::Message,
};
use tonic::Streaming;

use secureconnect_sdk::proto::event::v1::SubscribeResponse;

/// The text of a `MessageSent` event, or a description of what came instead.
fn sent_text(change: Option<Change>) -> String {
    match change {
        Some(Change::MessageSent(message)) => text_of(&message).unwrap_or("?").to_owned(),
        other => format!("not a message: {other:?}"),
    }
}

/// Everything until `caught_up`: the changes of `conversation`'s events, in order.
/// (Order is per conversation: a replay may interleave conversations differently from
/// how they arrived live.)
async fn replayed(stream: &mut Streaming<SubscribeResponse>, conversation: &str) -> Vec<Change> {
    let mut changes = Vec::new();
    loop {
        let item = next(stream).await;
        match item.event {
            Some(Event::CaughtUp(_)) => return changes,
            Some(Event::ConversationEvent(event)) if event.conversation_id == conversation => {
                changes.extend(event.change)
            }
            Some(Event::ConversationEvent(_)) => {}
            Some(Event::Heartbeat(_)) | Some(Event::UserEvent(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn texts(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|change| sent_text(Some(change.clone())))
        .collect()
}

async fn four_people(server: &TestServer) -> [TestUser; 4] {
    [
        server.register("alice").await,
        server.register("bob").await,
        server.register("carol").await,
        server.register("dave").await,
    ]
}

async fn add(by: &TestUser, conversation: &str, user: &TestUser) {
    by.client
        .conversations()
        .add_members(AddMembersRequest {
            conversation_id: conversation.to_owned(),
            user_ids: vec![user.id.clone()],
        })
        .await
        .expect("add a member");
}

async fn send_all(user: &TestUser, conversation: &str, texts: &[&str]) -> Vec<Message> {
    let mut sent = Vec::new();
    for text in texts {
        sent.push(user.send(conversation, text).await);
    }
    sent
}

#[tokio::test]
async fn members_hear_from_their_addition_to_their_removal_live_and_on_resume() {
    let server = TestServer::start_with(|c| c.database.fanout_on_read_members = 2).await;
    let [alice, bob, carol, dave] = four_people(&server).await;
    // Three members: over the threshold from its creation.
    let group = alice.group_with("big", &[&bob, &carol]).await;
    let id = group.conversation_id.clone();

    let mut dave_stream = dave.subscribe("").await;
    let dave_start = until_caught_up(&mut dave_stream).await;
    let mut bob_stream = bob.subscribe("").await;
    let bob_start = until_caught_up(&mut bob_stream).await;

    send_all(&alice, &id, &["before dave"]).await;
    add(&alice, &id, &dave).await;
    send_all(&alice, &id, &["with dave"]).await;
    alice
        .client
        .conversations()
        .remove_member(RemoveMemberRequest {
            conversation_id: id.clone(),
            user_id: bob.id.clone(),
        })
        .await
        .expect("remove bob");
    send_all(&alice, &id, &["after bob"]).await;

    // Live: dave's first event of the group is his addition; he never sees "before dave".
    let (cursor, added) = next_conversation_event(&mut dave_stream).await;
    assert!(
        cursor.starts_with("2:"),
        "a timeline position in the cursor: {cursor}"
    );
    assert!(
        matches!(added.change, Some(Change::MembersAdded(_))),
        "{added:?}"
    );
    let (_, with) = next_conversation_event(&mut dave_stream).await;
    assert_eq!(sent_text(with.change), "with dave");
    let (_, removal) = next_conversation_event(&mut dave_stream).await;
    assert!(matches!(removal.change, Some(Change::MemberRemoved(_))));
    let (_, after) = next_conversation_event(&mut dave_stream).await;
    assert_eq!(sent_text(after.change), "after bob");

    // Live: bob hears everything up to his own removal, then nothing of the group.
    let mut bob_live = Vec::new();
    for _ in 0..4 {
        let (_, event) = next_conversation_event(&mut bob_stream).await;
        bob_live.extend(event.change);
    }
    assert_eq!(texts(&bob_live[..1]), ["before dave"]);
    assert!(matches!(bob_live[1], Change::MembersAdded(_)));
    assert_eq!(texts(&bob_live[2..3]), ["with dave"]);
    assert!(matches!(bob_live[3], Change::MemberRemoved(_)));
    // A message in a conversation bob still shares with alice arrives next, not "after bob".
    let direct = alice.direct_with(&bob).await;
    alice.send(&direct.conversation_id, "direct").await;
    let (_, next_for_bob) = next_conversation_event(&mut bob_stream).await;
    let next_text = match next_for_bob.change {
        Some(Change::ConversationCreated(_)) => {
            sent_text(next_conversation_event(&mut bob_stream).await.1.change)
        }
        other => sent_text(other),
    };
    assert_eq!(next_text, "direct");
    drop((bob_stream, dave_stream));

    // On resume from before it all: exactly the same, from the store.
    let mut dave_again = dave.subscribe(&dave_start).await;
    let dave_replayed = replayed(&mut dave_again, &id).await;
    assert_eq!(dave_replayed.len(), 4, "{dave_replayed:?}");
    assert!(matches!(dave_replayed[0], Change::MembersAdded(_)));
    assert_eq!(texts(&dave_replayed[1..2]), ["with dave"]);
    assert!(matches!(dave_replayed[2], Change::MemberRemoved(_)));
    assert_eq!(texts(&dave_replayed[3..]), ["after bob"]);

    let mut bob_again = bob.subscribe(&bob_start).await;
    let bob_replayed = replayed(&mut bob_again, &id).await;
    assert_eq!(
        bob_replayed.len(),
        4,
        "nothing after his removal: {bob_replayed:?}"
    );
    assert_eq!(texts(&bob_replayed[..1]), ["before dave"]);
    assert!(matches!(bob_replayed[1], Change::MembersAdded(_)));
    assert_eq!(texts(&bob_replayed[2..3]), ["with dave"]);
    assert!(matches!(bob_replayed[3], Change::MemberRemoved(_)));
    server.shutdown().await;
}

#[tokio::test]
async fn a_conversation_that_grows_onto_the_timeline_keeps_its_order_live_and_on_resume() {
    // Three members stay in feeds; the fourth moves the group to the timeline.
    let server = TestServer::start_with(|c| c.database.fanout_on_read_members = 3).await;
    let [alice, bob, carol, dave] = four_people(&server).await;
    let group = alice.group_with("growing", &[&bob, &carol]).await;
    let id = group.conversation_id.clone();
    let mut stream = bob.subscribe("").await;
    let start = until_caught_up(&mut stream).await;

    send_all(&alice, &id, &["in feeds 1", "in feeds 2"]).await;
    add(&alice, &id, &dave).await;
    let sent = send_all(&alice, &id, &["on the timeline 1", "on the timeline 2"]).await;

    let mut live = Vec::new();
    let mut cursors = Vec::new();
    for _ in 0..5 {
        let (cursor, event) = next_conversation_event(&mut stream).await;
        cursors.push(cursor);
        live.push(event.seq);
    }
    let first = sent[0].seq - 3;
    assert_eq!(
        live,
        (first..first + 5).collect::<Vec<u64>>(),
        "in seq order"
    );
    assert!(cursors[1].starts_with("1:"), "{cursors:?}");
    assert!(cursors[2].starts_with("2:"), "{cursors:?}");
    drop(stream);

    // Resuming after the first feed event replays the rest once, in order.
    let mut resumed = bob.subscribe(&cursors[0]).await;
    let rest = replayed(&mut resumed, &id).await;
    assert_eq!(rest.len(), 4, "{rest:?}");
    assert_eq!(texts(&rest[..1]), ["in feeds 2"]);
    assert!(matches!(rest[1], Change::MembersAdded(_)));
    assert_eq!(
        texts(&rest[2..]),
        ["on the timeline 1", "on the timeline 2"]
    );
    // And from the start, a cursor issued before anything was on the timeline.
    assert!(start.starts_with("1:"), "{start}");
    let mut from_start = bob.subscribe(&start).await;
    assert_eq!(replayed(&mut from_start, &id).await.len(), 5);
    // Resuming after the last event: nothing, then live.
    let mut at_end = bob.subscribe(&cursors[4]).await;
    assert!(replayed(&mut at_end, &id).await.is_empty());
    alice.send(&id, "live again").await;
    let (_, again) = next_conversation_event(&mut at_end).await;
    assert_eq!(sent_text(again.change), "live again");
    server.shutdown().await;
}

#[tokio::test]
async fn a_resume_behind_the_trimmed_timeline_gets_a_gap_then_the_rest_in_order() {
    let server = TestServer::start_with(|c| c.database.fanout_on_read_members = 2).await;
    let [alice, bob, carol, _] = four_people(&server).await;
    let group = alice.group_with("big", &[&bob, &carol]).await;
    let id = group.conversation_id.clone();
    let mut stream = bob.subscribe("").await;
    let cursor = until_caught_up(&mut stream).await;
    drop(stream);
    let texts: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    send_all(
        &alice,
        &id,
        &texts.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    // Retention keeps the last 3 positions of the timeline while bob is away.
    server.open_store().await.trim_feeds(3).await.expect("trim");

    let mut resumed = bob.subscribe(&cursor).await;
    assert_eq!(
        gap_then_messages(&mut resumed, 3).await,
        ["m7", "m8", "m9"],
        "then the rest, in order"
    );
    server.shutdown().await;
}
