//! The revoked-session cache: checked on every request without touching the database;
//! kept in step across nodes by the bus (see `Auth::follow_revocations`).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use uuid::Uuid;

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
