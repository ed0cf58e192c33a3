//! History in ScyllaDB/Cassandra, as a projection of the committed events: nothing is
//! written there inside the SQL transaction; each commit applies its event afterwards,
//! and every reader first catches the projection up to the conversation's committed
//! `seq` (see `store::cql` for why this keeps order and loses nothing).

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::MessageHistory;
use crate::{
    domain::{Event, Message, Published},
    error::Result,
    store::{
        Direction,
        cql::{Applied, CqlHistory},
        sql::{convert, entities::events, stored_event},
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
                .map(|(payload, body)| stored_event(payload, body.as_deref()))
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

/// [`MessageHistory`] on ScyllaDB/Cassandra.
pub(in crate::store::sql) struct CqlProjection {
    projector: Projector,
}

impl CqlProjection {
    pub(in crate::store::sql) fn new(db: DatabaseConnection, cql: Arc<CqlHistory>) -> Self {
        Self {
            projector: Projector { db, cql },
        }
    }

    fn cql(&self) -> &CqlHistory {
        &self.projector.cql
    }
}

#[async_trait]
impl MessageHistory for CqlProjection {
    /// Nothing in the transaction: the content reaches CQL with the committed event.
    async fn insert(&self, _: &DatabaseTransaction, _: &Message, _: &str) -> Result<()> {
        Ok(())
    }

    /// As for [`Self::insert`]: the committed event carries the new state.
    async fn update(&self, _: &DatabaseTransaction, _: &Message) -> Result<()> {
        Ok(())
    }

    /// The rows go when the conversation's final event is projected.
    async fn forget(&self, _: &DatabaseTransaction, _: Uuid) -> Result<()> {
        Ok(())
    }

    /// Applies the event before the call returns. Not needed for correctness (every
    /// reader catches the history up first, and a failure here is left to the next
    /// reader or writer), but doing it on the call keeps the work bounded by the calls in
    /// flight and pushes back on senders when Cassandra falls behind. (Spawning it instead
    /// was tried: no clear gain in the 2-node load test, whose numbers near saturation
    /// vary too much run to run to tell, and an unbounded pile of tasks under overload.)
    ///
    /// A slow or unreachable Cassandra must not hold sends hostage, so the call waits at
    /// most [`PROJECTION_BUDGET`]; past it the projection is dropped and left to readers.
    async fn committed(&self, published: &Published) {
        let projecting = self.projector.clone().project(Arc::clone(&published.event));
        if tokio::time::timeout(PROJECTION_BUDGET, projecting)
            .await
            .is_err()
        {
            tracing::warn!("message store projection deferred: over its time budget");
        }
    }

    async fn message_in(
        &self,
        _: &DatabaseTransaction,
        conversation: Uuid,
        id: Uuid,
        last_seq: u64,
    ) -> Result<Option<Message>> {
        self.message(conversation, id, last_seq).await
    }

    async fn message(
        &self,
        conversation: Uuid,
        id: Uuid,
        last_seq: u64,
    ) -> Result<Option<Message>> {
        self.projector.sync(conversation, last_seq).await?;
        self.cql().message(conversation, id).await
    }

    async fn messages(
        &self,
        conversation: Uuid,
        direction: Direction,
        anchor_seq: u64,
        limit: u64,
        last_seq: u64,
    ) -> Result<Vec<Message>> {
        self.projector.sync(conversation, last_seq).await?;
        self.cql()
            .messages(conversation, direction, anchor_seq, limit, last_seq)
            .await
    }

    async fn last_and_unread(
        &self,
        conversation: Uuid,
        user: Uuid,
        read_seq: u64,
        last_seq: u64,
    ) -> Result<(Option<Message>, u32)> {
        self.projector.sync(conversation, last_seq).await?;
        let last = self.cql().last_visible(conversation, last_seq).await?;
        let unread = self
            .cql()
            .unread(conversation, user, read_seq, last_seq)
            .await?;
        Ok((last, unread))
    }

    fn is_projection(&self) -> bool {
        true
    }

    async fn applied_seq(&self, conversation: Uuid) -> Result<u64> {
        self.cql().applied_seq(conversation).await
    }
}
