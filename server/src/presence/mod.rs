//! Presence and typing: who has a device connected, and who is typing where. Ephemeral by
//! design — never in the database, never replayed. Presence follows event streams
//! (`events.rs` reports connects, heartbeats and disconnects here); typing indications
//! travel over the bus to the members' streams and lapse after [`TYPING_TTL`].

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use uuid::Uuid;

use crate::{
    auth::Principal,
    bus::EventBus,
    domain::{Signal, Time, TypingSignal},
    error::{Error, Result},
    ratelimit::{Limit, RateLimiter},
    store::{ChatStore, UserStore},
    validate::Violations,
};

mod store;

pub use store::{LocalPresence, PresenceStore, RedisPresence, UserPresence};

/// How long a typing indication lasts unless renewed (clients renew every few seconds).
pub const TYPING_TTL: Duration = Duration::from_secs(6);
/// Most users one `GetPresence` call may ask about.
pub const MAX_PRESENCE_USERS: usize = 100;
/// Longest a new stream waits to be recorded as online.
const OPEN_TIMEOUT: Duration = Duration::from_secs(1);

/// The presence domain service.
pub struct Presence {
    store: Arc<dyn PresenceStore>,
    users: Arc<dyn UserStore>,
    chat: Arc<dyn ChatStore>,
    bus: Arc<dyn EventBus>,
    limiter: Arc<dyn RateLimiter>,
}

impl Presence {
    pub fn new(
        store: Arc<dyn PresenceStore>,
        users: Arc<dyn UserStore>,
        chat: Arc<dyn ChatStore>,
        bus: Arc<dyn EventBus>,
        limiter: Arc<dyn RateLimiter>,
    ) -> Self {
        Self {
            store,
            users,
            chat,
            bus,
            limiter,
        }
    }

    /// Tells the other members that `who` is typing in `conversation_id` (or stopped);
    /// returns when the indication lapses.
    pub async fn set_typing(
        &self,
        who: &Principal,
        conversation_id: &str,
        typing: bool,
    ) -> Result<Option<Time>> {
        let mut v = Violations::new();
        let conversation = v.id("conversation_id", conversation_id);
        v.finish()?;
        let Some(conversation) = conversation else {
            return Err(Error::invalid("conversation_id", "required"));
        };
        // One read answers both: is the caller a member, and who hears it.
        let members = self
            .chat
            .members(conversation, None, u64::from(u32::MAX))
            .await?;
        if !members.iter().any(|m| m.user_id == who.user_id) {
            return Err(Error::NotFound("conversation"));
        }
        // Typing is chatty by nature; a client renewing every few seconds stays far below.
        let limit = Limit {
            name: "typing",
            max: 20,
            window: Duration::from_secs(10),
        };
        self.limiter.check(limit, &who.user_id.to_string()).await?;
        let recipients: Vec<Uuid> = members
            .into_iter()
            .map(|m| m.user_id)
            .filter(|&id| id != who.user_id)
            .collect();
        // Nobody hears someone they blocked, or who blocked them, typing. (Silently: the
        // typist is not told who blocked them.)
        let recipients = self.users.related_users(who.user_id, &recipients).await?;
        let expire_time =
            typing.then(|| Utc::now() + chrono::Duration::from_std(TYPING_TTL).unwrap_or_default());
        self.bus.publish_signal(Signal::Typing(TypingSignal {
            conversation_id: conversation,
            user_id: who.user_id,
            typing,
            expire_time,
            recipients,
        }));
        Ok(expire_time)
    }

    /// The presence of those of `user_ids` that `who` may see: people they share a
    /// conversation with, or contacts, unless either blocked the other.
    pub async fn presence(
        &self,
        who: &Principal,
        user_ids: &[String],
    ) -> Result<Vec<UserPresence>> {
        let mut v = Violations::new();
        if user_ids.is_empty() || user_ids.len() > MAX_PRESENCE_USERS {
            v.add(
                "user_ids",
                format!("between 1 and {MAX_PRESENCE_USERS} ids"),
            );
        }
        let mut ids: Vec<Uuid> = user_ids
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| v.id(&format!("user_ids[{i}]"), raw))
            .collect();
        v.finish()?;
        ids.sort_unstable();
        ids.dedup();
        let visible = self.users.related_users(who.user_id, &ids).await?;
        self.store.presence(&visible).await
    }

    /// A device's stream just opened. Waited for (briefly), so that a stream ending at
    /// once cannot have its goodbye overtaken by this hello.
    pub async fn stream_opened(&self, user: Uuid, session: Uuid, ttl: Duration) {
        let hello = tokio::time::timeout(OPEN_TIMEOUT, self.store.connected(user, session, ttl));
        if !matches!(hello.await, Ok(Ok(()))) {
            tracing::debug!(%user, "presence not recorded");
        }
    }

    /// A device's stream is still open (called on every heartbeat, with `ttl` covering a
    /// few of them). Best effort: presence is never worth failing a stream for.
    pub fn stream_alive(&self, user: Uuid, session: Uuid, ttl: Duration) {
        let store = Arc::clone(&self.store);
        tokio::spawn(async move {
            if let Err(err) = store.connected(user, session, ttl).await {
                tracing::debug!(%user, error = %err, "presence not recorded");
            }
        });
    }

    /// A device's stream ended.
    pub fn stream_ended(&self, user: Uuid, session: Uuid) {
        let store = Arc::clone(&self.store);
        tokio::spawn(async move {
            if let Err(err) = store.disconnected(user, session).await {
                tracing::debug!(%user, error = %err, "presence not recorded");
            }
        });
    }
}
