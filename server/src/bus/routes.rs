//! Which nodes hold whose streams, so an event goes only to the nodes that need it instead
//! of to every node (see `redis_keys::routes`).
//!
//! A node records a route before its new stream reads the feed head, and a publisher
//! looks routes up after the commit; so an event committed after that head read always
//! finds the route, and anything earlier is in the replay. Routes expire unless the node
//! refreshes them, so a crashed node's routes vanish by themselves; a route missing for a
//! while (Redis was down when the stream opened) costs live delivery until the next
//! refresh, never an event: streams on a lossy bus re-check their feed every heartbeat.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use chrono::Utc;
use deadpool_redis::{Pool, redis};
use uuid::Uuid;

use crate::{expiring_set, redis_keys};

/// How long a route lives without a refresh.
const ROUTE_TTL: Duration = Duration::from_secs(30);
/// How often a node refreshes its routes.
pub const REFRESH_PERIOD: Duration = Duration::from_secs(10);
/// Past this many recipients an event is broadcast: looking up every member of a huge
/// group costs more than letting every node filter it.
pub const MAX_ROUTED_RECIPIENTS: usize = 256;
/// Longest wait for Redis while opening a stream.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(1);

/// This node's routes and the lookups of others'.
pub struct Routes {
    pool: Pool,
    prefix: String,
    node: Uuid,
    /// Open streams on this node, per user.
    local: Mutex<HashMap<Uuid, usize>>,
}

impl Routes {
    pub fn new(pool: Pool, prefix: &str, node: Uuid) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
            node,
            local: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, user: Uuid) -> String {
        redis_keys::routes(&self.prefix, &user.to_string())
    }

    /// Records that `user` has a stream here, in Redis before returning (bounded wait).
    pub async fn attach(&self, user: Uuid) {
        *self
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user)
            .or_default() += 1;
        let recorded = tokio::time::timeout(ATTACH_TIMEOUT, self.record(&[user])).await;
        if !matches!(recorded, Ok(Ok(()))) {
            tracing::warn!(%user, "route not recorded: live delivery from other nodes waits for the next refresh");
        }
    }

    /// `user`'s stream here ended; the route goes with their last one.
    pub fn detach(&self, user: Uuid) -> Option<impl Future<Output = ()> + use<>> {
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let count = local.get_mut(&user)?;
        *count = count.saturating_sub(1);
        if *count > 0 {
            return None;
        }
        local.remove(&user);
        let (pool, key, node) = (self.pool.clone(), self.key(user), self.node.to_string());
        Some(async move {
            if let Ok(mut conn) = pool.get().await {
                let _: redis::RedisResult<i64> = redis::cmd("ZREM")
                    .arg(key)
                    .arg(node)
                    .query_async(&mut conn)
                    .await;
            }
        })
    }

    /// Re-records every route of this node (called every [`REFRESH_PERIOD`]).
    pub async fn refresh(&self) -> redis::RedisResult<()> {
        let users: Vec<Uuid> = self
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        self.record(&users).await
    }

    async fn record(&self, users: &[Uuid]) -> redis::RedisResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let now = Utc::now().timestamp_millis();
        let ttl_ms = i64::try_from(ROUTE_TTL.as_millis()).unwrap_or(i64::MAX);
        let node = self.node.to_string();
        let mut pipe = redis::pipe();
        for &user in users {
            expiring_set::renew(&mut pipe, &self.key(user), &node, now, ttl_ms);
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
        pipe.query_async(&mut conn).await
    }

    /// The other nodes holding streams of any of `users`.
    pub async fn nodes_of(&self, users: &[Uuid]) -> redis::RedisResult<HashSet<Uuid>> {
        let now = Utc::now().timestamp_millis();
        let mut pipe = redis::pipe();
        for &user in users {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(self.key(user))
                .arg(now)
                .arg("+inf");
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
        let replies: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        Ok(replies
            .into_iter()
            .flatten()
            .filter_map(|node| Uuid::parse_str(&node).ok())
            .filter(|node| *node != self.node)
            .collect())
    }
}
