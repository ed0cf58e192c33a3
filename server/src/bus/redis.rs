//! The cluster bus: Redis pub/sub between nodes, with local delivery that does not depend
//! on Redis. If Redis goes away, streams on this node still get this node's events; events
//! from other nodes reach them from the store (resync on reconnect, and heartbeat checks)
//! and live delivery resumes by itself when Redis is back.

use std::{collections::HashMap, sync::Arc, time::Duration};

use deadpool_redis::{Config as PoolConfig, Pool, Runtime, redis};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{BusMessage, EventBus};
use crate::{
    domain::{Event, Published, TypingSignal},
    error::{Error, Result},
    redis_keys,
};

/// Events waiting to be published to Redis; past this, new ones are dropped (and healed
/// from the store on the receiving side) rather than queued without bound.
const PUBLISH_QUEUE: usize = 10_000;
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What travels between nodes, stamped with the sending node.
#[derive(Serialize, Deserialize)]
struct Envelope {
    node: Uuid,
    body: Wire,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    Event {
        event: Box<Event>,
        recipients: HashMap<Uuid, u64>,
    },
    SessionRevoked {
        session: Uuid,
    },
    Typing(TypingSignal),
}

/// Redis-backed [`EventBus`].
pub struct RedisBus {
    local: broadcast::Sender<BusMessage>,
    outbox: mpsc::Sender<Wire>,
}

impl RedisBus {
    /// Starts the publisher and subscriber tasks on `redis`, which run until `shutdown`.
    /// An unreachable Redis is retried, never fatal.
    pub fn start(redis: &RedisHandles, capacity: usize, shutdown: CancellationToken) -> Arc<Self> {
        let (client, pool) = (redis.client.clone(), redis.pool.clone());
        let channel = redis_keys::events_channel(&redis.prefix);
        let (local, _) = broadcast::channel(capacity.max(16));
        let (outbox, queue) = mpsc::channel(PUBLISH_QUEUE);
        let node = Uuid::now_v7();
        tokio::spawn(publish_loop(
            pool,
            channel.clone(),
            node,
            queue,
            shutdown.clone(),
        ));
        tokio::spawn(subscribe_loop(
            client,
            channel,
            node,
            local.clone(),
            shutdown,
        ));
        Arc::new(Self { local, outbox })
    }
}

/// One Redis deployment: a pooled connection for commands, and a client that opens the
/// dedicated connections pub/sub needs.
#[derive(Clone)]
pub struct RedisHandles {
    pub client: redis::Client,
    pub pool: Pool,
    /// Start of every key and channel (see `redis_keys`).
    pub prefix: String,
}

impl RedisHandles {
    /// Parses `url`; connecting happens lazily (and is retried) on use.
    pub fn new(url: &str, prefix: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::internal(format!("redis.url: {e}")))?;
        let pool = PoolConfig::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| Error::internal(format!("redis.url: {e}")))?;
        Ok(Self {
            client,
            pool,
            prefix: prefix.to_owned(),
        })
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: Published) {
        let wire = Wire::Event {
            event: Box::new((*event.event).clone()),
            recipients: event.recipients.clone(),
        };
        let _ = self.local.send(BusMessage::Event(Arc::new(event)));
        if self.outbox.try_send(wire).is_err() {
            tracing::warn!(
                "redis publish queue full: other nodes will read this event from the store"
            );
        }
    }

    fn publish_typing(&self, signal: TypingSignal) {
        let wire = Wire::Typing(signal.clone());
        let _ = self.local.send(BusMessage::Typing(Arc::new(signal)));
        // Dropped when the queue is full: a missed typing indication is harmless.
        let _ = self.outbox.try_send(wire);
    }

    fn publish_revocation(&self, session: Uuid) {
        if self
            .outbox
            .try_send(Wire::SessionRevoked { session })
            .is_err()
        {
            // Other nodes reload revocations from the database when they resync.
            tracing::warn!(%session, "redis publish queue full: revocation not broadcast");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.local.subscribe()
    }

    fn lossy(&self) -> bool {
        true
    }
}

async fn publish_loop(
    pool: Pool,
    channel: String,
    node: Uuid,
    mut queue: mpsc::Receiver<Wire>,
    shutdown: CancellationToken,
) {
    loop {
        let body = tokio::select! {
            body = queue.recv() => match body { Some(body) => body, None => return },
            _ = shutdown.cancelled() => return,
        };
        let payload = match serde_json::to_string(&Envelope { node, body }) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode a message for redis");
                continue;
            }
        };
        let sent: Result<(), String> = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(err) = sent {
            // Not retried: receivers heal from the store (resync / heartbeat check).
            tracing::warn!(error = %err, "redis publish failed");
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    node: Uuid,
    local: broadcast::Sender<BusMessage>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let outcome = tokio::select! {
            outcome = session => outcome,
            _ = shutdown.cancelled() => return,
        };
        match outcome {
            Ok(pubsub) => {
                tracing::info!("redis bus subscribed");
                backoff = Duration::from_millis(100);
                // Anything published while we were not subscribed is only in the store.
                let _ = local.send(BusMessage::Resync);
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = shutdown.cancelled() => return,
                    };
                    let Some(message) = message else { break };
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    if let Some(message) = decode(&payload, node) {
                        let _ = local.send(message);
                    }
                }
                tracing::warn!("redis bus subscription lost; reconnecting");
            }
            Err(err) => tracing::warn!(error = %err, "redis bus unavailable; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What a message from Redis means for this node; `None` for its own (already applied
/// here) and for undecodable ones.
fn decode(payload: &str, this_node: Uuid) -> Option<BusMessage> {
    let envelope = match serde_json::from_str::<Envelope>(payload) {
        Ok(envelope) => envelope,
        Err(err) => {
            tracing::warn!(error = %err, "undecodable message on the redis bus");
            return None;
        }
    };
    if envelope.node == this_node {
        return None;
    }
    Some(match envelope.body {
        Wire::Event { event, recipients } => BusMessage::Event(Arc::new(Published {
            event: Arc::from(event),
            recipients,
        })),
        Wire::SessionRevoked { session } => BusMessage::SessionRevoked(session),
        Wire::Typing(signal) => BusMessage::Typing(Arc::new(signal)),
    })
}
