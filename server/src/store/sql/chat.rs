//! Conversations, members, messages and feeds on SQL. Every durable change bumps the
//! conversation's `seq` and fans the event out to the members' feeds in one transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    ExprTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::{
    SqlStore, accounts, append_event, convert,
    entities::{conversations, events, feed, members, users},
    history, requests,
};
use crate::{
    domain::{
        Change, Content, Conversation, ConversationKind, ConversationView, DetailsChanges, Event,
        FeedItem, Member, Membership, Message, Role, Time,
        rules::{self, Act},
    },
    error::{Error, Reason, Result},
    store::{ChatStore, Committed, Direction, FirstUse, NewConversation, NewMessage, RequestKey},
};

/// Takes the conversation's next `seq` and records the activity time.
async fn next_seq<C: ConnectionTrait>(txn: &C, conversation: Uuid, now: Time) -> Result<u64> {
    next_seq_and_kind(txn, conversation, now)
        .await
        .map(|(seq, _)| seq)
}

/// [`next_seq`], also returning the conversation's kind from the same row read.
async fn next_seq_and_kind<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    now: Time,
) -> Result<(u64, ConversationKind)> {
    conversations::Entity::update_many()
        .col_expr(
            conversations::Column::LastSeq,
            Expr::col(conversations::Column::LastSeq).add(1),
        )
        .col_expr(conversations::Column::LastActivityTime, now.into())
        .filter(conversations::Column::Id.eq(conversation))
        .exec(txn)
        .await?;
    let row: Option<(i64, i16)> = conversations::Entity::find_by_id(conversation)
        .select_only()
        .column(conversations::Column::LastSeq)
        .column(conversations::Column::Kind)
        .into_tuple()
        .one(txn)
        .await?;
    row.map(|(seq, kind)| (convert::seq_from_db(seq), convert::kind_from_db(kind)))
        .ok_or(Error::NotFound("conversation"))
}

/// Records `change` as the conversation's timeline event number `seq` (taken with
/// [`next_seq`] at the start of the write), in the members' feeds (plus `also`, such as a
/// member who just left).
async fn record_change<C: ConnectionTrait>(
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

/// Checks, inside a write that has locked the conversation, that `sender` may post there
/// now: a member (else `NOT_FOUND`, as for any non-member), and in a direct conversation
/// not blocked either way by the other member.
async fn authorize_post<C: ConnectionTrait>(
    txn: &C,
    kind: ConversationKind,
    sender: Uuid,
    members: &[Uuid],
) -> Result<()> {
    if !members.contains(&sender) {
        return Err(Error::NotFound("conversation"));
    }
    if kind == ConversationKind::Direct
        && let Some(peer) = members.iter().find(|m| **m != sender)
        && accounts::blocked_between(txn, sender, *peer).await?
    {
        return Err(Error::PermissionDenied {
            reason: Reason::Blocked,
            message: "you cannot message this user",
        });
    }
    Ok(())
}

/// `actor`'s role as it stands in this write; `NOT_FOUND` for non-members (see
/// [`rules::member`]).
async fn member_role<C: ConnectionTrait>(txn: &C, conversation: Uuid, actor: Uuid) -> Result<Role> {
    rules::member(role_in(txn, conversation, actor).await?)
}

/// `user`'s role in the conversation (`None`: not a member).
async fn role_in<C: ConnectionTrait>(
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

async fn owner_count<C: ConnectionTrait>(txn: &C, conversation: Uuid) -> Result<usize> {
    let owners = members::Entity::find()
        .filter(members::Column::ConversationId.eq(conversation))
        .filter(members::Column::Role.eq(Role::Owner.code()))
        .count(txn)
        .await?;
    Ok(usize::try_from(owners).unwrap_or(usize::MAX))
}

async fn member_ids<C: ConnectionTrait>(txn: &C, conversation: Uuid) -> Result<Vec<Uuid>> {
    Ok(members::Entity::find()
        .select_only()
        .column(members::Column::UserId)
        .filter(members::Column::ConversationId.eq(conversation))
        .into_tuple()
        .all(txn)
        .await?)
}

async fn change_member_count<C: ConnectionTrait>(
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

fn member(row: &members::Model) -> Member {
    Member {
        user_id: row.user_id,
        role: Role::from_code(row.role),
        join_time: row.join_time,
    }
}

fn conversation_event(
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

impl SqlStore {
    pub(super) async fn find_conversation<C: ConnectionTrait>(
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
    async fn existing_direct(&self, new: &NewConversation) -> Result<Option<Conversation>> {
        let Some(key) = &new.direct_key else {
            return Ok(None);
        };
        Ok(conversations::Entity::find()
            .filter(conversations::Column::DirectKey.eq(key.clone()))
            .one(&self.db)
            .await?
            .map(convert::conversation))
    }

    /// After a racing retry recorded `request` first (`conflict`): its message, when
    /// this is a retry of it.
    async fn replay_message(
        &self,
        request: &RequestKey,
        conflict: sea_orm::DbErr,
    ) -> Result<Committed<Message>> {
        let first = self
            .find_first_use(request)
            .await?
            .ok_or_else(|| Error::internal(conflict))?;
        first.check_retry_of(request)?;
        self.find_message(first.conversation_id, first.result_id)
            .await?
            .map(Committed::unchanged)
            .ok_or(Error::NotFound("message"))
    }

    /// Like [`Self::replay_message`], for conversations.
    async fn replay_conversation(
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

    async fn view(
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

#[async_trait]
impl ChatStore for SqlStore {
    async fn create_conversation(
        &self,
        new: NewConversation,
        now: Time,
    ) -> Result<Committed<Conversation>> {
        let _guard = self.write_guard().await;
        if let Some(existing) = self.existing_direct(&new).await? {
            return Ok(Committed::unchanged(existing));
        }
        let id = Uuid::now_v7();
        let txn = self.db.begin().await?;
        if let Some(request) = &new.request {
            match requests::record(&txn, request, id, id, now).await {
                Ok(()) => {}
                Err(err) if convert::is_unique_violation(&err) => {
                    drop(txn);
                    return self.replay_conversation(request, err).await;
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
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            // Another node created the same direct conversation first: return theirs.
            Err(err) if convert::is_unique_violation(&err) => {
                drop(txn);
                let existing = self.existing_direct(&new).await?;
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
        let conversation = self.find_conversation(&txn, id).await?;
        txn.commit().await?;
        Ok(Committed {
            value: conversation,
            published: Some(published),
        })
    }

    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>> {
        Ok(conversations::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(convert::conversation))
    }

    async fn membership(&self, conversation: Uuid, user: Uuid) -> Result<Option<Membership>> {
        Ok(members::Entity::find_by_id((conversation, user))
            .one(&self.db)
            .await?
            .map(|row| Membership {
                role: Role::from_code(row.role),
                read_seq: convert::seq_from_db(row.read_seq),
                join_time: row.join_time,
            }))
    }

    async fn conversation_views(
        &self,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<ConversationView>> {
        let memberships: HashMap<Uuid, members::Model> = members::Entity::find()
            .filter(members::Column::UserId.eq(user))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.conversation_id, row))
            .collect();
        let mut query = conversations::Entity::find()
            .filter(conversations::Column::Id.is_in(memberships.keys().copied()))
            .order_by_desc(conversations::Column::LastActivityTime)
            .order_by_desc(conversations::Column::Id)
            .limit(limit);
        if let Some((time, id)) = before {
            query = query.filter(
                Condition::any()
                    .add(conversations::Column::LastActivityTime.lt(time))
                    .add(
                        Condition::all()
                            .add(conversations::Column::LastActivityTime.eq(time))
                            .add(conversations::Column::Id.lt(id)),
                    ),
            );
        }
        // Each view takes a few small reads (several round trips to CQL when history lives
        // there): build the page's views concurrently, in the page's order.
        let rows = query.all(&self.db).await?;
        futures::future::try_join_all(rows.into_iter().filter_map(|row| {
            let membership = memberships.get(&row.id)?;
            Some(self.view(user, membership, convert::conversation(row)))
        }))
        .await
    }

    async fn conversation_view(&self, user: Uuid, id: Uuid) -> Result<Option<ConversationView>> {
        let Some(membership) = members::Entity::find_by_id((id, user))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let conversation = self.find_conversation(&self.db, id).await?;
        Ok(Some(self.view(user, &membership, conversation).await?))
    }

    async fn members(
        &self,
        conversation: Uuid,
        after: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Member>> {
        let mut query = members::Entity::find()
            .filter(members::Column::ConversationId.eq(conversation))
            .order_by_asc(members::Column::JoinTime)
            .order_by_asc(members::Column::UserId)
            .limit(limit);
        if let Some((time, id)) = after {
            query = query.filter(
                Condition::any()
                    .add(members::Column::JoinTime.gt(time))
                    .add(
                        Condition::all()
                            .add(members::Column::JoinTime.eq(time))
                            .add(members::Column::UserId.gt(id)),
                    ),
            );
        }
        Ok(query.all(&self.db).await?.iter().map(member).collect())
    }

    async fn update_details(
        &self,
        conversation: Uuid,
        actor: Uuid,
        changes: DetailsChanges,
        now: Time,
    ) -> Result<Committed<Conversation>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        // Every change below numbers itself first: that locks the conversation, so the
        // checks that follow see every removal or demotion committed before, and one
        // committing after waits for this write.
        let seq = next_seq(&txn, conversation, now).await?;
        let role = member_role(&txn, conversation, actor).await?;
        rules::authorize(actor, role, Act::EditDetails)?;
        let current = self.find_conversation(&txn, conversation).await?;
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
        let value = self.find_conversation(&txn, conversation).await?;
        txn.commit().await?;
        Ok(Committed {
            value,
            published: Some(published),
        })
    }

    async fn delete_conversation(
        &self,
        conversation: Uuid,
        actor: Uuid,
        now: Time,
    ) -> Result<Committed<()>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let seq = next_seq(&txn, conversation, now).await?;
        let role = member_role(&txn, conversation, actor).await?;
        rules::authorize(actor, role, Act::DeleteGroup)?;
        let published =
            record_change(&txn, conversation, seq, actor, now, None, Change::Deleted).await?;
        self.history.forget(&txn, conversation).await?;
        members::Entity::delete_many()
            .filter(members::Column::ConversationId.eq(conversation))
            .exec(&txn)
            .await?;
        conversations::Entity::delete_by_id(conversation)
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.history.committed(&published).await;
        Ok(Committed {
            value: (),
            published: Some(published),
        })
    }

    async fn add_members(
        &self,
        conversation: Uuid,
        actor: Uuid,
        users: &[Uuid],
        now: Time,
    ) -> Result<Committed<Vec<Member>>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let seq = next_seq(&txn, conversation, now).await?;
        let role = member_role(&txn, conversation, actor).await?;
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
        let change = Change::MembersAdded(added.clone());
        let published = record_change(&txn, conversation, seq, actor, now, None, change).await?;
        txn.commit().await?;
        Ok(Committed {
            value: added,
            published: Some(published),
        })
    }

    async fn remove_member(
        &self,
        conversation: Uuid,
        actor: Uuid,
        user: Uuid,
        now: Time,
    ) -> Result<Committed<()>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let seq = next_seq(&txn, conversation, now).await?;
        let role = member_role(&txn, conversation, actor).await?;
        let act = if actor == user {
            let members = member_ids(&txn, conversation).await?.len();
            let owners = owner_count(&txn, conversation).await?;
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
        let published =
            record_change(&txn, conversation, seq, actor, now, Some(user), change).await?;
        txn.commit().await?;
        Ok(Committed {
            value: (),
            published: Some(published),
        })
    }

    async fn set_role(
        &self,
        conversation: Uuid,
        actor: Uuid,
        user: Uuid,
        new_role: Role,
        now: Time,
    ) -> Result<Committed<Member>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let seq = next_seq(&txn, conversation, now).await?;
        let role = member_role(&txn, conversation, actor).await?;
        let row = members::Entity::find_by_id((conversation, user))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("member"))?;
        let target = Role::from_code(row.role);
        let owners = owner_count(&txn, conversation).await?;
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

    async fn mark_read(
        &self,
        conversation: Uuid,
        user: Uuid,
        seq: u64,
        now: Time,
    ) -> Result<Committed<u64>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let last_seq = self.find_conversation(&txn, conversation).await?.last_seq;
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

    async fn first_use(&self, request: &RequestKey) -> Result<Option<FirstUse>> {
        self.find_first_use(request).await
    }

    async fn send_message(&self, new: NewMessage, now: Time) -> Result<Committed<Message>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        // Numbering locks the conversation: a removal or block committed before this point
        // is seen below, one after it waits for this send.
        let (seq, kind) = next_seq_and_kind(&txn, new.conversation_id, now).await?;
        let message = Message {
            id: Uuid::now_v7(),
            conversation_id: new.conversation_id,
            seq,
            sender_id: new.sender_id,
            content: Some(new.content.clone()),
            metadata: new.metadata.clone(),
            reply_to: new.reply_to,
            create_time: now,
            edit_time: None,
            delete_time: None,
            forwarded_from: new.forwarded_from,
        };
        // The request id first: a retry of a committed send gets its message back even
        // if the sender may no longer post.
        match requests::record(&txn, &new.request, new.conversation_id, message.id, now).await {
            Ok(()) => {}
            Err(err) if convert::is_unique_violation(&err) => {
                drop(txn);
                return self.replay_message(&new.request, err).await;
            }
            Err(err) => return Err(err.into()),
        }
        let recipients = member_ids(&txn, new.conversation_id).await?;
        authorize_post(&txn, kind, new.sender_id, &recipients).await?;
        self.history.insert(&txn, &message, &new.request.id).await?;
        let change = Change::MessageSent(message.clone());
        let event = conversation_event(new.conversation_id, seq, new.sender_id, now, change);
        let published = append_event(&txn, event, &recipients, now).await?;
        txn.commit().await?;
        self.history.committed(&published).await;
        Ok(Committed {
            value: message,
            published: Some(published),
        })
    }

    async fn message(&self, conversation: Uuid, id: Uuid) -> Result<Option<Message>> {
        self.find_message(conversation, id).await
    }

    async fn messages(
        &self,
        conversation: Uuid,
        direction: Direction,
        anchor_seq: u64,
        limit: u64,
    ) -> Result<Vec<Message>> {
        let last_seq = self.committed_seq(conversation).await?;
        self.history
            .messages(conversation, direction, anchor_seq, limit, last_seq)
            .await
    }

    async fn edit_message(
        &self,
        conversation: Uuid,
        id: Uuid,
        actor: Uuid,
        content: Content,
        now: Time,
    ) -> Result<Committed<Message>> {
        self.rewrite_message(conversation, id, actor, Some(content), now)
            .await
    }

    async fn delete_message(
        &self,
        conversation: Uuid,
        id: Uuid,
        actor: Uuid,
        now: Time,
    ) -> Result<Committed<Message>> {
        self.rewrite_message(conversation, id, actor, None, now)
            .await
    }

    async fn feed(&self, user: Uuid, after: u64, limit: u64) -> Result<Vec<FeedItem>> {
        let rows = feed::Entity::find()
            .filter(feed::Column::UserId.eq(user))
            .filter(feed::Column::FeedSeq.gt(convert::seq_to_db(after)))
            .order_by_asc(feed::Column::FeedSeq)
            .limit(limit)
            .all(&self.db)
            .await?;
        let payloads: HashMap<i64, (String, Option<Vec<u8>>)> = events::Entity::find()
            .filter(events::Column::Id.is_in(rows.iter().map(|r| r.event_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.id, (row.payload, row.body)))
            .collect();
        rows.into_iter()
            .map(|row| {
                let (payload, body) = payloads
                    .get(&row.event_id)
                    .ok_or_else(|| Error::internal("feed row without its event"))?;
                let event = super::stored_event(payload, body.as_deref())?;
                Ok(FeedItem {
                    feed_seq: convert::seq_from_db(row.feed_seq),
                    event: std::sync::Arc::new(event),
                })
            })
            .collect()
    }

    async fn feed_head(&self, user: Uuid) -> Result<u64> {
        let head: Option<i64> = users::Entity::find_by_id(user)
            .select_only()
            .column(users::Column::FeedSeq)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(head.map(convert::seq_from_db).unwrap_or(0))
    }
}

impl SqlStore {
    /// Edit (`Some(content)`) or delete (`None`) a message, as a new timeline event.
    async fn rewrite_message(
        &self,
        conversation: Uuid,
        id: Uuid,
        actor: Uuid,
        content: Option<Content>,
        now: Time,
    ) -> Result<Committed<Message>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        // Number the change first: that locks the conversation, so concurrent edits of one
        // message queue here and each sees the state the previous one left.
        let seq = next_seq(&txn, conversation, now).await?;
        // Membership before the message: an outsider learns nothing about its messages.
        let role = member_role(&txn, conversation, actor).await?;
        let current = self
            .history
            .message_in(&txn, conversation, id, seq - 1)
            .await?
            .ok_or(Error::NotFound("message"))?;
        let author = current.sender_id;
        let act = match content {
            Some(_) => Act::EditMessage { author },
            None => Act::DeleteMessage { author },
        };
        rules::authorize(actor, role, act)?;
        if current.delete_time.is_some() {
            if content.is_none() {
                // Deleting twice is a no-op that returns the tombstone.
                return Ok(Committed::unchanged(current));
            }
            return Err(Error::FailedPrecondition {
                reason: Reason::MessageDeleted,
                message: "the message was deleted",
            });
        }
        let deleting = content.is_none();
        let message = history::rewritten(current, content, now);
        self.history.update(&txn, &message).await?;
        let change = if deleting {
            Change::MessageDeleted(message.clone())
        } else {
            Change::MessageEdited(message.clone())
        };
        let published = record_change(&txn, conversation, seq, actor, now, None, change).await?;
        txn.commit().await?;
        self.history.committed(&published).await;
        Ok(Committed {
            value: message,
            published: Some(published),
        })
    }
}
