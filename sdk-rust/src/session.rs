//! The signed-in session and where an app keeps it between runs.

use std::{
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

use crate::error::TokenStoreError;

/// A signed-in device: the tokens the server issued and when they expire. The SDK keeps
/// it current (refresh tokens rotate on every use) and hands every new one to the
/// [`TokenStore`].
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The signed-in user.
    pub user_id: String,
    /// This device's session (stays the same across refreshes).
    pub session_id: String,
    /// Sent with every call; short-lived.
    pub access_token: String,
    /// When the access token stops working (refreshed shortly before).
    pub access_token_expire_time: SystemTime,
    /// Exchanged for new tokens; single-use (rotates on every refresh).
    pub refresh_token: String,
    /// When the session ends unless refreshed before.
    pub refresh_token_expire_time: SystemTime,
}

impl std::fmt::Debug for Session {
    /// Tokens are credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("access_token", &"[redacted]")
            .field("access_token_expire_time", &self.access_token_expire_time)
            .field("refresh_token", &"[redacted]")
            .field("refresh_token_expire_time", &self.refresh_token_expire_time)
            .finish()
    }
}

impl Session {
    /// From the token pair of a `Register`, `Login` or `RefreshToken` answer.
    pub(crate) fn from_tokens(
        user_id: String,
        tokens: secureconnect_proto::auth::v1::TokenPair,
    ) -> Self {
        let time = |t: Option<prost_types::Timestamp>| {
            t.and_then(|t| SystemTime::try_from(t).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        Self {
            user_id,
            session_id: tokens.session_id,
            access_token: tokens.access_token,
            access_token_expire_time: time(tokens.access_token_expire_time),
            refresh_token: tokens.refresh_token,
            refresh_token_expire_time: time(tokens.refresh_token_expire_time),
        }
    }
}

/// Where the session lives between runs: a file, the OS keychain, browser storage…
/// Called on sign-in, on every refresh (the refresh token rotates: an app that loses the
/// new one is signed out at its next start) and on sign-out. Failures are reported to
/// the call that caused them, never swallowed.
pub trait TokenStore: Send + Sync {
    /// The stored session, if any (read once, when the client is built).
    fn load(&self) -> Result<Option<Session>, TokenStoreError>;
    /// Replaces the stored session.
    fn save(&self, session: &Session) -> Result<(), TokenStoreError>;
    /// Forgets it (signed out, or the server ended the session).
    fn clear(&self) -> Result<(), TokenStoreError>;
}

/// The default store: memory only, so the session ends with the process.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    session: Mutex<Option<Session>>,
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<Session>, TokenStoreError> {
        Ok(self
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn save(&self, session: &Session) -> Result<(), TokenStoreError> {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = Some(session.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), TokenStoreError> {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }
}
