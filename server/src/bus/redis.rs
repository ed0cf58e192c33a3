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
    domain::{Event, Published},
    error::{Error, Result},
    redis_keys::EVENTS_CHANNEL,
};

/// Events waiting to be published to Redis; past this, new ones are dropped (and healed
/// from the store on the receiving side) rather than queued without bound.
const PUBLISH_QUEUE: usize = 10_000;
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// An event as it travels between nodes.
#[derive(Serialize)]
struct WireOut<'a> {
    node: Uuid,
    event: &'a Event,
    recipients: &'a HashMap<Uuid, u64>,
}

#[derive(Deserialize)]
struct WireIn {
    node: Uuid,
    event: Event,
    recipients: HashMap<Uuid, u64>,
}

/// Redis-backed [`EventBus`].
pub struct RedisBus {
    local: broadcast::Sender<BusMessage>,
    outbox: mpsc::Sender<Arc<Published>>,
}

impl RedisBus {
    /// Connects to Redis at `url` and starts the publisher and subscriber tasks, which run
    /// until `shutdown`. Fails only on a malformed URL: an unreachable Redis is retried.
    pub fn start(url: &str, capacity: usize, shutdown: CancellationToken) -> Result<Arc<Self>> {
        let client =
            redis::Client::open(url).map_err(|e| Error::internal(format!("redis.url: {e}")))?;
        let pool = PoolConfig::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| Error::internal(format!("redis.url: {e}")))?;
        let (local, _) = broadcast::channel(capacity.max(16));
        let (outbox, queue) = mpsc::channel(PUBLISH_QUEUE);
        let node = Uuid::now_v7();
        tokio::spawn(publish_loop(pool, node, queue, shutdown.clone()));
        tokio::spawn(subscribe_loop(client, node, local.clone(), shutdown));
        Ok(Arc::new(Self { local, outbox }))
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: Published) {
        let event = Arc::new(event);
        let _ = self.local.send(BusMessage::Event(Arc::clone(&event)));
        if self.outbox.try_send(event).is_err() {
            tracing::warn!(
                "redis publish queue full: other nodes will read this event from the store"
            );
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
    node: Uuid,
    mut queue: mpsc::Receiver<Arc<Published>>,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            event = queue.recv() => match event { Some(event) => event, None => return },
            _ = shutdown.cancelled() => return,
        };
        let wire = WireOut {
            node,
            event: &event.event,
            recipients: &event.recipients,
        };
        let payload = match serde_json::to_string(&wire) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode event for redis");
                continue;
            }
        };
        let sent: Result<(), String> = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("PUBLISH")
                .arg(EVENTS_CHANNEL)
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
    node: Uuid,
    local: broadcast::Sender<BusMessage>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(EVENTS_CHANNEL).await?;
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
                    match serde_json::from_str::<WireIn>(&payload) {
                        Ok(wire) if wire.node != node => {
                            let published = Published {
                                event: Arc::new(wire.event),
                                recipients: wire.recipients,
                            };
                            let _ = local.send(BusMessage::Event(Arc::new(published)));
                        }
                        Ok(_) => {} // our own, already delivered locally
                        Err(err) => {
                            tracing::warn!(error = %err, "undecodable event on the redis bus")
                        }
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
