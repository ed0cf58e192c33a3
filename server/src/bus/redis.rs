//! The cluster bus: Redis pub/sub between nodes, with local delivery that does not depend
//! on Redis. Events go only to the nodes holding their recipients' streams (each node has
//! its own channel; see `routes.rs`); revocations, events on the shared timeline and
//! events for very large groups go to every node on one shared channel. If Redis goes away, streams on this node still get this node's events; events
//! from other nodes reach them from the store (resync on reconnect, and heartbeat checks)
//! and live delivery resumes by itself when Redis is back.

use std::{sync::Arc, time::Duration};

use deadpool_redis::{Config as PoolConfig, Pool, Runtime, redis};
use futures::StreamExt;
use tokio::{
    sync::{broadcast, mpsc},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    BusMessage, EventBus,
    routes::{self, Routes},
};
use crate::{
    domain::{Published, Signal},
    error::{Error, Result},
    format::{self, BusPayload},
    redis_keys,
};

/// Events waiting to be published to Redis; past this, new ones are dropped (and healed
/// from the store on the receiving side) rather than queued without bound.
const PUBLISH_QUEUE: usize = 10_000;
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What travels between nodes (stamped with the sending node on the wire, in the
/// versioned format of `crate::format`).
type Wire = BusPayload;

/// Redis-backed [`EventBus`].
pub struct RedisBus {
    local: broadcast::Sender<BusMessage>,
    outbox: mpsc::Sender<Wire>,
    routes: Arc<Routes>,
}

/// The channels a node publishes to and listens on.
#[derive(Clone)]
struct Channels {
    prefix: String,
    /// To every node.
    broadcast: String,
    /// To this node only.
    own: String,
}

impl Channels {
    fn of_node(&self, node: Uuid) -> String {
        redis_keys::node_channel(&self.prefix, &node.to_string())
    }
}

impl RedisBus {
    /// Starts the publisher and subscriber tasks on `redis`, which run until `shutdown`,
    /// and returns them named, subscriber first, for an orderly teardown.
    /// An unreachable Redis is retried, never fatal.
    pub fn start(
        redis: &RedisHandles,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, [(&'static str, JoinHandle<()>); 3]) {
        let (client, pool) = (redis.client.clone(), redis.pool.clone());
        let node = Uuid::now_v7();
        let channels = Channels {
            prefix: redis.prefix.clone(),
            broadcast: redis_keys::events_channel(&redis.prefix),
            own: redis_keys::node_channel(&redis.prefix, &node.to_string()),
        };
        let routes = Arc::new(Routes::new(pool.clone(), &redis.prefix, node));
        let (local, _) = broadcast::channel(capacity.max(16));
        let (outbox, queue) = mpsc::channel(PUBLISH_QUEUE);
        let publisher = tokio::spawn(publish_loop(
            pool,
            channels.clone(),
            node,
            Arc::clone(&routes),
            queue,
            shutdown.clone(),
        ));
        let subscriber = tokio::spawn(subscribe_loop(
            client,
            channels,
            node,
            Arc::clone(&routes),
            local.clone(),
            shutdown.clone(),
        ));
        let refresher = tokio::spawn(refresh_routes(Arc::clone(&routes), shutdown));
        let bus = Arc::new(Self {
            local,
            outbox,
            routes,
        });
        let tasks = [
            ("redis bus subscriber", subscriber),
            ("redis route refresher", refresher),
            ("redis bus publisher", publisher),
        ];
        (bus, tasks)
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

#[async_trait::async_trait]
impl EventBus for RedisBus {
    fn publish(&self, event: Published) {
        let wire = Wire::Event(event.clone());
        let _ = self.local.send(BusMessage::Event(Arc::new(event)));
        if self.outbox.try_send(wire).is_err() {
            tracing::warn!(
                "redis publish queue full: other nodes will read this event from the store"
            );
        }
    }

    fn publish_signal(&self, signal: Signal) {
        let wire = Wire::Signal(signal.clone());
        let _ = self.local.send(BusMessage::Signal(Arc::new(signal)));
        // Dropped when the queue is full: a missed signal is harmless.
        let _ = self.outbox.try_send(wire);
    }

    fn publish_revocation(&self, session: Uuid) {
        if self.outbox.try_send(Wire::SessionRevoked(session)).is_err() {
            // Other nodes reload revocations from the database when they resync.
            tracing::warn!(%session, "redis publish queue full: revocation not broadcast");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.local.subscribe()
    }

    async fn attach(&self, user: Uuid) {
        self.routes.attach(user).await;
    }

    fn detach(&self, user: Uuid) {
        if let Some(forget) = self.routes.detach(user) {
            tokio::spawn(forget);
        }
    }

    fn lossy(&self) -> bool {
        true
    }
}

/// Keeps this node's routes alive in Redis.
async fn refresh_routes(routes: Arc<Routes>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(routes::REFRESH_PERIOD) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(err) = routes.refresh().await {
            tracing::warn!(error = %err, "cannot refresh stream routes in redis");
        }
    }
}

/// Where a message goes: the nodes with streams of its recipients, or every node.
async fn targets(body: &Wire, routes: &Routes, channels: &Channels) -> Vec<String> {
    let recipients: Vec<Uuid> = match body {
        // Every stream follows every timeline position (to tell a hole from an event of
        // someone else's conversation), so those go to every node.
        Wire::Event(published) if published.timeline.is_some() => {
            return vec![channels.broadcast.clone()];
        }
        Wire::Event(published) => published.recipients.keys().copied().collect(),
        Wire::Signal(signal) => signal.recipients().to_vec(),
        Wire::SessionRevoked(_) => return vec![channels.broadcast.clone()],
    };
    if recipients.len() > routes::MAX_ROUTED_RECIPIENTS {
        return vec![channels.broadcast.clone()];
    }
    match routes.nodes_of(&recipients).await {
        Ok(nodes) => nodes.into_iter().map(|n| channels.of_node(n)).collect(),
        Err(err) => {
            // Cannot tell who needs it: everyone gets it (if Redis takes the publish).
            tracing::debug!(error = %err, "route lookup failed; broadcasting");
            vec![channels.broadcast.clone()]
        }
    }
}

async fn publish_loop(
    pool: Pool,
    channels: Channels,
    node: Uuid,
    routes: Arc<Routes>,
    mut queue: mpsc::Receiver<Wire>,
    shutdown: CancellationToken,
) {
    loop {
        let body = tokio::select! {
            body = queue.recv() => match body { Some(body) => body, None => return },
            _ = shutdown.cancelled() => return,
        };
        let targets = targets(&body, &routes, &channels).await;
        if targets.is_empty() {
            continue; // No other node streams to any recipient.
        }
        let payload = format::encode_bus(node, &body);
        let sent: Result<(), String> = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            let mut pipe = redis::pipe();
            for channel in &targets {
                pipe.cmd("PUBLISH").arg(channel).arg(&payload).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
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
    channels: Channels,
    node: Uuid,
    routes: Arc<Routes>,
    local: broadcast::Sender<BusMessage>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub
                .subscribe(&[&channels.broadcast, &channels.own])
                .await?;
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
                // A restarted Redis has forgotten our routes: record them again first, so
                // events committed from now on are sent here, and then have streams
                // re-read what was published while we were not listening.
                if let Err(err) = routes.refresh().await {
                    tracing::warn!(error = %err, "cannot record stream routes in redis");
                }
                let _ = local.send(BusMessage::Resync);
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = shutdown.cancelled() => return,
                    };
                    let Some(message) = message else { break };
                    let Ok(payload) = message.get_payload::<Vec<u8>>() else {
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
fn decode(payload: &[u8], this_node: Uuid) -> Option<BusMessage> {
    let (node, body) = match format::decode_bus(payload) {
        Ok(decoded) => decoded,
        Err(err) => {
            tracing::warn!(error = %err, "undecodable message on the redis bus");
            return None;
        }
    };
    if node == this_node {
        return None;
    }
    Some(match body {
        Wire::Event(published) => BusMessage::Event(Arc::new(published)),
        Wire::SessionRevoked(session) => BusMessage::SessionRevoked(session),
        Wire::Signal(signal) => BusMessage::Signal(Arc::new(signal)),
    })
}
