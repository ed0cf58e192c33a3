//! Conversations, members, messages and feeds on SQL. Every durable change takes the
//! conversation's next `seq` first (which locks it), checks what it must in that write,
//! and fans its event out to the members' feeds in the same transaction. Times are cut to
//! what the database keeps (`db_time`) on the way in.
//!
//! By concern: [`timeline`] (numbering, feeds), [`conversations`], [`members`],
//! [`messages`]; this file maps the `ChatStore` trait onto them.

use async_trait::async_trait;
use uuid::Uuid;

use super::{SqlStore, convert::db_time, shared_timeline};
use crate::{
    domain::{
        Content, Conversation, ConversationView, DetailsChanges, FeedItem, Member, Membership,
        Message, Role, Time, TimelineItem,
    },
    error::Result,
    store::{
        ChatStore, Committed, Direction, FirstUse, Heads, NewConversation, NewMessage, RequestKey,
    },
};

mod conversations;
pub(super) mod members;
pub(super) mod messages;
pub(super) mod timeline;

#[async_trait]
impl ChatStore for SqlStore {
    async fn create_conversation(
        &self,
        new: NewConversation,
        now: Time,
    ) -> Result<Committed<Conversation>> {
        conversations::create(self, new, db_time(now)).await
    }

    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>> {
        conversations::get(self, id).await
    }

    async fn membership(&self, conversation: Uuid, user: Uuid) -> Result<Option<Membership>> {
        members::membership(self, conversation, user).await
    }

    async fn conversation_views(
        &self,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<ConversationView>> {
        conversations::views(self, user, before, limit).await
    }

    async fn conversation_view(&self, user: Uuid, id: Uuid) -> Result<Option<ConversationView>> {
        conversations::view_of(self, user, id).await
    }

    async fn members(
        &self,
        conversation: Uuid,
        after: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Member>> {
        members::list(self, conversation, after, limit).await
    }

    async fn update_details(
        &self,
        conversation: Uuid,
        actor: Uuid,
        changes: DetailsChanges,
        now: Time,
    ) -> Result<Committed<Conversation>> {
        conversations::update_details(self, conversation, actor, changes, db_time(now)).await
    }

    async fn delete_conversation(
        &self,
        conversation: Uuid,
        actor: Uuid,
        now: Time,
    ) -> Result<Committed<()>> {
        conversations::delete(self, conversation, actor, db_time(now)).await
    }

    async fn add_members(
        &self,
        conversation: Uuid,
        actor: Uuid,
        users: &[Uuid],
        now: Time,
    ) -> Result<Committed<Vec<Member>>> {
        members::add(self, conversation, actor, users, db_time(now)).await
    }

    async fn remove_member(
        &self,
        conversation: Uuid,
        actor: Uuid,
        user: Uuid,
        now: Time,
    ) -> Result<Committed<()>> {
        members::remove(self, conversation, actor, user, db_time(now)).await
    }

    async fn set_role(
        &self,
        conversation: Uuid,
        actor: Uuid,
        user: Uuid,
        new_role: Role,
        now: Time,
    ) -> Result<Committed<Member>> {
        members::set_role(self, conversation, actor, user, new_role, db_time(now)).await
    }

    async fn mark_read(
        &self,
        conversation: Uuid,
        user: Uuid,
        seq: u64,
        now: Time,
    ) -> Result<Committed<u64>> {
        members::mark_read(self, conversation, user, seq, db_time(now)).await
    }

    async fn first_use(&self, request: &RequestKey) -> Result<Option<FirstUse>> {
        self.find_first_use(request).await
    }

    async fn send_message(&self, new: NewMessage, now: Time) -> Result<Committed<Message>> {
        messages::send(self, new, messages::Carried::Nothing, db_time(now)).await
    }

    async fn message(&self, conversation: Uuid, id: Uuid) -> Result<Option<Message>> {
        messages::get(self, conversation, id).await
    }

    async fn messages(
        &self,
        member: Uuid,
        conversation: Uuid,
        direction: Direction,
        anchor_seq: u64,
        limit: u64,
    ) -> Result<Vec<Message>> {
        messages::list(self, member, conversation, direction, anchor_seq, limit).await
    }

    async fn edit_message(
        &self,
        conversation: Uuid,
        id: Uuid,
        actor: Uuid,
        content: Content,
        now: Time,
    ) -> Result<Committed<Message>> {
        messages::edit(self, conversation, id, actor, content, db_time(now)).await
    }

    async fn delete_message(
        &self,
        conversation: Uuid,
        id: Uuid,
        actor: Uuid,
        now: Time,
    ) -> Result<Committed<Message>> {
        messages::delete(self, conversation, id, actor, db_time(now)).await
    }

    async fn feed(&self, user: Uuid, after: u64, limit: u64) -> Result<Vec<FeedItem>> {
        timeline::feed(self, user, after, limit).await
    }

    async fn stream_heads(&self, user: Uuid) -> Result<Heads> {
        shared_timeline::heads(self, user).await
    }

    async fn timeline(
        &self,
        user: Uuid,
        after: u64,
        until: u64,
        limit: u64,
    ) -> Result<Vec<TimelineItem>> {
        shared_timeline::timeline(self, user, after, until, limit).await
    }

    async fn timeline_backlog(&self, user: Uuid, after: u64, until: u64, cap: u64) -> Result<u64> {
        shared_timeline::backlog(self, user, after, until, cap).await
    }
}
