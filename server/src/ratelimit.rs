//! Per-subject request rate limits (e.g. messages per user per second): in-process with
//! governor on one node; shared through Redis counters across a cluster, so a client
//! cannot multiply its allowance by spreading calls over nodes.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use deadpool_redis::{Pool, redis};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor, clock::Clock};

use crate::{
    error::{Error, Result},
    redis_keys,
};

/// Subjects tracked per limit before idle ones are dropped (bounds memory).
const MAX_TRACKED_SUBJECTS: usize = 100_000;

/// Checks and counts one request of `subject` against `per_second` for `limit`.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// `RateLimited` (→ `RESOURCE_EXHAUSTED` with a retry delay) once over the limit.
    async fn check(&self, limit: &'static str, subject: &str, per_second: u32) -> Result<()>;
}

/// One governor limiter per (limit name, rate).
type Limiters = HashMap<(&'static str, u32), std::sync::Arc<DefaultKeyedRateLimiter<String>>>;

/// One node: governor's GCRA per (limit, subject); bursts up to `per_second`.
#[derive(Default)]
pub struct LocalRateLimiter {
    limiters: Mutex<Limiters>,
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, limit: &'static str, subject: &str, per_second: u32) -> Result<()> {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = {
            let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
            limiters
                .entry((limit, rate.get()))
                .or_insert_with(|| std::sync::Arc::new(Governor::keyed(Quota::per_second(rate))))
                .clone()
        };
        if limiter.len() > MAX_TRACKED_SUBJECTS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&subject.to_owned())
            .map_err(|not_until| Error::RateLimited {
                retry_after: not_until
                    .wait_time_from(governor::clock::DefaultClock::default().now()),
            })
    }
}

/// A cluster: a counter per (limit, subject, second) in Redis, shared by all nodes. A fixed
/// one-second window (it can admit up to twice the rate across a window boundary), chosen
/// for being one atomic round trip. If Redis is unreachable the request is allowed: rate
/// limits protect capacity, and refusing everything while Redis restarts would cost more.
pub struct RedisRateLimiter {
    pool: Pool,
}

impl RedisRateLimiter {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, limit: &'static str, subject: &str, per_second: u32) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let key = redis_keys::rate_counter(limit, subject, now.as_secs());
        let counted: std::result::Result<u64, String> = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            let (count,): (u64,) = redis::pipe()
                .atomic()
                .incr(&key, 1)
                .expire(&key, 2)
                .ignore()
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(count)
        }
        .await;
        match counted {
            Ok(count) if count > u64::from(per_second.max(1)) => Err(Error::RateLimited {
                retry_after: Duration::from_secs(1)
                    .saturating_sub(Duration::from_nanos(u64::from(now.subsec_nanos()))),
            }),
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::warn!(error = %err, limit, "rate limit not checked: redis unavailable");
                Ok(())
            }
        }
    }
}
