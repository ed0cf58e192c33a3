//! Access tokens this node has already verified. A request bearing one skips the Ed25519
//! signature check and the Datalog run (about 150 µs of CPU: most of a small request's
//! cost, `perf`), which depend only on the token's bytes and the clock.
//!
//! Only tokens as minted are kept: one authority block carrying an `expires` fact that
//! bounds the entry. A holder may attenuate a token with blocks that check time or the
//! operation; such a token is verified on every use. Revocation is checked by the caller
//! on every request, cached or not.

use std::{collections::HashMap, sync::Mutex, time::SystemTime};

use super::Principal;

/// Entries kept at most. Only tokens that verified enter (a forged token never does), so
/// this bounds memory (about 40 MB of tokens) rather than defending against floods.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<Box<str>, Verified>>,
}

#[derive(Clone, Copy)]
struct Verified {
    principal: Principal,
    expires: SystemTime,
}

impl VerifiedTokens {
    /// Who `token` names, when it was verified before and is still unexpired at `now`.
    pub fn get(&self, token: &str, now: SystemTime) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        let verified = entries.get(token)?;
        (now < verified.expires).then_some(verified.principal)
    }

    /// Remembers that `token` verified as `principal`, valid until `expires`.
    pub fn insert(&self, token: &str, principal: Principal, expires: SystemTime, now: SystemTime) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, verified| now < verified.expires);
            if entries.len() >= CAPACITY {
                // Every entry still valid: start over rather than track recency.
                entries.clear();
            }
        }
        entries.insert(token.into(), Verified { principal, expires });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;

    #[test]
    fn an_entry_lasts_until_its_expiry() {
        let cache = VerifiedTokens::default();
        let now = SystemTime::now();
        let principal = Principal {
            user_id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
        };
        assert!(cache.get("t", now).is_none());
        cache.insert("t", principal, now + Duration::from_secs(60), now);
        assert_eq!(
            cache.get("t", now).map(|p| p.user_id),
            Some(principal.user_id)
        );
        assert!(cache.get("t", now + Duration::from_secs(60)).is_none());
        assert!(cache.get("other", now).is_none());
    }
}
