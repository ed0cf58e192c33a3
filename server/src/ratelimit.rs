//! Per-subject request rate limits (sends per user, login attempts per email and per
//! client address): in-process with governor on one node; shared through Redis across a
//! cluster, so a client cannot multiply its allowance by spreading calls over nodes.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use deadpool_redis::{Pool, redis};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor, clock::Clock};

use crate::{
    error::{Error, Result},
    redis_keys,
};

/// Subjects tracked per limit before idle ones are dropped (bounds memory: sprayed keys,
/// such as ever-new email addresses, cannot grow it without end).
const MAX_TRACKED_SUBJECTS: usize = 100_000;

/// At most `max` calls per `window` for one subject of one named limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    pub name: &'static str,
    pub max: u32,
    pub window: Duration,
}

/// Checks and counts one call of `subject` against a limit.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// `RateLimited` (→ `RESOURCE_EXHAUSTED` with a retry delay) once over the limit. A
    /// refused call is not counted.
    async fn check(&self, limit: Limit, subject: &str) -> Result<()>;
}

type Limiters = HashMap<Limit, Arc<DefaultKeyedRateLimiter<String>>>;

/// One node: governor's GCRA per (limit, subject), allowing bursts of `max`.
#[derive(Default)]
pub struct LocalRateLimiter {
    limiters: Mutex<Limiters>,
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, limit: Limit, subject: &str) -> Result<()> {
        let limiter = {
            let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
            limiters
                .entry(limit)
                .or_insert_with(|| Arc::new(Governor::keyed(quota(limit))))
                .clone()
        };
        if limiter.len() > MAX_TRACKED_SUBJECTS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter
            .check_key(&subject.to_owned())
            .map_err(|not_until| Error::RateLimited {
                retry_after: not_until
                    .wait_time_from(governor::clock::DefaultClock::default().now()),
            })
    }
}

fn quota(limit: Limit) -> Quota {
    let max = NonZeroU32::new(limit.max.max(1)).unwrap_or(NonZeroU32::MIN);
    let period = (limit.window / max.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(max))
        .allow_burst(max)
}

/// A cluster: a sliding log per (limit, subject) in Redis — a sorted set of call times,
/// trimmed to the window — shared by all nodes. If Redis is unreachable the call is
/// allowed: limits protect capacity, and refusing everything while Redis restarts would
/// cost more than it saves.
pub struct RedisRateLimiter {
    pool: Pool,
    prefix: String,
}

impl RedisRateLimiter {
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
        }
    }

    async fn count(&self, limit: Limit, subject: &str) -> std::result::Result<Outcome, String> {
        let key = redis_keys::rate_log(&self.prefix, limit.name, subject);
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        let window_us = limit.window.as_micros() as u64;
        // Unique per call, so two calls in the same microsecond both count.
        let member = format!("{now_us}-{}", uuid::Uuid::new_v4().simple());
        let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
        let (count, oldest): (u64, Vec<(String, u64)>) = redis::pipe()
            .atomic()
            .zrembyscore(&key, 0, now_us.saturating_sub(window_us))
            .ignore()
            .zadd(&key, &member, now_us)
            .ignore()
            .zcard(&key)
            .zrange_withscores(&key, 0, 0)
            .pexpire(&key, limit.window.as_millis() as i64)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if count <= u64::from(limit.max.max(1)) {
            return Ok(Outcome::Allowed);
        }
        // Refused calls are not counted.
        let _: std::result::Result<u64, _> = redis::cmd("ZREM")
            .arg(&key)
            .arg(&member)
            .query_async(&mut conn)
            .await;
        let oldest_us = oldest.first().map(|(_, score)| *score).unwrap_or(now_us);
        let free_at = oldest_us + window_us;
        Ok(Outcome::Refused(Duration::from_micros(
            free_at.saturating_sub(now_us),
        )))
    }
}

enum Outcome {
    Allowed,
    Refused(Duration),
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, limit: Limit, subject: &str) -> Result<()> {
        match self.count(limit, subject).await {
            Ok(Outcome::Allowed) => Ok(()),
            Ok(Outcome::Refused(retry_after)) => Err(Error::RateLimited { retry_after }),
            Err(err) => {
                tracing::warn!(error = %err, limit = limit.name, "rate limit not checked: redis unavailable");
                Ok(())
            }
        }
    }
}
