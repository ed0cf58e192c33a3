//! Profiles and blocks.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    auth::{Auth, Principal},
    bus::EventBus,
    chat::Chat,
    domain::User,
    error::{Error, Result},
    paging,
    store::{Committed, ContactStore, ProfileUpdate, UserStore},
    validate::{self, Violations},
};

mod contacts;

pub use contacts::RequestResult;

/// Which profile fields an update touches, with their new values.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// The users domain service: profiles, blocks, contacts and account deletion.
pub struct Users {
    store: Arc<dyn UserStore>,
    contacts: Arc<dyn ContactStore>,
    bus: Arc<dyn EventBus>,
    auth: Arc<Auth>,
    chat: Arc<Chat>,
}

impl Users {
    pub fn new(
        store: Arc<dyn UserStore>,
        contacts: Arc<dyn ContactStore>,
        bus: Arc<dyn EventBus>,
        auth: Arc<Auth>,
        chat: Arc<Chat>,
    ) -> Self {
        Self {
            store,
            contacts,
            bus,
            auth,
            chat,
        }
    }

    /// Publishes what a write committed and returns its value.
    fn publish<T>(&self, committed: Committed<T>) -> T {
        crate::bus::publish_committed(&*self.bus, committed)
    }

    /// Deletes the caller's account (see `DeleteCurrentUser` in the proto for what that
    /// entails). Sessions end first, so nothing can act as the user half-way through.
    pub async fn delete_current(&self, who: &Principal, password: String) -> Result<()> {
        self.auth.confirm_password(who, password).await?;
        self.auth.end_all_sessions(who.user_id).await?;
        self.chat.leave_all(who.user_id).await?;
        self.contacts.remove_all_contacts(who.user_id).await?;
        self.store
            .delete_user(who.user_id, chrono::Utc::now())
            .await
    }

    pub async fn current(&self, who: &Principal) -> Result<User> {
        self.store
            .user(who.user_id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    pub async fn update_current(&self, who: &Principal, changes: ProfileChanges) -> Result<User> {
        let mut v = Violations::new();
        if let Some(username) = &changes.username {
            validate::username(&mut v, "user.username", username);
        }
        if let Some(name) = &changes.display_name {
            v.text("user.display_name", name.trim(), 1, 64);
        }
        if let Some(url) = &changes.avatar_url {
            check_url(&mut v, "user.avatar_url", url);
        }
        v.finish()?;
        let update = ProfileUpdate {
            username: changes.username,
            display_name: changes.display_name.map(|n| n.trim().to_owned()),
            avatar_url: changes.avatar_url,
        };
        self.store.update_profile(who.user_id, update).await
    }

    pub async fn get(&self, id: &str) -> Result<User> {
        let mut v = Violations::new();
        let id = v.id("user_id", id);
        v.finish()?;
        let id = id.ok_or(Error::NotFound("user"))?;
        self.store.user(id).await?.ok_or(Error::NotFound("user"))
    }

    pub async fn search(
        &self,
        who: &Principal,
        query: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<User>, String)> {
        let mut v = Violations::new();
        v.text("query", query.trim(), 1, 64);
        let size = v.page_size("page_size", page_size, 20, 100);
        v.finish()?;
        let after = paging::decode_text_key("page_token", page_token)?;
        let prefix = query.trim().to_lowercase();
        let users = self
            .store
            .search_users(who.user_id, &prefix, after.as_deref(), size)
            .await?;
        let next = paging::next_token(&users, size, |last| paging::encode_text_key(&last.username));
        Ok((users, next))
    }

    /// Blocks a user; a block also ends any contact or pending request between the two.
    pub async fn block(&self, who: &Principal, user_id: &str) -> Result<()> {
        let target = self.target(who, user_id).await?;
        let now = chrono::Utc::now();
        self.store.block(who.user_id, target, now).await?;
        let committed = self
            .contacts
            .remove_contact(who.user_id, target, now)
            .await?;
        self.publish(committed);
        Ok(())
    }

    pub async fn unblock(&self, who: &Principal, user_id: &str) -> Result<()> {
        let target = self.target(who, user_id).await?;
        self.store.unblock(who.user_id, target).await
    }

    pub async fn blocked(
        &self,
        who: &Principal,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<User>, String)> {
        let mut v = Violations::new();
        let size = v.page_size("page_size", page_size, 50, 100);
        v.finish()?;
        let before = paging::decode_time_key("page_token", page_token)?;
        let rows = self.store.blocked_users(who.user_id, before, size).await?;
        let next = paging::next_token(&rows, size, |(user, time)| {
            paging::encode_time_key(*time, user.id)
        });
        Ok((rows.into_iter().map(|(user, _)| user).collect(), next))
    }

    /// Parses and checks the other user of a block/unblock.
    async fn target(&self, who: &Principal, user_id: &str) -> Result<Uuid> {
        let mut v = Violations::new();
        let id = v.id("user_id", user_id);
        if id == Some(who.user_id) {
            v.add("user_id", "cannot block yourself");
        }
        v.finish()?;
        let id = id.ok_or(Error::NotFound("user"))?;
        if self.store.user(id).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        Ok(id)
    }
}

/// Accepts empty (clears) or an http(s) URL of reasonable length.
pub fn check_url(v: &mut Violations, field: &str, url: &str) {
    if url.is_empty() {
        return;
    }
    if url.len() > 2048 || !(url.starts_with("https://") || url.starts_with("http://")) {
        v.add(field, "an http(s) URL of at most 2048 bytes");
    }
}
