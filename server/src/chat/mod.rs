//! Conversations and messages: the chat domain service.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    bus::EventBus,
    config::LimitsConfig,
    domain::{Conversation, Membership},
    error::{Error, Result},
    ratelimit::RateLimiter,
    store::{ChatStore, Committed, UserStore},
};

mod conversations;
mod messages;
pub(crate) mod request_ids;

pub use crate::domain::DetailsChanges;
pub use conversations::CreateConversation;
pub use messages::{ContentInput, ForwardMessage, MessagePage, SendMessage};

/// Messages (sent, forwarded, or posting a poll) one user may post per second.
pub fn send_limit(limits: &LimitsConfig) -> crate::ratelimit::Limit {
    crate::ratelimit::Limit {
        name: "send",
        max: limits.messages_per_second,
        window: std::time::Duration::from_secs(1),
    }
}

/// The chat domain service. Every method checks membership first: to a non-member a
/// conversation does not exist (`NOT_FOUND`), whether or not it does.
pub struct Chat {
    store: Arc<dyn ChatStore>,
    users: Arc<dyn UserStore>,
    bus: Arc<dyn EventBus>,
    limiter: Arc<dyn RateLimiter>,
    limits: LimitsConfig,
}

impl Chat {
    pub fn new(
        store: Arc<dyn ChatStore>,
        users: Arc<dyn UserStore>,
        bus: Arc<dyn EventBus>,
        limiter: Arc<dyn RateLimiter>,
        limits: LimitsConfig,
    ) -> Self {
        Self {
            store,
            users,
            bus,
            limiter,
            limits,
        }
    }

    /// The caller's membership, or `NOT_FOUND` for non-members and unknown ids alike.
    async fn membership(&self, conversation: Uuid, user: Uuid) -> Result<Membership> {
        self.store
            .membership(conversation, user)
            .await?
            .ok_or(Error::NotFound("conversation"))
    }

    /// The conversation and the caller's membership in it, or `NOT_FOUND` as above.
    async fn as_member(
        &self,
        conversation: Uuid,
        user: Uuid,
    ) -> Result<(Conversation, Membership)> {
        let membership = self.membership(conversation, user).await?;
        let found = self
            .store
            .conversation(conversation)
            .await?
            .ok_or(Error::NotFound("conversation"))?;
        Ok((found, membership))
    }

    /// Publishes what a write committed and returns its value.
    fn publish<T>(&self, committed: Committed<T>) -> T {
        crate::bus::publish_committed(&*self.bus, committed)
    }
}
