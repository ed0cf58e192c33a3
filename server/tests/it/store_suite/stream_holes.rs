//! A stream fed straight from the bus, with publishes reordered or lost on purpose: an
//! event that overtook the one before it is held back and both arrive in order, once; a
//! hole the bus lost for good is read from the store (after a short wait, with no
//! heartbeat or resync to trigger it) and nothing after it is skipped or repeated.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use secureconnect_server::{
    auth::{Principal, RevokedSessions},
    bus::{EventBus, LocalBus},
    config::StreamConfig,
    domain::{Event, Published},
    events::{Events, StreamItem},
    presence::{LocalPresence, Presence},
    ratelimit::LocalRateLimiter,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Stores, fixtures};

/// The next item, waiting at most well past the hole wait.
async fn next(items: &mut mpsc::Receiver<StreamItem>) -> StreamItem {
    tokio::time::timeout(Duration::from_secs(10), items.recv())
        .await
        .expect("an item within 10 s")
        .expect("the stream is open")
}

/// The conversation seq of the next item, which must be a conversation event.
async fn next_seq(items: &mut mpsc::Receiver<StreamItem>) -> u64 {
    match next(items).await {
        StreamItem::Event(item) => match item.event.as_ref() {
            Event::Conversation { seq, .. } => *seq,
            other => panic!("not a conversation event: {other:?}"),
        },
        other => panic!("not an event: {other:?}"),
    }
}

#[tokio::test]
async fn overtaken_events_arrive_in_order_and_lost_ones_are_read_from_the_store() {
    let stores = Stores::sqlite().await;
    let (a, b, conversation) = fixtures::group(&stores).await;
    let bus = Arc::new(LocalBus::new(64));
    let presence = Arc::new(Presence::new(
        Arc::new(LocalPresence::default()),
        stores.users.clone(),
        stores.chat.clone(),
        bus.clone(),
        Arc::new(LocalRateLimiter::default()),
    ));
    let events = Events::new(
        stores.chat.clone(),
        bus.clone(),
        // Heartbeats far away: only the hole wait can fill a lost hole here.
        StreamConfig {
            heartbeat_secs: 600,
            buffer_events: 64,
            max_replay_events: 1000,
        },
        Arc::new(RevokedSessions::new(Duration::from_secs(900))),
        presence,
        CancellationToken::new(),
    );
    let who = Principal {
        user_id: b,
        session_id: Uuid::now_v7(),
    };
    let mut items = events.subscribe(&who, "").await.expect("subscribe");
    assert!(matches!(
        next(&mut items).await,
        StreamItem::CaughtUp { .. }
    ));

    let send = async |request_id: &str| -> (u64, Published) {
        let sent = stores
            .chat
            .send_message(fixtures::message(conversation, a, request_id), Utc::now())
            .await
            .expect("send");
        (sent.value.seq, sent.published.expect("an event"))
    };
    // Overtaken: the second publish reaches the bus first.
    let (first, first_event) = send("m1").await;
    let (second, second_event) = send("m2").await;
    bus.publish(second_event);
    bus.publish(first_event);
    assert_eq!(next_seq(&mut items).await, first);
    assert_eq!(next_seq(&mut items).await, second);

    // Lost: the third is never published; the fourth is.
    let (third, _lost) = send("m3").await;
    let (fourth, fourth_event) = send("m4").await;
    bus.publish(fourth_event);
    assert_eq!(next_seq(&mut items).await, third);
    assert_eq!(next_seq(&mut items).await, fourth);

    // Nothing repeated: the next live event is the next item.
    let (fifth, fifth_event) = send("m5").await;
    bus.publish(fifth_event);
    assert_eq!(next_seq(&mut items).await, fifth);
}
