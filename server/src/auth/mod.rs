//! Accounts and sessions: registration, sign-in, token refresh with reuse detection,
//! sign-out and session revocation.

use std::{net::IpAddr, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

mod limits;
pub mod passwords;
mod recovery;
mod tokens;
mod verified;

pub use limits::RevokedSessions;
pub use tokens::{Operation, Principal, TokenAuthority};

use tokio::sync::broadcast::error::RecvError;

use crate::{
    bus::{BusMessage, EventBus},
    config::AuthConfig,
    domain::{Session, Time, User},
    error::{Error, Reason, Result},
    mail::Mailer,
    paging,
    ratelimit::{Limit, RateLimiter},
    store::{NewUser, RefreshOutcome, RefreshRecord, SessionStore, UserStore},
    validate::{self, Violations},
};

/// The device a session is opened on.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub name: String,
    pub platform: String,
}

/// A freshly minted credential pair.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub access_expire_time: Time,
    pub refresh_token: String,
    pub refresh_expire_time: Time,
    pub session_id: Uuid,
}

/// Input of `register`.
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub username: String,
    pub display_name: String,
    pub device: Device,
}

const WRONG_CREDENTIALS: Error = Error::Unauthenticated {
    reason: Reason::InvalidCredentials,
    message: "wrong email or password",
};

/// The authentication domain service.
pub struct Auth {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    tokens: Arc<TokenAuthority>,
    revoked: Arc<RevokedSessions>,
    limiter: Arc<dyn RateLimiter>,
    login_attempts_per_minute: u32,
    passwords: passwords::Passwords,
    decoy_hash: String,
    refresh_ttl: Duration,
    mailer: Arc<dyn Mailer>,
    /// Base URL of the app for links in mails, if known.
    public_url: Option<String>,
    /// Carries revocations to the other nodes.
    bus: Arc<dyn EventBus>,
}

/// What the auth service is built from.
pub struct AuthParts {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    /// Shared with the drive, which signs share links with the same key.
    pub tokens: Arc<TokenAuthority>,
    pub mailer: Arc<dyn Mailer>,
    pub bus: Arc<dyn EventBus>,
    pub limiter: Arc<dyn RateLimiter>,
}

impl Auth {
    pub async fn new(
        parts: AuthParts,
        config: &AuthConfig,
        public_url: Option<String>,
    ) -> Result<Self> {
        let AuthParts {
            users,
            sessions,
            tokens,
            mailer,
            bus,
            limiter,
        } = parts;
        let access_ttl = Duration::from_secs(config.access_token_ttl_secs);
        let revoked = Arc::new(RevokedSessions::new(access_ttl));
        // Tokens minted before a restart for sessions revoked since must stay dead.
        let since = chrono::Utc::now() - access_ttl;
        for session in sessions.revoked_since(since).await? {
            revoked.insert(session);
        }
        let passwords = passwords::Passwords::new(
            config.password_hashing_concurrency,
            config.password_hashing_queue,
        );
        let decoy_hash = passwords.decoy_hash().await?;
        Ok(Self {
            users,
            sessions,
            tokens,
            revoked,
            limiter,
            login_attempts_per_minute: config.login_attempts_per_minute,
            passwords,
            decoy_hash,
            refresh_ttl: Duration::from_secs(config.refresh_token_ttl_secs),
            mailer,
            public_url,
            bus,
        })
    }

    /// Counts a sign-in attempt (login or password reset) per email address and per client
    /// address, on every node together, so neither one account nor one client can be
    /// brute-forced. One address may serve many users (NAT), so it gets ten times the room.
    async fn throttle_sign_in(&self, email: &str, client: Option<IpAddr>) -> Result<()> {
        let per_email = Limit {
            name: "login-email",
            max: self.login_attempts_per_minute,
            window: Duration::from_secs(60),
        };
        self.limiter.check(per_email, email).await?;
        if let Some(ip) = client {
            let per_ip = Limit {
                name: "login-ip",
                max: self.login_attempts_per_minute.saturating_mul(10),
                window: Duration::from_secs(60),
            };
            self.limiter.check(per_ip, &ip.to_string()).await?;
        }
        Ok(())
    }

    /// Makes a revocation effective on this node at once and on the others via the bus.
    fn revoke(&self, session: Uuid) {
        self.revoked.insert(session);
        self.bus.publish_revocation(session);
    }

    /// Applies revocations that happened on other nodes (from the bus), and reloads them
    /// all from the database whenever the bus may have missed some. Runs until `shutdown`.
    pub fn follow_revocations(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let auth = Arc::clone(self);
        let mut messages = self.bus.subscribe();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = messages.recv() => message,
                    _ = shutdown.cancelled() => return,
                };
                match message {
                    Ok(BusMessage::SessionRevoked(session)) => auth.revoked.insert(session),
                    Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => {
                        let since = chrono::Utc::now() - auth.revoked.window();
                        match auth.sessions.revoked_since(since).await {
                            Ok(sessions) => {
                                sessions.into_iter().for_each(|s| auth.revoked.insert(s))
                            }
                            Err(err) => tracing::warn!(error = %err, "cannot reload revocations"),
                        }
                    }
                    Ok(BusMessage::Event(_) | BusMessage::Signal(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        })
    }

    /// The revoked-session set, shared with open event streams so they end with the session.
    pub fn revocations(&self) -> Arc<RevokedSessions> {
        Arc::clone(&self.revoked)
    }

    /// Verifies an access token for `op` and checks its session is still live.
    pub fn authenticate(&self, token: &str, op: Operation) -> Result<Principal> {
        let principal = self.tokens.verify(token, op)?;
        if self.revoked.contains(principal.session_id) {
            return Err(Error::Unauthenticated {
                reason: Reason::InvalidToken,
                message: "missing, invalid, expired or revoked access token",
            });
        }
        Ok(principal)
    }

    pub async fn register(&self, input: Registration) -> Result<(User, Tokens)> {
        let mut v = Violations::new();
        let email = validate::email(&mut v, "email", &input.email);
        validate::password(&mut v, "password", &input.password);
        validate::username(&mut v, "username", &input.username);
        v.text("display_name", &input.display_name, 0, 64);
        check_device(&mut v, &input.device);
        v.finish()?;
        let display_name = if input.display_name.trim().is_empty() {
            input.username.clone()
        } else {
            input.display_name.trim().to_owned()
        };
        let password_hash = self.passwords.hash(input.password).await?;
        let now = chrono::Utc::now();
        let user = self
            .users
            .create_user(
                NewUser {
                    email,
                    username: input.username,
                    display_name,
                    password_hash,
                },
                now,
            )
            .await?;
        let tokens = self.open_session(user.id, input.device, now).await?;
        Ok((user, tokens))
    }

    pub async fn login(
        &self,
        email: &str,
        password: String,
        device: Device,
        client: Option<IpAddr>,
    ) -> Result<(User, Tokens)> {
        let mut v = Violations::new();
        let email = validate::email(&mut v, "email", email);
        if password.is_empty() {
            v.add("password", "required");
        }
        check_device(&mut v, &device);
        v.finish()?;
        self.throttle_sign_in(&email, client).await?;
        let found = self.users.user_by_email(&email).await?;
        // Unknown emails still pay for a hash so timing does not reveal which exist.
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, self.decoy_hash.clone()),
        };
        let matches = self.passwords.verify(password, hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            return Err(WRONG_CREDENTIALS);
        };
        let tokens = self
            .open_session(user.id, device, chrono::Utc::now())
            .await?;
        Ok((user, tokens))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        if refresh_token.is_empty() {
            return Err(Error::invalid("refresh_token", "required"));
        }
        let now = chrono::Utc::now();
        let (new_token, new_record) = self.new_refresh_token(now);
        let outcome = self
            .sessions
            .rotate_refresh(&hash_token(refresh_token), new_record.clone(), now)
            .await?;
        match outcome {
            RefreshOutcome::Rotated(session) => {
                let (access_token, access_expire_time) =
                    self.tokens.issue(session.user_id, session.id, now)?;
                Ok(Tokens {
                    access_token,
                    access_expire_time,
                    refresh_token: new_token,
                    refresh_expire_time: new_record.expire_time,
                    session_id: session.id,
                })
            }
            RefreshOutcome::Reused { session_id } => {
                tracing::warn!(%session_id, "refresh token reused: session revoked");
                self.revoke(session_id);
                Err(Error::Unauthenticated {
                    reason: Reason::RefreshTokenReused,
                    message: "refresh token already used; the session was revoked for safety",
                })
            }
            RefreshOutcome::Invalid => Err(Error::Unauthenticated {
                reason: Reason::InvalidToken,
                message: "invalid or expired refresh token",
            }),
        }
    }

    pub async fn logout(&self, who: &Principal) -> Result<()> {
        self.sessions
            .revoke_session(who.user_id, who.session_id, chrono::Utc::now())
            .await?;
        self.revoke(who.session_id);
        Ok(())
    }

    /// The caller's active sessions and the next page token.
    pub async fn list_sessions(
        &self,
        who: &Principal,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Session>, String)> {
        let mut v = Violations::new();
        let size = v.page_size("page_size", page_size, 50, 100);
        v.finish()?;
        let before = paging::decode_time_key("page_token", page_token)?;
        let sessions = self.sessions.sessions(who.user_id, before, size).await?;
        let next = paging::next_token(&sessions, size, |last| {
            paging::encode_time_key(last.create_time, last.id)
        });
        Ok((sessions, next))
    }

    pub async fn revoke_session(&self, who: &Principal, session_id: &str) -> Result<()> {
        let mut v = Violations::new();
        let id = v.id("session_id", session_id);
        v.finish()?;
        let id = id.ok_or(Error::NotFound("session"))?;
        if !self
            .sessions
            .revoke_session(who.user_id, id, chrono::Utc::now())
            .await?
        {
            return Err(Error::NotFound("session"));
        }
        self.revoke(id);
        Ok(())
    }

    pub async fn change_password(
        &self,
        who: &Principal,
        current: String,
        new: String,
    ) -> Result<()> {
        let mut v = Violations::new();
        if current.is_empty() {
            v.add("current_password", "required");
        }
        validate::password(&mut v, "new_password", &new);
        v.finish()?;
        let hash = self
            .users
            .password_hash(who.user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if !self.passwords.verify(current, hash).await? {
            return Err(WRONG_CREDENTIALS);
        }
        let new_hash = self.passwords.hash(new).await?;
        self.users.set_password_hash(who.user_id, new_hash).await?;
        // A changed password usually means a suspected compromise: sign out everywhere else.
        for session in self
            .sessions
            .revoke_other_sessions(who.user_id, Some(who.session_id), chrono::Utc::now())
            .await?
        {
            self.revoke(session);
        }
        Ok(())
    }

    /// Checks the caller's password (for sensitive operations such as account deletion).
    pub async fn confirm_password(&self, who: &Principal, password: String) -> Result<()> {
        if password.is_empty() {
            return Err(Error::invalid("password", "required"));
        }
        let hash = self
            .users
            .password_hash(who.user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if self.passwords.verify(password, hash).await? {
            Ok(())
        } else {
            Err(WRONG_CREDENTIALS)
        }
    }

    /// Ends every session of `user`, effective at once.
    pub async fn end_all_sessions(&self, user: Uuid) -> Result<()> {
        for session in self
            .sessions
            .revoke_other_sessions(user, None, chrono::Utc::now())
            .await?
        {
            self.revoke(session);
        }
        Ok(())
    }

    async fn open_session(&self, user: Uuid, device: Device, now: Time) -> Result<Tokens> {
        let session = Session {
            id: Uuid::now_v7(),
            user_id: user,
            device_name: device.name,
            device_platform: device.platform,
            create_time: now,
            last_refresh_time: now,
        };
        let session_id = session.id;
        let (refresh_token, record) = self.new_refresh_token(now);
        let refresh_expire_time = record.expire_time;
        self.sessions.create_session(session, record).await?;
        let (access_token, access_expire_time) = self.tokens.issue(user, session_id, now)?;
        Ok(Tokens {
            access_token,
            access_expire_time,
            refresh_token,
            refresh_expire_time,
            session_id,
        })
    }

    fn new_refresh_token(&self, now: Time) -> (String, RefreshRecord) {
        let token = random_token();
        let record = RefreshRecord {
            token_hash: hash_token(&token),
            expire_time: now + self.refresh_ttl,
        };
        (token, record)
    }
}

/// 256 random bits, URL-safe: refresh tokens and emailed codes.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Tokens and codes are stored only as SHA-256: a database leak yields nothing usable.
fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn check_device(v: &mut Violations, device: &Device) {
    v.text("device.name", &device.name, 0, 128);
    v.text("device.platform", &device.platform, 0, 32);
}
