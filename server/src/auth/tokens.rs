//! Biscuit access tokens: signed by the server's Ed25519 root key, stating the user, the
//! session and an expiry. Membership and roles are data checked per request, not claims.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use biscuit_auth::{
    AuthorizerLimits, Biscuit, KeyPair,
    macros::{authorizer, biscuit},
};
use uuid::Uuid;

use super::verified::VerifiedTokens;
use crate::{
    domain::Time,
    error::{Error, Reason, Result},
};

/// What a request may do; clients can attenuate tokens to `Read` (e.g. for bots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// Mints and verifies access tokens.
pub struct TokenAuthority {
    root: KeyPair,
    ttl: Duration,
    verified: VerifiedTokens,
}

fn invalid_token() -> Error {
    Error::Unauthenticated {
        reason: Reason::InvalidToken,
        message: "missing, invalid, expired or revoked access token",
    }
}

impl TokenAuthority {
    /// Loads the root key from `path`, creating it (owner-readable only) if missing.
    pub fn load_or_create(path: &Path, ttl: Duration) -> Result<Self> {
        let root = match std::fs::read_to_string(path) {
            Ok(pem) => KeyPair::from_private_key_pem(&pem)
                .map_err(|e| Error::internal(format!("bad root key in {}: {e}", path.display())))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let root = KeyPair::new();
                let pem = root.to_private_key_pem().map_err(Error::internal)?;
                write_private(path, pem.as_bytes())?;
                tracing::info!(path = %path.display(), "generated a new token signing key");
                root
            }
            Err(err) => return Err(Error::internal(format!("{}: {err}", path.display()))),
        };
        Ok(Self {
            root,
            ttl,
            verified: VerifiedTokens::default(),
        })
    }

    /// Mints an access token for `user`'s `session`; returns it with its expiry.
    pub fn issue(&self, user: Uuid, session: Uuid, now: Time) -> Result<(String, Time)> {
        let expiry = now + self.ttl;
        let expiry_system: SystemTime = expiry.into();
        let token = biscuit!(
            r#"
            user({user});
            session({session});
            expires({expiry});
            check if time($t), $t < {expiry};
            "#,
            user = user.to_string(),
            session = session.to_string(),
            expiry = expiry_system,
        )
        .build(&self.root)
        .map_err(Error::internal)?;
        Ok((token.to_base64().map_err(Error::internal)?, expiry))
    }

    /// Verifies a token for an operation and returns who is calling. Checks added by the
    /// holder (attenuation) are enforced too.
    pub fn verify(&self, token: &str, op: Operation) -> Result<Principal> {
        let now = SystemTime::now();
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let biscuit =
            Biscuit::from_base64(token, self.root.public()).map_err(|_| invalid_token())?;
        let mut authorizer = authorizer!(
            r#"
            time({now});
            operation({op});
            allow if user($u), session($s);
            "#,
            now = now,
            op = op.as_str(),
        )
        .set_limits(run_limits())
        .build(&biscuit)
        .map_err(|_| invalid_token())?;
        authorizer.authorize().map_err(|_| invalid_token())?;
        let (user, session): (String, String) = authorizer
            .query_exactly_one("data($u, $s) <- user($u), session($s)")
            .map_err(|_| invalid_token())?;
        let principal = Principal {
            user_id: user.parse().map_err(|_| invalid_token())?,
            session_id: session.parse().map_err(|_| invalid_token())?,
        };
        // As minted (no attenuation): valid for any operation until it expires. Tokens
        // minted before `expires` existed are verified every time until they lapse.
        if biscuit.block_count() == 1
            && let Ok((expires,)) =
                authorizer.query_exactly_one::<_, (SystemTime,), _>("data($e) <- expires($e)")
        {
            self.verified.insert(token, principal, expires, now);
        }
        Ok(principal)
    }
}

impl TokenAuthority {
    /// Mints a drive share link's token: the link's id, and a check that it has not
    /// expired (so even a link row left behind would not outlive it).
    pub fn issue_link(&self, link: Uuid, expiry: Time) -> Result<String> {
        let expiry_system: SystemTime = expiry.into();
        let token = biscuit!(
            r#"
            share_link({link});
            check if time($t), $t < {expiry};
            "#,
            link = link.to_string(),
            expiry = expiry_system,
        )
        .build(&self.root)
        .map_err(Error::internal)?;
        token.to_base64().map_err(Error::internal)
    }

    /// The link a share link token names, if it is one of ours, unexpired (its holder's
    /// own attenuations enforced too); `NOT_FOUND` otherwise, as for an unknown link.
    /// An access token is not a link, nor a link an access token: each needs its facts.
    pub fn verify_link(&self, token: &str) -> Result<Uuid> {
        let not_found = || Error::NotFound("share link");
        let biscuit = Biscuit::from_base64(token, self.root.public()).map_err(|_| not_found())?;
        let mut authorizer = authorizer!(
            r#"
            time({now});
            operation("read");
            allow if share_link($l);
            "#,
            now = SystemTime::now(),
        )
        .set_limits(run_limits())
        .build(&biscuit)
        .map_err(|_| not_found())?;
        authorizer.authorize().map_err(|_| not_found())?;
        let (link,): (String,) = authorizer
            .query_exactly_one("data($l) <- share_link($l)")
            .map_err(|_| not_found())?;
        link.parse().map_err(|_| not_found())
    }
}

/// Biscuit's default evaluation budget is 1 ms, which a busy 2-core machine overruns now
/// and then, turning valid tokens into spurious `UNAUTHENTICATED`. Our tokens are tiny, so
/// the fact and iteration caps stay tight while the time budget gets headroom.
fn run_limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1000,
        max_iterations: 100,
        max_time: Duration::from_millis(100),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
    file.write_all(bytes).map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use biscuit_auth::{Biscuit, macros::block};

    use super::*;

    fn authority(dir: &Path) -> TokenAuthority {
        TokenAuthority::load_or_create(&dir.join("key.pem"), Duration::from_secs(60))
            .expect("authority")
    }

    #[test]
    fn token_round_trips_and_key_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let (token, _) = authority(dir.path())
            .issue(user, session, chrono::Utc::now())
            .expect("issue");
        // A second load reads the same key, so tokens survive restarts.
        let principal = authority(dir.path())
            .verify(&token, Operation::Write)
            .expect("verify");
        assert_eq!(
            principal,
            Principal {
                user_id: user,
                session_id: session
            }
        );
    }

    #[test]
    fn expired_and_foreign_tokens_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        let issued_long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
        let (expired, _) = authority(dir.path())
            .issue(Uuid::now_v7(), Uuid::now_v7(), issued_long_ago)
            .expect("issue");
        assert!(
            authority(dir.path())
                .verify(&expired, Operation::Read)
                .is_err()
        );
        let (foreign, _) = authority(other.path())
            .issue(Uuid::now_v7(), Uuid::now_v7(), chrono::Utc::now())
            .expect("issue");
        assert!(
            authority(dir.path())
                .verify(&foreign, Operation::Read)
                .is_err()
        );
        assert!(
            authority(dir.path())
                .verify("not a token", Operation::Read)
                .is_err()
        );
    }

    #[test]
    fn holder_can_attenuate_a_token_to_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = authority(dir.path());
        let (token, _) = auth
            .issue(Uuid::now_v7(), Uuid::now_v7(), chrono::Utc::now())
            .expect("issue");
        let parsed = Biscuit::from_base64(&token, auth.root.public()).expect("parse");
        let read_only = parsed
            .append(block!(r#"check if operation("read");"#))
            .expect("attenuate")
            .to_base64()
            .expect("encode");
        assert!(auth.verify(&read_only, Operation::Read).is_ok());
        assert!(auth.verify(&read_only, Operation::Write).is_err());
    }
}
