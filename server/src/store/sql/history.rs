//! Message history, wherever it lives: the `messages` table (embedded default, and
//! PostgreSQL without `[cql]`), or ScyllaDB/Cassandra as a projection of the committed
//! events (see `store::cql` for the ordering argument). Everything in `chat.rs` that
//! reads or writes messages goes through here, so the two cannot drift apart.

use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{
    SqlStore, convert,
    entities::{events, messages},
};
use crate::{
    domain::{Event, Message, Published, Time},
    error::{Error, Result},
    store::{
        Direction,
        cql::{Applied, CqlHistory},
    },
};

/// Committed events read per round when catching the CQL projection up.
const CATCH_UP_BATCH: u64 = 500;
/// Longest a write call waits to project its event into CQL.
const PROJECTION_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

/// Applies committed events to the CQL history. Cheap to clone, so a commit can hand its
/// event to a background task.
#[derive(Clone)]
struct Projector {
    db: DatabaseConnection,
    cql: Arc<CqlHistory>,
}

impl Projector {
    /// Makes sure every event of `conversation` up to `last_seq` (committed) is applied,
    /// including what a writer that died after its commit left behind.
    async fn sync(&self, conversation: Uuid, last_seq: u64) -> Result<()> {
        if self.cql.known_applied(conversation) >= last_seq
            || self.cql.applied_seq(conversation).await? >= last_seq
        {
            return Ok(());
        }
        let _projecting = self.cql.projecting(conversation).await;
        // Re-read under the lock: the projector we queued behind may have done it all.
        let applied = self.cql.applied_seq(conversation).await?;
        if applied < last_seq {
            self.catch_up(conversation, applied, last_seq).await?;
        }
        Ok(())
    }

    /// Applies one just-committed event (and anything before it still missing).
    async fn project(self, event: Arc<Event>) {
        let Event::Conversation {
            conversation_id,
            seq,
            change,
            ..
        } = event.as_ref()
        else {
            return;
        };
        let _projecting = self.cql.projecting(*conversation_id).await;
        // What this node applied last is usually the event just before (no read needed).
        let known = self.cql.known_applied(*conversation_id);
        let applied = if known + 1 == *seq {
            Ok(known)
        } else {
            self.cql.applied_seq(*conversation_id).await
        };
        let result = match applied {
            // The common case: everything before this event is applied already.
            Ok(applied) if applied + 1 == *seq => {
                self.cql
                    .apply(*conversation_id, &[Applied { seq: *seq, change }], *seq)
                    .await
            }
            Ok(applied) if applied < *seq => self.catch_up(*conversation_id, applied, *seq).await,
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            tracing::warn!(%conversation_id, seq, error = %err, "message store projection deferred");
        }
    }

    async fn catch_up(&self, conversation: Uuid, mut applied: u64, last_seq: u64) -> Result<()> {
        while applied < last_seq {
            let upto = Ord::min(applied + CATCH_UP_BATCH, last_seq);
            let payloads: Vec<(String, Option<Vec<u8>>)> = events::Entity::find()
                .select_only()
                .column(events::Column::Payload)
                .column(events::Column::Body)
                .filter(events::Column::ConversationId.eq(conversation))
                .filter(events::Column::Seq.gt(convert::seq_to_db(applied)))
                .filter(events::Column::Seq.lte(convert::seq_to_db(upto)))
                .order_by_asc(events::Column::Seq)
                .into_tuple()
                .all(&self.db)
                .await?;
            let parsed: Vec<Event> = payloads
                .iter()
                .map(|(payload, body)| super::stored_event(payload, body.as_deref()))
                .collect::<Result<_>>()?;
            let batch: Vec<Applied<'_>> = parsed
                .iter()
                .filter_map(|event| match event {
                    Event::Conversation { seq, change, .. } => Some(Applied { seq: *seq, change }),
                    _ => None,
                })
                .collect();
            self.cql.apply(conversation, &batch, upto).await?;
            applied = upto;
        }
        Ok(())
    }
}

impl SqlStore {
    fn projector(&self) -> Option<Projector> {
        self.cql.as_ref().map(|cql| Projector {
            db: self.db.clone(),
            cql: Arc::clone(cql),
        })
    }

    /// See [`Projector::sync`]; nothing to do without CQL.
    pub(super) async fn sync_history(&self, conversation: Uuid, last_seq: u64) -> Result<()> {
        match self.projector() {
            Some(projector) => projector.sync(conversation, last_seq).await,
            None => Ok(()),
        }
    }

    /// After a commit: applies its event to the CQL history before the call returns. Not
    /// needed for correctness (every reader catches the history up first, and a failure
    /// here is left to the next reader or writer), but doing it on the call keeps the
    /// work bounded by the calls in flight and pushes back on senders when Cassandra
    /// falls behind. (Spawning it instead was tried: no clear gain in the 2-node load
    /// test, whose numbers near saturation vary too much run to run to tell, and an
    /// unbounded pile of tasks under overload.)
    ///
    /// A slow or unreachable Cassandra must not hold sends hostage, so the call waits at
    /// most [`PROJECTION_BUDGET`]; past it the projection is dropped and left to readers.
    pub(super) async fn project(&self, published: Option<&Published>) {
        if let (Some(projector), Some(published)) = (self.projector(), published) {
            let projecting = projector.project(Arc::clone(&published.event));
            if tokio::time::timeout(PROJECTION_BUDGET, projecting)
                .await
                .is_err()
            {
                tracing::warn!("message store projection deferred: over its time budget");
            }
        }
    }

    /// Records a new message in the caller's transaction (nothing in CQL mode: the
    /// content reaches CQL with the committed event).
    pub(super) async fn insert_message<C: ConnectionTrait>(
        &self,
        txn: &C,
        message: &Message,
        request_id: &str,
    ) -> Result<()> {
        if self.cql.is_some() {
            return Ok(());
        }
        let (text, encrypted_payload) = convert::content_columns(message.content.as_ref());
        let metadata = serde_json::to_string(&message.metadata).map_err(Error::internal)?;
        messages::ActiveModel {
            id: Set(message.id),
            conversation_id: Set(message.conversation_id),
            seq: Set(convert::seq_to_db(message.seq)),
            sender_id: Set(message.sender_id),
            request_id: Set(request_id.to_owned()),
            text: Set(text),
            encrypted_payload: Set(encrypted_payload),
            metadata: Set(metadata),
            reply_to: Set(message.reply_to),
            forwarded_sender_id: Set(message.forwarded_from.map(|f| f.sender_id)),
            forwarded_create_time: Set(message.forwarded_from.map(|f| f.create_time)),
            create_time: Set(message.create_time),
            edit_time: Set(message.edit_time),
            delete_time: Set(message.delete_time),
        }
        .insert(txn)
        .await?;
        Ok(())
    }

    /// Stores an edited or deleted message's new state in the caller's transaction (in
    /// CQL mode the committed event carries it there).
    pub(super) async fn update_message<C: ConnectionTrait>(
        &self,
        txn: &C,
        message: &Message,
    ) -> Result<()> {
        if self.cql.is_some() {
            return Ok(());
        }
        let row = messages::Entity::find_by_id(message.id)
            .one(txn)
            .await?
            .ok_or(Error::NotFound("message"))?;
        let (text, encrypted_payload) = convert::content_columns(message.content.as_ref());
        let mut active = row.into_active_model();
        active.text = Set(text);
        active.encrypted_payload = Set(encrypted_payload);
        active.metadata = Set(serde_json::to_string(&message.metadata).map_err(Error::internal)?);
        active.edit_time = Set(message.edit_time);
        active.delete_time = Set(message.delete_time);
        active.update(txn).await?;
        Ok(())
    }

    /// Forgets a deleted conversation's messages, in the caller's transaction (CQL rows go
    /// when the final event is projected).
    pub(super) async fn delete_messages<C: ConnectionTrait>(
        &self,
        txn: &C,
        conversation: Uuid,
    ) -> Result<()> {
        if self.cql.is_none() {
            messages::Entity::delete_many()
                .filter(messages::Column::ConversationId.eq(conversation))
                .exec(txn)
                .await?;
        }
        Ok(())
    }

    /// A message by id. `last_seq` is the conversation's committed end (CQL mode
    /// catches up to it first).
    pub(super) async fn message_at<C: ConnectionTrait>(
        &self,
        db: &C,
        conversation: Uuid,
        id: Uuid,
        last_seq: u64,
    ) -> Result<Option<Message>> {
        match &self.cql {
            Some(cql) => {
                self.sync_history(conversation, last_seq).await?;
                cql.message(conversation, id).await
            }
            None => messages::Entity::find_by_id(id)
                .filter(messages::Column::ConversationId.eq(conversation))
                .one(db)
                .await?
                .map(convert::message)
                .transpose(),
        }
    }

    /// A message by id, outside any transaction.
    pub(super) async fn find_message(
        &self,
        conversation: Uuid,
        id: Uuid,
    ) -> Result<Option<Message>> {
        let last_seq = self.committed_seq(conversation).await?;
        self.message_at(&self.db, conversation, id, last_seq).await
    }

    /// The conversation's latest committed `seq` (0 when it does not exist).
    async fn committed_seq(&self, conversation: Uuid) -> Result<u64> {
        if self.cql.is_none() {
            return Ok(0); // Not needed: the messages table is always current.
        }
        match self.find_conversation(&self.db, conversation).await {
            Ok(found) => Ok(found.last_seq),
            Err(Error::NotFound(_)) => Ok(0),
            // Not 0: that would read as "no history" while the database is away.
            Err(err) => Err(err),
        }
    }

    pub(super) async fn list_messages(
        &self,
        conversation: Uuid,
        direction: Direction,
        anchor_seq: u64,
        limit: u64,
    ) -> Result<Vec<Message>> {
        if let Some(cql) = &self.cql {
            let last_seq = self.committed_seq(conversation).await?;
            self.sync_history(conversation, last_seq).await?;
            return cql
                .messages(conversation, direction, anchor_seq, limit, last_seq)
                .await;
        }
        let mut query = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation))
            .limit(limit);
        let anchor = convert::seq_to_db(anchor_seq);
        query = match direction {
            Direction::Backward => {
                let query = query.order_by_desc(messages::Column::Seq);
                if anchor_seq == 0 {
                    query
                } else {
                    query.filter(messages::Column::Seq.lt(anchor))
                }
            }
            Direction::Forward => query
                .order_by_asc(messages::Column::Seq)
                .filter(messages::Column::Seq.gt(anchor)),
        };
        query
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::message)
            .collect()
    }

    /// The newest message still shown, and how many messages after `read_seq` others
    /// sent (on CQL the count saturates at `cql::UNREAD_SCAN_LIMIT`).
    pub(super) async fn last_and_unread(
        &self,
        conversation: Uuid,
        user: Uuid,
        read_seq: u64,
        last_seq: u64,
    ) -> Result<(Option<Message>, u32)> {
        if let Some(cql) = &self.cql {
            self.sync_history(conversation, last_seq).await?;
            let last = cql.last_visible(conversation, last_seq).await?;
            let unread = cql.unread(conversation, user, read_seq, last_seq).await?;
            return Ok((last, unread));
        }
        let last = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation))
            .filter(messages::Column::DeleteTime.is_null())
            .order_by_desc(messages::Column::Seq)
            .one(&self.db)
            .await?
            .map(convert::message)
            .transpose()?;
        let unread = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation))
            .filter(messages::Column::Seq.gt(convert::seq_to_db(read_seq)))
            .filter(messages::Column::SenderId.ne(user))
            .filter(messages::Column::DeleteTime.is_null())
            .count(&self.db)
            .await?;
        Ok((last, u32::try_from(unread).unwrap_or(u32::MAX)))
    }
}

/// The state a message takes when edited (`Some(content)`) or deleted (`None`) at `now`.
pub(super) fn rewritten(
    mut message: Message,
    content: Option<crate::domain::Content>,
    now: Time,
) -> Message {
    match content {
        Some(content) => {
            message.content = Some(content);
            message.edit_time = Some(now);
        }
        None => {
            message.content = None;
            message.metadata.clear();
            message.delete_time = Some(now);
        }
    }
    message
}
