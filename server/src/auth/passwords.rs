//! argon2id password hashing, off the async runtime (each hash costs tens of ms of CPU).

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

use crate::error::{Error, Result};

/// Hashes `password` with argon2id and a random salt, in PHC string format.
pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(Error::internal)
    })
    .await
    .map_err(Error::internal)?
}

/// Whether `password` matches the PHC string `hash`.
pub async fn verify(password: String, hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(Error::internal)?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(Error::internal)?
}

/// A hash of a random password, verified against when the email is unknown so that a
/// wrong email takes as long as a wrong password (no user enumeration by timing).
pub async fn decoy_hash() -> Result<String> {
    hash(uuid::Uuid::new_v4().to_string()).await
}
