//! Membership and roles: who is in a conversation, with which rights, and how far they
//! have read.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QuerySelect, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::timeline::{Locked, member_ids, record_change};
use crate::{
    domain::{
        Change, Event, Member, Membership, Role, Time,
        rules::{self, Act},
    },
    error::{Error, Result},
    store::{
        Committed,
        sql::{
            SqlStore, append_event, convert,
            entities::{conversations, members},
            paging::{self, Order},
            shared_timeline,
        },
    },
};

/// `actor`'s role as it stands in this write; `NOT_FOUND` for non-members (see
/// [`rules::member`]).
pub(super) async fn member_role<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    actor: Uuid,
) -> Result<Role> {
    rules::member(role_in(txn, conversation, actor).await?)
}

/// `user`'s role in the conversation (`None`: not a member).
pub(in crate::store::sql) async fn role_in<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    user: Uuid,
) -> Result<Option<Role>> {
    let code: Option<i16> = members::Entity::find_by_id((conversation, user))
        .select_only()
        .column(members::Column::Role)
        .into_tuple()
        .one(txn)
        .await?;
    Ok(code.map(Role::from_code))
}

/// How many members the conversation has (with `role` only, when given).
async fn count_members<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    role: Option<Role>,
) -> Result<usize> {
    let mut query =
        members::Entity::find().filter(members::Column::ConversationId.eq(conversation));
    if let Some(role) = role {
        query = query.filter(members::Column::Role.eq(role.code()));
    }
    Ok(usize::try_from(query.count(txn).await?).unwrap_or(usize::MAX))
}

pub(super) async fn change_member_count<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    delta: i32,
) -> Result<()> {
    conversations::Entity::update_many()
        .col_expr(
            conversations::Column::MemberCount,
            Expr::col(conversations::Column::MemberCount).add(delta),
        )
        .filter(conversations::Column::Id.eq(conversation))
        .exec(txn)
        .await?;
    Ok(())
}

pub(super) fn member(row: &members::Model) -> Member {
    Member {
        user_id: row.user_id,
        role: Role::from_code(row.role),
        join_time: row.join_time,
    }
}

pub(super) async fn membership(
    store: &SqlStore,
    conversation: Uuid,
    user: Uuid,
) -> Result<Option<Membership>> {
    Ok(members::Entity::find_by_id((conversation, user))
        .one(&store.db)
        .await?
        .map(|row| Membership {
            role: Role::from_code(row.role),
            read_seq: convert::seq_from_db(row.read_seq),
            join_time: row.join_time,
        }))
}

pub(super) async fn list(
    store: &SqlStore,
    conversation: Uuid,
    after: Option<(Time, Uuid)>,
    limit: u64,
) -> Result<Vec<Member>> {
    let query = paging::page(
        members::Entity::find().filter(members::Column::ConversationId.eq(conversation)),
        (members::Column::JoinTime, members::Column::UserId),
        Order::OldestFirst,
        after,
        limit,
    );
    Ok(query.all(&store.db).await?.iter().map(member).collect())
}

pub(super) async fn add(
    store: &SqlStore,
    conversation: Uuid,
    actor: Uuid,
    users: &[Uuid],
    now: Time,
) -> Result<Committed<Vec<Member>>> {
    let Locked {
        _writer,
        txn,
        seq,
        role,
    } = store.begin_change(conversation, actor, now).await?;
    rules::authorize(actor, role, Act::AddMembers)?;
    let current = member_ids(&txn, conversation).await?;
    let mut added: Vec<Member> = Vec::new();
    for user in users {
        if !current.contains(user) && !added.iter().any(|m| m.user_id == *user) {
            added.push(Member {
                user_id: *user,
                role: Role::Member,
                join_time: now,
            });
        }
    }
    if added.is_empty() {
        // Dropping the transaction gives the `seq` back.
        return Ok(Committed::unchanged(added));
    }
    members::Entity::insert_many(added.iter().map(|m| members::ActiveModel {
        conversation_id: Set(conversation),
        user_id: Set(m.user_id),
        role: Set(m.role.code()),
        read_seq: Set(0),
        join_time: Set(m.join_time),
    }))
    .exec(&txn)
    .await?;
    change_member_count(
        &txn,
        conversation,
        i32::try_from(added.len()).unwrap_or(i32::MAX),
    )
    .await?;
    shared_timeline::switch_if_large(
        &txn,
        conversation,
        current.len() + added.len(),
        store.fanout_on_read_members,
    )
    .await?;
    let change = Change::MembersAdded(added.clone());
    let published = record_change(&txn, conversation, seq, actor, now, None, change).await?;
    txn.commit().await?;
    Ok(Committed {
        value: added,
        published: Some(published),
    })
}

pub(super) async fn remove(
    store: &SqlStore,
    conversation: Uuid,
    actor: Uuid,
    user: Uuid,
    now: Time,
) -> Result<Committed<()>> {
    let Locked {
        _writer,
        txn,
        seq,
        role,
    } = store.begin_change(conversation, actor, now).await?;
    let act = if actor == user {
        let members = count_members(&txn, conversation, None).await?;
        let owners = count_members(&txn, conversation, Some(Role::Owner)).await?;
        Act::Leave { owners, members }
    } else {
        let target = role_in(&txn, conversation, user)
            .await?
            .ok_or(Error::NotFound("member"))?;
        Act::Remove { target }
    };
    rules::authorize(actor, role, act)?;
    members::Entity::delete_many()
        .filter(members::Column::ConversationId.eq(conversation))
        .filter(members::Column::UserId.eq(user))
        .exec(&txn)
        .await?;
    change_member_count(&txn, conversation, -1).await?;
    let change = Change::MemberRemoved {
        user_id: user,
        left: actor == user,
    };
    // The removed user hears of their own removal: it is the last event they get.
    let published = record_change(&txn, conversation, seq, actor, now, Some(user), change).await?;
    txn.commit().await?;
    Ok(Committed {
        value: (),
        published: Some(published),
    })
}

pub(super) async fn set_role(
    store: &SqlStore,
    conversation: Uuid,
    actor: Uuid,
    user: Uuid,
    new_role: Role,
    now: Time,
) -> Result<Committed<Member>> {
    let Locked {
        _writer,
        txn,
        seq,
        role,
    } = store.begin_change(conversation, actor, now).await?;
    let row = members::Entity::find_by_id((conversation, user))
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("member"))?;
    let target = Role::from_code(row.role);
    let owners = count_members(&txn, conversation, Some(Role::Owner)).await?;
    let act = Act::SetRole {
        target,
        to: new_role,
        owners,
    };
    rules::authorize(actor, role, act)?;
    if target == new_role {
        return Ok(Committed::unchanged(member(&row)));
    }
    let mut active = row.into_active_model();
    active.role = Set(new_role.code());
    let updated = member(&active.update(&txn).await?);
    let change = Change::RoleUpdated(updated.clone());
    let published = record_change(&txn, conversation, seq, actor, now, None, change).await?;
    txn.commit().await?;
    Ok(Committed {
        value: updated,
        published: Some(published),
    })
}

pub(super) async fn mark_read(
    store: &SqlStore,
    conversation: Uuid,
    user: Uuid,
    seq: u64,
    now: Time,
) -> Result<Committed<u64>> {
    let _guard = store.write_guard().await;
    let txn = store.db.begin().await?;
    let last_seq = store.find_conversation(&txn, conversation).await?.last_seq;
    let target = convert::seq_to_db(Ord::min(seq, last_seq));
    let moved = members::Entity::update_many()
        .col_expr(members::Column::ReadSeq, target.into())
        .filter(members::Column::ConversationId.eq(conversation))
        .filter(members::Column::UserId.eq(user))
        .filter(members::Column::ReadSeq.lt(target))
        .exec(&txn)
        .await?
        .rows_affected;
    let read_seq = members::Entity::find_by_id((conversation, user))
        .one(&txn)
        .await?
        .map(|row| convert::seq_from_db(row.read_seq))
        .ok_or(Error::NotFound("conversation"))?;
    if moved == 0 {
        return Ok(Committed::unchanged(read_seq));
    }
    let event = Event::ReadState {
        conversation_id: conversation,
        read_seq,
        time: now,
    };
    let published = append_event(&txn, event, &[user], now).await?;
    txn.commit().await?;
    Ok(Committed {
        value: read_seq,
        published: Some(published),
    })
}
