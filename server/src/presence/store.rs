//! Where presence lives: in memory on one node, in Redis for a cluster (every node sees
//! every device). Nothing here is durable, and losing it costs only a wrong "online" dot
//! for at most one expiry period.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::{Pool, redis};
use uuid::Uuid;

use crate::{domain::Time, error::Result, expiring_set, redis_keys};

/// One user's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPresence {
    pub user_id: Uuid,
    pub online: bool,
    /// When a device was last connected (offline users only, when known).
    pub last_seen: Option<Time>,
}

/// Which devices hold an event stream.
#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// `session` of `user` has a stream, for at least `ttl` more (refreshed by heartbeats,
    /// so a node that dies takes its devices offline within one `ttl`).
    async fn connected(&self, user: Uuid, session: Uuid, ttl: Duration) -> Result<()>;
    /// `session`'s stream ended.
    async fn disconnected(&self, user: Uuid, session: Uuid) -> Result<()>;
    /// The presence of each of `users`.
    async fn presence(&self, users: &[Uuid]) -> Result<Vec<UserPresence>>;
}

#[derive(Default)]
struct Devices {
    expiries: HashMap<Uuid, Time>,
    last_seen: Option<Time>,
}

/// One node: a map in memory.
#[derive(Default)]
pub struct LocalPresence {
    users: Mutex<HashMap<Uuid, Devices>>,
}

fn expiry(ttl: Duration) -> Time {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl PresenceStore for LocalPresence {
    async fn connected(&self, user: Uuid, session: Uuid, ttl: Duration) -> Result<()> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let devices = users.entry(user).or_default();
        devices.expiries.insert(session, expiry(ttl));
        Ok(())
    }

    async fn disconnected(&self, user: Uuid, session: Uuid) -> Result<()> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(devices) = users.get_mut(&user) {
            devices.expiries.remove(&session);
            devices.last_seen = Some(Utc::now());
        }
        Ok(())
    }

    async fn presence(&self, users: &[Uuid]) -> Result<Vec<UserPresence>> {
        let now = Utc::now();
        let mut known = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(users
            .iter()
            .map(|&user_id| {
                let Some(devices) = known.get_mut(&user_id) else {
                    return UserPresence {
                        user_id,
                        online: false,
                        last_seen: None,
                    };
                };
                // Devices whose stream vanished without a goodbye count as seen until
                // their expiry.
                let lapsed = devices
                    .expiries
                    .values()
                    .filter(|&&t| t <= now)
                    .max()
                    .copied();
                devices.expiries.retain(|_, t| *t > now);
                devices.last_seen = devices.last_seen.max(lapsed);
                let online = !devices.expiries.is_empty();
                UserPresence {
                    user_id,
                    online,
                    last_seen: if online { None } else { devices.last_seen },
                }
            })
            .collect())
    }
}

/// A cluster: per user a sorted set of device → expiry in Redis (see `redis_keys`).
pub struct RedisPresence {
    pool: Pool,
    prefix: String,
}

/// How long "last seen" is remembered.
const LAST_SEEN_TTL_SECS: u64 = 30 * 24 * 3600;

impl RedisPresence {
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
        }
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection> {
        self.pool
            .get()
            .await
            .map_err(|e| crate::error::Error::Unavailable(format!("presence: {e}")))
    }
}

fn redis_error(err: redis::RedisError) -> crate::error::Error {
    crate::error::Error::Unavailable(format!("presence: {err}"))
}

fn from_millis(ms: i64) -> Option<Time> {
    DateTime::from_timestamp_millis(ms)
}

#[async_trait]
impl PresenceStore for RedisPresence {
    async fn connected(&self, user: Uuid, session: Uuid, ttl: Duration) -> Result<()> {
        let key = redis_keys::presence_devices(&self.prefix, &user.to_string());
        let now = Utc::now().timestamp_millis();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic();
        expiring_set::renew(&mut pipe, &key, &session.to_string(), now, ttl_ms);
        let mut conn = self.connection().await?;
        // Seen now: what remains if this node dies and the device set expires.
        pipe.cmd("SET")
            .arg(redis_keys::last_seen(&self.prefix, &user.to_string()))
            .arg(now)
            .arg("EX")
            .arg(LAST_SEEN_TTL_SECS)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_error)
    }

    async fn disconnected(&self, user: Uuid, session: Uuid) -> Result<()> {
        let user = user.to_string();
        let mut conn = self.connection().await?;
        redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(redis_keys::presence_devices(&self.prefix, &user))
            .arg(session.to_string())
            .ignore()
            .cmd("SET")
            .arg(redis_keys::last_seen(&self.prefix, &user))
            .arg(Utc::now().timestamp_millis())
            .arg("EX")
            .arg(LAST_SEEN_TTL_SECS)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_error)
    }

    async fn presence(&self, users: &[Uuid]) -> Result<Vec<UserPresence>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for user in users {
            let user = user.to_string();
            // The device that stays longest, and the recorded goodbye.
            pipe.cmd("ZRANGE")
                .arg(redis_keys::presence_devices(&self.prefix, &user))
                .arg(-1)
                .arg(-1)
                .arg("WITHSCORES")
                .cmd("GET")
                .arg(redis_keys::last_seen(&self.prefix, &user));
        }
        let mut conn = self.connection().await?;
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(redis_error)?;
        let now = Utc::now().timestamp_millis();
        Ok(users
            .iter()
            .zip(replies.chunks(2))
            .map(|(&user_id, reply)| {
                let latest_expiry: Option<i64> = reply
                    .first()
                    .and_then(|v| redis::from_redis_value::<Vec<(String, i64)>>(v.clone()).ok())
                    .and_then(|devices| devices.first().map(|(_, expiry)| *expiry));
                let goodbye: Option<i64> = reply
                    .get(1)
                    .and_then(|v| redis::from_redis_value::<Option<i64>>(v.clone()).ok())
                    .flatten();
                let online = latest_expiry.is_some_and(|expiry| expiry > now);
                let last_seen = if online {
                    None
                } else {
                    latest_expiry.max(goodbye).and_then(from_millis)
                };
                UserPresence {
                    user_id,
                    online,
                    last_seen,
                }
            })
            .collect())
    }
}
