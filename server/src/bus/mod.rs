//! The event bus: how committed events reach the streams. In-process in the embedded
//! default ([`LocalBus`]); across nodes through Redis pub/sub in cluster mode
//! ([`RedisBus`]).
//!
//! The bus may lose messages (Redis pub/sub is at-most-once, and Redis can go away). That
//! never loses events: each is committed to its recipients' feeds before it is published,
//! feeds are dense per user, and streams read any hole from the store. A lossy bus also
//! sends [`BusMessage::Resync`] whenever it may have missed something, and streams on a
//! lossy bus re-check their feed on every heartbeat.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::{Published, Signal};

mod redis;
mod routes;

pub use self::redis::{RedisBus, RedisHandles};

/// What the bus hands to the streams of this node.
#[derive(Debug, Clone)]
pub enum BusMessage {
    /// A committed event.
    Event(Arc<Published>),
    /// Events may have been missed (the bus reconnected): re-read feeds from the store.
    Resync,
    /// A session was revoked on another node: its tokens and streams must stop here too.
    SessionRevoked(uuid::Uuid),
    /// Something ephemeral (typing, a poll's tally): a stream that misses it loses
    /// nothing that matters.
    Signal(Arc<Signal>),
}

/// Fan-out of committed events to every open stream.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Hands a committed event to the streams of every node. Never blocks: a stream that
    /// falls behind is cut off and resumes from the store.
    fn publish(&self, event: Published);
    /// Tells the other nodes that a session was revoked (this node already knows).
    fn publish_revocation(&self, session: uuid::Uuid);
    /// Hands an ephemeral signal to the recipients' streams on every node.
    fn publish_signal(&self, signal: Signal);
    /// A receiver of everything published from now on.
    fn subscribe(&self) -> broadcast::Receiver<BusMessage>;
    /// A stream of `user` opened on this node: from now on other nodes send their events
    /// here. Returns once they can know, so the stream may then read its feed head.
    async fn attach(&self, user: Uuid);
    /// A stream of `user` on this node ended.
    fn detach(&self, user: Uuid);
    /// Whether messages can be lost on the way (streams then poll their feed on heartbeats).
    fn lossy(&self) -> bool;
}

/// Publishes what a write committed (if anything) and hands back its value: the one step
/// every domain service takes after a store write.
pub fn publish_committed<T>(bus: &dyn EventBus, committed: crate::store::Committed<T>) -> T {
    if let Some(event) = committed.published {
        bus.publish(event);
    }
    committed.value
}

/// The embedded bus: one broadcast channel in this process; nothing is ever lost.
pub struct LocalBus {
    sender: broadcast::Sender<BusMessage>,
}

impl LocalBus {
    /// `capacity` bounds how far any stream may lag before it re-reads from the store.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(16));
        Self { sender }
    }
}

#[async_trait]
impl EventBus for LocalBus {
    fn publish(&self, event: Published) {
        // An error only means no stream is open right now; the store has the event.
        let _ = self.sender.send(BusMessage::Event(Arc::new(event)));
    }

    fn publish_signal(&self, signal: Signal) {
        let _ = self.sender.send(BusMessage::Signal(Arc::new(signal)));
    }

    fn publish_revocation(&self, _session: uuid::Uuid) {
        // One node: the revoking node's own cache is the only one.
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.sender.subscribe()
    }

    async fn attach(&self, _user: Uuid) {}

    fn detach(&self, _user: Uuid) {}

    fn lossy(&self) -> bool {
        false
    }
}
