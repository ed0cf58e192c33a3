//! argon2id password hashing, off the async runtime and bounded.
//!
//! Each hash takes ~19 MiB and tens of milliseconds of CPU. Unbounded, a burst of sign-ins
//! runs one per blocking thread at once (60 concurrent sign-ins once took the server from
//! 20 MB to 1.2 GB). So at most `concurrency` hashes run at a time (the cores: more would
//! not finish sooner), a short queue waits behind them, and past that a call is refused at
//! once with `RESOURCE_EXHAUSTED` and a retry delay instead of piling up.

use std::{sync::Arc, time::Duration};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// How long a refused caller is asked to wait: a queue's worth of hashes drains in about
/// this time on a small machine.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The bounded password hasher (see the module docs).
pub struct Passwords {
    /// Hashes running or queued: a permit is needed to enter at all.
    admitted: Arc<Semaphore>,
    /// Hashes running.
    running: Arc<Semaphore>,
}

impl Passwords {
    /// `concurrency` hashes at a time (0: one per core), `queue` more waiting.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            concurrency
        };
        Self {
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
            running: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Hashes `password` with argon2id and a random salt, in PHC string format.
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(Error::internal)
        })
        .await
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool> {
        self.run(move || {
            let parsed = PasswordHash::new(&hash).map_err(Error::internal)?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    /// A hash of a random password, verified against when the email is unknown so that a
    /// wrong email takes as long as a wrong password (no user enumeration by timing).
    pub async fn decoy_hash(&self) -> Result<String> {
        self.hash(uuid::Uuid::new_v4().to_string()).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| Error::Busy {
                message: "too many sign-ins in progress; retry shortly",
                retry_after: RETRY_AFTER,
            })?;
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        tokio::task::spawn_blocking(move || {
            let _running = running;
            work()
        })
        .await
        .map_err(Error::internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_a_retry_delay() {
        let passwords = Arc::new(Passwords::new(1, 1));
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let passwords = Arc::clone(&passwords);
                tokio::spawn(async move { passwords.hash("correct horse".into()).await })
            })
            .collect();
        let mut busy = 0;
        let mut hashed = 0;
        for call in calls {
            match call.await.expect("join") {
                Ok(hash) => {
                    assert!(hash.starts_with("$argon2id$"));
                    hashed += 1;
                }
                Err(Error::Busy { retry_after, .. }) => {
                    assert_eq!(retry_after, RETRY_AFTER);
                    busy += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(
            hashed >= 2,
            "one running and one queued get through: {hashed}"
        );
        assert!(busy >= 1, "the rest are refused: {busy}");
        // Once the burst is over, hashing works again.
        let hash = passwords.hash("pw".into()).await.expect("hash");
        assert!(passwords.verify("pw".into(), hash).await.expect("verify"));
    }
}
