//! Login throttling and the revoked-session cache (in-process; Redis in cluster mode).

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Rate limits for login attempts, per email address and per client address, so neither
/// one account nor one client can be brute-forced.
pub struct LoginLimiter {
    per_email: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        let per_email = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        // One address may legitimately serve many users (NAT), so it gets more room.
        let per_ip = per_email.saturating_mul(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN));
        Self {
            per_email: RateLimiter::keyed(Quota::per_minute(per_email)),
            per_ip: RateLimiter::keyed(Quota::per_minute(per_ip)),
        }
    }

    /// Counts one attempt; `RateLimited` with a retry delay once over the limit.
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<()> {
        check_key(&self.per_email, &email.to_owned())?;
        if let Some(ip) = ip {
            check_key(&self.per_ip, &ip)?;
        }
        Ok(())
    }
}

/// Keys tracked before idle ones are dropped: without this, attempts with ever-new email
/// addresses would grow the limiter's memory without bound.
const MAX_TRACKED_KEYS: usize = 10_000;

fn check_key<K: Clone + Hash + Eq>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<()> {
    if limiter.len() > MAX_TRACKED_KEYS {
        // Forgets keys whose limit has fully recovered; they would start from full anyway.
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
    limiter
        .check_key(key)
        .map_err(|not_until| Error::RateLimited {
            retry_after: not_until.wait_time_from(governor::clock::DefaultClock::default().now()),
        })
}

/// Sessions revoked recently enough that access tokens minted for them may still be
/// unexpired. Checked on every request without touching the database.
pub struct RevokedSessions {
    /// Session id → when its last access token expires at the latest.
    entries: Mutex<HashMap<Uuid, std::time::Instant>>,
    access_ttl: Duration,
}

impl RevokedSessions {
    pub fn new(access_ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            access_ttl,
        }
    }

    pub fn insert(&self, session: Uuid) {
        let now = std::time::Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget sessions whose tokens have all expired anyway.
        entries.retain(|_, until| *until > now);
        entries.insert(session, now + self.access_ttl);
    }

    /// How far back revocations matter: older ones only concern expired tokens.
    pub fn window(&self) -> Duration {
        self.access_ttl
    }

    pub fn contains(&self, session: Uuid) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&session)
    }
}
