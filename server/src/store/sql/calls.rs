//! Calls on SQL. A call's record (who rang, joined, left; how it ended) is one row in the
//! versioned format of `storage.v1.Call`, read, changed by `calls::lifecycle` and written
//! back whole under a lock: the conversation's first (ordering the change against
//! membership changes, as every conversation write does), then the call's.
//!
//! `active_calls` holds the call going on in each conversation; its primary key is what
//! makes "one call at a time" hold even against a bug in the checks before it.
//! `call_members` indexes each user's calls for their history.

use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::{
    SqlStore,
    chat::{
        members, messages,
        timeline::{lock_conversation, next_seq, record_change},
    },
    convert::db_time,
    entities::{active_calls, call_members, calls},
    paging::{self, Order},
};
use crate::{
    domain::{Change, Content, Role, Time, call::Call, call::CallRef},
    error::{Error, Result},
    format,
    store::{CallActor, CallChange, CallStore, Committed, NewCall, NewMessage, RequestKey},
};

/// Creates the call `id` carried by message `message` (in the send's write, which has
/// locked the conversation and checked that the caller may post): `CALL_IN_PROGRESS`
/// when another call is on.
pub(super) async fn insert<C: ConnectionTrait>(
    txn: &C,
    new: &NewCall,
    id: Uuid,
    message: Uuid,
    members: &[Uuid],
    now: Time,
) -> Result<()> {
    if let Some(on) = active_calls::Entity::find_by_id(new.conversation_id)
        .one(txn)
        .await?
    {
        return Err(Error::CallInProgress {
            call_id: on.call_id,
        });
    }
    let call = Call::start(
        id,
        new.conversation_id,
        message,
        new.caller,
        new.video,
        members,
        now,
    );
    active_calls::Entity::insert(active_calls::ActiveModel {
        conversation_id: Set(new.conversation_id),
        call_id: Set(id),
    })
    .exec(txn)
    .await?;
    calls::Entity::insert(calls::ActiveModel {
        id: Set(id),
        conversation_id: Set(new.conversation_id),
        start_time: Set(now),
        ring_due: Set(Some(db_time(new.ring_until))),
        end_time: Set(None),
        record: Set(format::encode_call(&call)),
    })
    .exec(txn)
    .await?;
    let rows = call.members.keys().map(|user| call_members::ActiveModel {
        user_id: Set(*user),
        call_id: Set(id),
        start_time: Set(now),
    });
    call_members::Entity::insert_many(rows).exec(txn).await?;
    Ok(())
}

async fn load<C: ConnectionTrait>(db: &C, id: Uuid, lock: bool) -> Result<Option<Call>> {
    let mut query = calls::Entity::find_by_id(id);
    if lock && db.get_database_backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    query
        .one(db)
        .await?
        .map(|row| format::decode_call(&row.record))
        .transpose()
}

/// The conversation a call is in (read before the write locks the conversation).
async fn conversation_of<C: ConnectionTrait>(db: &C, call: Uuid) -> Result<Uuid> {
    calls::Entity::find_by_id(call)
        .select_only()
        .column(calls::Column::ConversationId)
        .into_tuple()
        .one(db)
        .await?
        .ok_or(Error::NotFound("call"))
}

/// Writes `after` over `before` (locked in `txn`); when it has just ended, with its
/// `CallEnded` event, by `actor`.
async fn save(
    txn: &DatabaseTransaction,
    before: &Call,
    after: Call,
    actor: Uuid,
    now: Time,
) -> Result<Committed<Call>> {
    let mut row = calls::ActiveModel {
        id: Set(after.id),
        record: Set(format::encode_call(&after)),
        ..Default::default()
    };
    for user in after.members.keys() {
        if !before.members.contains_key(user) {
            call_members::Entity::insert(call_members::ActiveModel {
                user_id: Set(*user),
                call_id: Set(after.id),
                start_time: Set(after.started),
            })
            .on_conflict_do_nothing_on([call_members::Column::UserId, call_members::Column::CallId])
            .exec(txn)
            .await?;
        }
    }
    let Some((ended, _)) = after.ended.filter(|_| !before.is_over()) else {
        calls::Entity::update(row).exec(txn).await?;
        return Ok(Committed::unchanged(after));
    };
    row.end_time = Set(Some(ended));
    row.ring_due = Set(None);
    calls::Entity::update(row).exec(txn).await?;
    active_calls::Entity::delete_by_id(after.conversation)
        .exec(txn)
        .await?;
    let seq = next_seq(txn, after.conversation, now).await?;
    let change = Change::CallEnded(Box::new(after.clone()));
    let published = record_change(txn, after.conversation, seq, actor, now, None, change).await?;
    Ok(Committed {
        value: after,
        published: Some(published),
    })
}

impl SqlStore {
    /// `change` on the call, locked; by `actor`, who must be a member of its conversation
    /// when `as_member` (the change then gets their role).
    async fn change_call(
        &self,
        id: Uuid,
        actor: Uuid,
        as_member: bool,
        now: Time,
        change: CallChange<'_>,
    ) -> Result<Committed<Call>> {
        let now = db_time(now);
        let conversation = conversation_of(&self.db, id).await?;
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        lock_conversation(&txn, conversation).await?;
        let role = match members::role_in(&txn, conversation, actor).await? {
            Some(role) => role,
            None if !as_member => Role::Member,
            None => return Err(Error::NotFound("call")),
        };
        let before = load(&txn, id, true).await?.ok_or(Error::NotFound("call"))?;
        let mut after = before.clone();
        if !change(&mut after, role)? {
            return Ok(Committed::unchanged(before));
        }
        let committed = save(&txn, &before, after, actor, now).await?;
        txn.commit().await?;
        Ok(committed)
    }
}

#[async_trait]
impl CallStore for SqlStore {
    async fn start_call(
        &self,
        new: NewCall,
        request: RequestKey,
        now: Time,
    ) -> Result<Committed<Call>> {
        let now = db_time(now);
        let content = Content::Call(CallRef {
            call_id: Uuid::now_v7(),
            video: new.video,
        });
        let message = NewMessage::carrying(new.conversation_id, new.caller, content, request);
        // A retry gets the first call's message back, and so the first call.
        let Committed { value, published } =
            messages::send(self, message, messages::Carried::Call(new), now).await?;
        let Some(Content::Call(carried)) = value.content else {
            return Err(Error::NotFound("call"));
        };
        let call = load(&self.db, carried.call_id, false)
            .await?
            .ok_or(Error::NotFound("call"))?;
        Ok(Committed {
            value: call,
            published,
        })
    }

    async fn call(&self, id: Uuid) -> Result<Option<Call>> {
        load(&self.db, id, false).await
    }

    async fn calls_by_id(&self, ids: &[Uuid]) -> Result<Vec<Call>> {
        calls::Entity::find()
            .filter(calls::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?
            .iter()
            .map(|row| format::decode_call(&row.record))
            .collect()
    }

    async fn update_call(
        &self,
        id: Uuid,
        actor: CallActor,
        now: Time,
        change: CallChange<'_>,
    ) -> Result<Committed<Call>> {
        match actor {
            CallActor::Member(user) => self.change_call(id, user, true, now, change).await,
            CallActor::Call(user) => self.change_call(id, user, false, now, change).await,
        }
    }

    async fn ring_due(
        &self,
        ids: &[Uuid],
        now: Time,
        change: CallChange<'_>,
    ) -> Result<Vec<Committed<Call>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = db_time(now);
        let due: Vec<(Uuid, Uuid)> = calls::Entity::find()
            .select_only()
            .column(calls::Column::Id)
            .column(calls::Column::ConversationId)
            .filter(calls::Column::Id.is_in(ids.iter().copied()))
            .filter(calls::Column::RingDue.lte(now))
            .order_by_asc(calls::Column::RingDue)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut changed = Vec::new();
        for (id, conversation) in due {
            let _guard = self.write_guard().await;
            let txn = self.db.begin().await?;
            lock_conversation(&txn, conversation).await?;
            // Only a call still due is handled: of several nodes racing here, one sees
            // the row change.
            let claimed = calls::Entity::update_many()
                .col_expr(calls::Column::RingDue, Option::<Time>::None.into())
                .filter(calls::Column::Id.eq(id))
                .filter(calls::Column::RingDue.lte(now))
                .exec(&txn)
                .await?
                .rows_affected;
            if claimed != 1 {
                continue;
            }
            let Some(before) = load(&txn, id, true).await? else {
                continue;
            };
            let mut after = before.clone();
            if !change(&mut after, Role::Member)? {
                txn.commit().await?;
                continue;
            }
            // The ring timing out is the call's own doing: its caller is the actor.
            let caller = after.caller;
            let committed = save(&txn, &before, after, caller, now).await?;
            txn.commit().await?;
            changed.push(committed);
        }
        Ok(changed)
    }

    async fn active_calls(&self, limit: u64) -> Result<Vec<Uuid>> {
        Ok(active_calls::Entity::find()
            .select_only()
            .column(active_calls::Column::CallId)
            .order_by_asc(active_calls::Column::CallId)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    async fn calls(
        &self,
        conversation: Option<Uuid>,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Call>> {
        // A conversation's calls are read with their records; a user's through the index.
        let ids: Vec<Uuid> = match conversation {
            Some(conversation) => {
                return paging::page(
                    calls::Entity::find().filter(calls::Column::ConversationId.eq(conversation)),
                    (calls::Column::StartTime, calls::Column::Id),
                    Order::NewestFirst,
                    before,
                    limit,
                )
                .all(&self.db)
                .await?
                .iter()
                .map(|row| format::decode_call(&row.record))
                .collect();
            }
            None => {
                paging::page(
                    call_members::Entity::find().filter(call_members::Column::UserId.eq(user)),
                    (
                        call_members::Column::StartTime,
                        call_members::Column::CallId,
                    ),
                    Order::NewestFirst,
                    before,
                    limit,
                )
                .select_only()
                .column(call_members::Column::CallId)
                .into_tuple()
                .all(&self.db)
                .await?
            }
        };
        let mut found = self.calls_by_id(&ids).await?;
        found.sort_by_key(|call| std::cmp::Reverse((call.started, call.id)));
        Ok(found)
    }
}
