//! Message history, wherever it lives: the `messages` table ([`SqlHistory`]: the
//! embedded default, and PostgreSQL without `[cql]`), or ScyllaDB/Cassandra as a
//! projection of the committed events ([`CqlProjection`]; see `store::cql` for the
//! ordering argument). Everything in the SQL store that reads or writes messages goes
//! through [`MessageHistory`], so the two cannot drift apart: the store suite runs the
//! same behaviours against both.

use async_trait::async_trait;
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use crate::{
    domain::{Content, Message, Published, Time},
    error::Result,
    store::Direction,
};

mod cql;
mod sql;
pub(super) mod sqlite_pages;

pub(super) use cql::CqlProjection;
pub(super) use sql::SqlHistory;

/// Where a conversation's messages are kept. Writes happen inside the transaction that
/// commits the conversation's event (the conversation row locked, its `seq` taken);
/// a history kept elsewhere gets them from the committed event instead.
///
/// Reads take the conversation's committed `last_seq` (see [`Self::is_projection`]):
/// a projected history first catches up to it, so a reader never sees less than what was
/// committed before it asked.
#[async_trait]
pub(super) trait MessageHistory: Send + Sync {
    /// Records a new message in the write's transaction.
    async fn insert(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
        request_id: &str,
    ) -> Result<()>;
    /// Stores an edited or deleted message's new state in the write's transaction.
    async fn update(&self, txn: &DatabaseTransaction, message: &Message) -> Result<()>;
    /// Forgets a deleted conversation's messages in the write's transaction.
    async fn forget(&self, txn: &DatabaseTransaction, conversation: Uuid) -> Result<()>;
    /// After the commit: lets a projected history apply the event (bounded in time;
    /// failures are left to the next reader, who catches up first).
    async fn committed(&self, published: &Published);

    /// A message as of the write in progress (`last_seq`: what was committed before it).
    async fn message_in(
        &self,
        txn: &DatabaseTransaction,
        conversation: Uuid,
        id: Uuid,
        last_seq: u64,
    ) -> Result<Option<Message>>;
    async fn message(&self, conversation: Uuid, id: Uuid, last_seq: u64)
    -> Result<Option<Message>>;
    /// A page of messages before (`Backward`; `anchor_seq` 0 = from the end) or after
    /// (`Forward`) `anchor_seq`.
    async fn messages(
        &self,
        conversation: Uuid,
        direction: Direction,
        anchor_seq: u64,
        limit: u64,
        last_seq: u64,
    ) -> Result<Vec<Message>>;
    /// The newest message still shown, and how many messages after `read_seq` others
    /// sent (a projected history may saturate the count: `cql::UNREAD_SCAN_LIMIT`).
    async fn last_and_unread(
        &self,
        conversation: Uuid,
        user: Uuid,
        read_seq: u64,
        last_seq: u64,
    ) -> Result<(Option<Message>, u32)>;

    /// Whether the history is a projection of the `events` table: its reads use
    /// `last_seq` to catch up first, and events may only be trimmed once applied. (The
    /// `messages` table, always current, needs neither, which spares reads of the
    /// conversation row.)
    fn is_projection(&self) -> bool;
    /// Up to which `seq` the conversation's events are applied (`u64::MAX` when the
    /// history is not a projection).
    async fn applied_seq(&self, conversation: Uuid) -> Result<u64>;
}

/// The state a message takes when edited (`Some(content)`) or deleted (`None`) at `now`.
pub(super) fn rewritten(mut message: Message, content: Option<Content>, now: Time) -> Message {
    match content {
        Some(content) => {
            message.content = Some(content);
            message.edit_time = Some(now);
        }
        None => {
            message.content = None;
            message.metadata.clear();
            message.attachments.clear();
            message.delete_time = Some(now);
        }
    }
    message
}
