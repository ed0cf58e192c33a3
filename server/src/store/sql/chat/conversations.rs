//! Creating, reading, listing, editing and deleting conversations.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    TransactionTrait,
};
use uuid::Uuid;

use super::{
    timeline::Locked,
    timeline::{conversation_event, member_ids, record_change},
};
use crate::{
    domain::{
        Change, Conversation, ConversationKind, ConversationView, DetailsChanges, Membership, Role,
        Time,
        rules::{self, Act},
    },
    error::{Error, Result},
    store::{
        Committed, NewConversation, RequestKey,
        sql::{
            SqlStore, append_event, convert,
            entities::{conversations, members},
            paging::{self, Order},
            requests,
        },
    },
};

impl SqlStore {
    pub(in crate::store::sql) async fn find_conversation<C: ConnectionTrait>(
        &self,
        db: &C,
        id: Uuid,
    ) -> Result<Conversation> {
        conversations::Entity::find_by_id(id)
            .one(db)
            .await?
            .map(convert::conversation)
            .ok_or(Error::NotFound("conversation"))
    }

    /// The direct conversation of the same two users, if there is one already.
    pub(super) async fn existing_direct(
        &self,
        new: &NewConversation,
    ) -> Result<Option<Conversation>> {
        let Some(key) = &new.direct_key else {
            return Ok(None);
        };
        Ok(conversations::Entity::find()
            .filter(conversations::Column::DirectKey.eq(key.clone()))
            .one(&self.db)
            .await?
            .map(convert::conversation))
    }

    /// Like [`Self::replay_message`], for conversations.
    pub(super) async fn replay_conversation(
        &self,
        request: &RequestKey,
        conflict: sea_orm::DbErr,
    ) -> Result<Committed<Conversation>> {
        let first = self
            .find_first_use(request)
            .await?
            .ok_or_else(|| Error::internal(conflict))?;
        first.check_retry_of(request)?;
        Ok(Committed::unchanged(
            self.find_conversation(&self.db, first.result_id).await?,
        ))
    }

    pub(super) async fn view(
        &self,
        user: Uuid,
        row: &members::Model,
        conversation: Conversation,
    ) -> Result<ConversationView> {
        let read_seq = convert::seq_from_db(row.read_seq);
        let (last_message, unread_count) = self
            .history
            .last_and_unread(conversation.id, user, read_seq, conversation.last_seq)
            .await?;
        let peer_user_id = if conversation.kind == ConversationKind::Direct {
            member_ids(&self.db, conversation.id)
                .await?
                .into_iter()
                .find(|id| *id != user)
        } else {
            None
        };
        Ok(ConversationView {
            conversation,
            membership: Membership {
                role: Role::from_code(row.role),
                read_seq,
                join_time: row.join_time,
            },
            last_message,
            unread_count,
            peer_user_id,
        })
    }
}

pub(super) async fn create(
    store: &SqlStore,
    new: NewConversation,
    now: Time,
) -> Result<Committed<Conversation>> {
    let _guard = store.write_guard().await;
    if let Some(existing) = store.existing_direct(&new).await? {
        return Ok(Committed::unchanged(existing));
    }
    let id = Uuid::now_v7();
    let txn = store.db.begin().await?;
    if let Some(request) = &new.request {
        match requests::record(&txn, request, id, id, now).await {
            Ok(()) => {}
            Err(err) if convert::is_unique_violation(&err) => {
                drop(txn);
                return store.replay_conversation(request, err).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    let inserted = conversations::ActiveModel {
        id: Set(id),
        kind: Set(convert::kind_to_db(new.kind)),
        title: Set(new.details.title.clone()),
        description: Set(new.details.description.clone()),
        avatar_url: Set(new.details.avatar_url.clone()),
        end_to_end_encrypted: Set(new.end_to_end_encrypted),
        creator_id: Set(new.creator),
        request_id: Set(None),
        direct_key: Set(new.direct_key.clone()),
        create_time: Set(now),
        last_activity_time: Set(now),
        last_seq: Set(1),
        member_count: Set(i32::try_from(new.members.len()).unwrap_or(i32::MAX)),
        // Born large: its creation is the first event on the shared timeline.
        fanout_on_read: Set(new.members.len() > store.fanout_on_read_members),
    }
    .insert(&txn)
    .await;
    match inserted {
        Ok(_) => {}
        // Another node created the same direct conversation first: return theirs.
        Err(err) if convert::is_unique_violation(&err) => {
            drop(txn);
            let existing = store.existing_direct(&new).await?;
            return existing
                .map(Committed::unchanged)
                .ok_or_else(|| Error::internal(err));
        }
        Err(err) => return Err(err.into()),
    }
    members::Entity::insert_many(new.members.iter().map(|m| members::ActiveModel {
        conversation_id: Set(id),
        user_id: Set(m.user_id),
        role: Set(m.role.code()),
        read_seq: Set(0),
        join_time: Set(m.join_time),
    }))
    .exec(&txn)
    .await?;
    let recipients: Vec<Uuid> = new.members.iter().map(|m| m.user_id).collect();
    let event = conversation_event(
        id,
        1,
        new.creator,
        now,
        Change::Created {
            kind: new.kind,
            details: new.details,
            end_to_end_encrypted: new.end_to_end_encrypted,
            members: new.members,
        },
    );
    let published = append_event(&txn, event, &recipients, now).await?;
    let conversation = store.find_conversation(&txn, id).await?;
    txn.commit().await?;
    Ok(Committed {
        value: conversation,
        published: Some(published),
    })
}

pub(super) async fn get(store: &SqlStore, id: Uuid) -> Result<Option<Conversation>> {
    Ok(conversations::Entity::find_by_id(id)
        .one(&store.db)
        .await?
        .map(convert::conversation))
}

pub(super) async fn views(
    store: &SqlStore,
    user: Uuid,
    before: Option<(Time, Uuid)>,
    limit: u64,
) -> Result<Vec<ConversationView>> {
    let memberships: HashMap<Uuid, members::Model> = members::Entity::find()
        .filter(members::Column::UserId.eq(user))
        .all(&store.db)
        .await?
        .into_iter()
        .map(|row| (row.conversation_id, row))
        .collect();
    let query = paging::page(
        conversations::Entity::find()
            .filter(conversations::Column::Id.is_in(memberships.keys().copied())),
        (
            conversations::Column::LastActivityTime,
            conversations::Column::Id,
        ),
        Order::NewestFirst,
        before,
        limit,
    );
    // Each view takes a few small reads (several round trips to CQL when history lives
    // there): build the page's views concurrently, in the page's order.
    let rows = query.all(&store.db).await?;
    futures::future::try_join_all(rows.into_iter().filter_map(|row| {
        let membership = memberships.get(&row.id)?;
        Some(store.view(user, membership, convert::conversation(row)))
    }))
    .await
}

pub(super) async fn view_of(
    store: &SqlStore,
    user: Uuid,
    id: Uuid,
) -> Result<Option<ConversationView>> {
    let Some(membership) = members::Entity::find_by_id((id, user))
        .one(&store.db)
        .await?
    else {
        return Ok(None);
    };
    let conversation = store.find_conversation(&store.db, id).await?;
    Ok(Some(store.view(user, &membership, conversation).await?))
}

pub(super) async fn update_details(
    store: &SqlStore,
    conversation: Uuid,
    actor: Uuid,
    changes: DetailsChanges,
    now: Time,
) -> Result<Committed<Conversation>> {
    let Locked {
        _writer,
        txn,
        seq,
        role,
    } = store.begin_change(conversation, actor, now).await?;
    rules::authorize(actor, role, Act::EditDetails)?;
    let current = store.find_conversation(&txn, conversation).await?;
    let details = changes.apply(current.details);
    conversations::Entity::update_many()
        .col_expr(conversations::Column::Title, details.title.clone().into())
        .col_expr(
            conversations::Column::Description,
            details.description.clone().into(),
        )
        .col_expr(
            conversations::Column::AvatarUrl,
            details.avatar_url.clone().into(),
        )
        .filter(conversations::Column::Id.eq(conversation))
        .exec(&txn)
        .await?;
    let change = Change::Updated(details);
    let published = record_change(&txn, conversation, seq, actor, now, None, change).await?;
    let value = store.find_conversation(&txn, conversation).await?;
    txn.commit().await?;
    Ok(Committed {
        value,
        published: Some(published),
    })
}

pub(super) async fn delete(
    store: &SqlStore,
    conversation: Uuid,
    actor: Uuid,
    now: Time,
) -> Result<Committed<()>> {
    let Locked {
        _writer,
        txn,
        seq,
        role,
    } = store.begin_change(conversation, actor, now).await?;
    rules::authorize(actor, role, Act::DeleteGroup)?;
    let published =
        record_change(&txn, conversation, seq, actor, now, None, Change::Deleted).await?;
    store.history.forget(&txn, conversation).await?;
    crate::store::sql::polls::forget(&txn, conversation).await?;
    members::Entity::delete_many()
        .filter(members::Column::ConversationId.eq(conversation))
        .exec(&txn)
        .await?;
    conversations::Entity::delete_by_id(conversation)
        .exec(&txn)
        .await?;
    txn.commit().await?;
    store.history.committed(&published).await;
    Ok(Committed {
        value: (),
        published: Some(published),
    })
}
