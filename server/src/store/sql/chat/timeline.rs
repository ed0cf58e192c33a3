//! The timeline: numbering each change of a conversation (which locks it for the rest of
//! the write) and fanning its event out to the members' feeds; reading feeds back.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, Query},
};
use uuid::Uuid;

use super::members::member_role;

use crate::{
    domain::{Change, ConversationKind, Event, FeedItem, Role, Time},
    error::{Error, Result},
    store::sql::{
        SqlStore, append_event, convert,
        entities::{conversations, events, feed, members},
    },
};

/// Locks `conversation` for a change that takes no `seq` (PostgreSQL; SQLite writes one at
/// a time anyway): it then orders against membership changes, which lock it too.
pub(in crate::store::sql) async fn lock_conversation<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
) -> Result<()> {
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        conversations::Entity::find_by_id(conversation)
            .select_only()
            .column(conversations::Column::Id)
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .one(txn)
            .await?;
    }
    Ok(())
}

/// Takes the conversation's next `seq` and records the activity time.
pub(in crate::store::sql) async fn next_seq<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    now: Time,
) -> Result<u64> {
    number_change(txn, conversation, now)
        .await
        .map(|numbered| numbered.seq)
}

/// What numbering a change reads of its conversation, in the same statement.
pub(in crate::store::sql) struct Numbered {
    pub(in crate::store::sql) seq: u64,
    pub(in crate::store::sql) kind: ConversationKind,
    pub(in crate::store::sql) end_to_end_encrypted: bool,
    /// Whether its events go on the shared timeline (see `shared_timeline`).
    pub(in crate::store::sql) fanout_on_read: bool,
}

/// Takes the conversation's next `seq` like [`next_seq`], also returning what a send
/// checks of the conversation.
pub(in crate::store::sql) async fn number_change<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    now: Time,
) -> Result<Numbered> {
    // One statement: the numbering update hands back the new number (RETURNING, which
    // SQLite and PostgreSQL both have).
    let numbering = Query::update()
        .table(conversations::Entity)
        .value(
            conversations::Column::LastSeq,
            Expr::col(conversations::Column::LastSeq).add(1),
        )
        .value(conversations::Column::LastActivityTime, now)
        .and_where(conversations::Column::Id.eq(conversation))
        .returning(Query::returning().columns([
            conversations::Column::LastSeq,
            conversations::Column::Kind,
            conversations::Column::EndToEndEncrypted,
            conversations::Column::FanoutOnRead,
        ]))
        .to_owned();
    let Some(row) = txn.query_one(&numbering).await? else {
        return Err(Error::NotFound("conversation"));
    };
    let seq: i64 = row.try_get_by_index(0)?;
    let kind: i16 = row.try_get_by_index(1)?;
    Ok(Numbered {
        seq: convert::seq_from_db(seq),
        kind: convert::kind_from_db(kind),
        end_to_end_encrypted: row.try_get_by_index(2)?,
        fanout_on_read: row.try_get_by_index(3)?,
    })
}

/// Records `change` as the conversation's timeline event number `seq` (taken with
/// [`next_seq`] at the start of the write), in the members' feeds (plus `also`, such as a
/// member who just left).
pub(in crate::store::sql) async fn record_change<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    seq: u64,
    actor: Uuid,
    now: Time,
    also: Option<Uuid>,
    change: Change,
) -> Result<crate::domain::Published> {
    let mut recipients = member_ids(txn, conversation).await?;
    recipients.extend(also);
    let event = conversation_event(conversation, seq, actor, now, change);
    append_event(txn, event, &recipients, now).await
}

pub(in crate::store::sql) fn conversation_event(
    conversation_id: Uuid,
    seq: u64,
    actor: Uuid,
    time: Time,
    change: Change,
) -> Event {
    Event::Conversation {
        conversation_id,
        seq,
        actor,
        time,
        change,
    }
}

pub(in crate::store::sql) async fn member_ids<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
) -> Result<Vec<Uuid>> {
    Ok(members::Entity::find()
        .select_only()
        .column(members::Column::UserId)
        .filter(members::Column::ConversationId.eq(conversation))
        .into_tuple()
        .all(txn)
        .await?)
}

pub(in crate::store::sql) async fn feed(
    store: &SqlStore,
    user: Uuid,
    after: u64,
    limit: u64,
) -> Result<Vec<FeedItem>> {
    let rows = feed::Entity::find()
        .filter(feed::Column::UserId.eq(user))
        .filter(feed::Column::FeedSeq.gt(convert::seq_to_db(after)))
        .order_by_asc(feed::Column::FeedSeq)
        .limit(limit)
        .all(&store.db)
        .await?;
    let payloads: HashMap<i64, (String, Option<Vec<u8>>)> = events::Entity::find()
        .filter(events::Column::Id.is_in(rows.iter().map(|r| r.event_id)))
        .all(&store.db)
        .await?
        .into_iter()
        .map(|row| (row.id, (row.payload, row.body)))
        .collect();
    rows.into_iter()
        .map(|row| {
            let (payload, body) = payloads
                .get(&row.event_id)
                .ok_or_else(|| Error::internal("feed row without its event"))?;
            let event = crate::store::sql::stored_event(payload, body.as_deref())?;
            Ok(FeedItem {
                feed_seq: convert::seq_from_db(row.feed_seq),
                event: std::sync::Arc::new(event),
            })
        })
        .collect()
}

/// A change to a conversation under way: the write's transaction (with SQLite's writer
/// lock), the conversation locked by taking the change's `seq`, and the actor's role as
/// it stands now.
pub(in crate::store::sql) struct Locked<'a> {
    pub(in crate::store::sql) _writer: Option<tokio::sync::MutexGuard<'a, ()>>,
    pub(in crate::store::sql) txn: DatabaseTransaction,
    pub(in crate::store::sql) seq: u64,
    pub(in crate::store::sql) role: Role,
}

impl SqlStore {
    /// Starts `actor`'s change to `conversation`. Numbering it first locks the
    /// conversation, so every check that follows sees each removal or demotion committed
    /// before, and one committing after waits for this write. Non-members get
    /// `NOT_FOUND`, before anything else of the conversation is read for them.
    pub(in crate::store::sql) async fn begin_change(
        &self,
        conversation: Uuid,
        actor: Uuid,
        now: Time,
    ) -> Result<Locked<'_>> {
        let writer = self.write_guard().await;
        let txn = self.db.begin().await?;
        let seq = next_seq(&txn, conversation, now).await?;
        let role = member_role(&txn, conversation, actor).await?;
        Ok(Locked {
            _writer: writer,
            txn,
            seq,
            role,
        })
    }
}
