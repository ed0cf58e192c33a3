//! Polls on SQL. A vote locks its conversation (ordering it against membership changes,
//! which lock it too) and then its poll (queueing concurrent votes on the poll), checks
//! membership and the poll's rules, and moves the option counters in the same write: the
//! counters always equal a recount of the votes.
//!
//! Timeline changes (creating, adding an option, closing) number themselves in the
//! conversation like any change (`chat::timeline`), which takes the same lock first.

use std::collections::HashMap;

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::{
    SqlStore,
    chat::{
        messages,
        timeline::{Locked, lock_conversation, next_seq, record_change},
    },
    convert::db_time,
    entities::{members, poll_options, poll_votes, polls},
    paging::{self, Order},
};
use crate::{
    domain::{
        Change, Content, PollRef, Published, Time,
        poll::{PollOption, PollRecord, PollSettings, PollState, ResultsVisibility, Tally, Vote},
        rules::{self as conversation_rules, Act},
    },
    error::{Error, Result},
    polls::rules,
    store::{Committed, NewMessage, NewPoll, PollStore, RequestKey},
    validate::Violations,
};

fn state_code(state: PollState) -> i16 {
    match state {
        PollState::Open => 1,
        PollState::Closed => 2,
        PollState::Deleted => 3,
    }
}

fn state_from(code: i16) -> PollState {
    match code {
        2 => PollState::Closed,
        3 => PollState::Deleted,
        _ => PollState::Open,
    }
}

fn visibility_code(visibility: ResultsVisibility) -> i16 {
    match visibility {
        ResultsVisibility::Always => 1,
        ResultsVisibility::AfterVoting => 2,
        ResultsVisibility::AfterClose => 3,
    }
}

fn visibility_from(code: i16) -> ResultsVisibility {
    match code {
        2 => ResultsVisibility::AfterVoting,
        3 => ResultsVisibility::AfterClose,
        _ => ResultsVisibility::Always,
    }
}

fn picks_to_db(picks: &[Uuid]) -> String {
    picks
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn picks_from_db(stored: &str) -> Result<Vec<Uuid>> {
    stored
        .split_whitespace()
        .map(|id| Uuid::parse_str(id).map_err(Error::internal))
        .collect()
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn record(row: polls::Model, options: Vec<poll_options::Model>) -> PollRecord {
    let tally = Tally {
        counts: options
            .iter()
            .map(|o| (o.option_id, count(o.votes)))
            .collect(),
        total_voters: count(row.total_voters),
        version: u64::try_from(row.tally_version).unwrap_or(0),
    };
    PollRecord {
        id: row.id,
        conversation_id: row.conversation_id,
        message_id: row.message_id,
        creator: row.creator_id,
        question: row.question,
        options: options
            .into_iter()
            .map(|o| PollOption {
                id: o.option_id,
                text: o.text,
                added_by: o.added_by,
            })
            .collect(),
        settings: PollSettings {
            multiple_choice: row.multiple_choice,
            max_selections: row.max_selections.and_then(|m| u32::try_from(m).ok()),
            allow_vote_changes: row.allow_vote_changes,
            anonymous: row.anonymous,
            results_visibility: visibility_from(row.results_visibility),
            members_can_add_options: row.members_can_add_options,
            close_time: row.close_time,
        },
        state: state_from(row.state),
        create_time: row.create_time,
        closed_time: row.closed_time,
        tally,
    }
}

async fn load<C: ConnectionTrait>(db: &C, id: Uuid, lock: bool) -> Result<Option<PollRecord>> {
    let mut query = polls::Entity::find_by_id(id);
    if lock && db.get_database_backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    let Some(row) = query.one(db).await? else {
        return Ok(None);
    };
    let options = poll_options::Entity::find()
        .filter(poll_options::Column::PollId.eq(id))
        .order_by_asc(poll_options::Column::Position)
        .all(db)
        .await?;
    Ok(Some(record(row, options)))
}

/// Locks `conversation` (PostgreSQL; SQLite writes one at a time anyway) and checks that
/// `user` is a member: `NOT_FOUND` for anyone else, as for the poll itself.
async fn lock_as_member<C: ConnectionTrait>(txn: &C, conversation: Uuid, user: Uuid) -> Result<()> {
    lock_conversation(txn, conversation).await?;
    members::Entity::find_by_id((conversation, user))
        .one(txn)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound("poll"))
}

/// Starts `user`'s write on `poll`: its conversation locked with `user` checked as a
/// member (so an outsider learns nothing of the poll), then the poll locked and read.
async fn lock_poll<C: ConnectionTrait>(txn: &C, poll: Uuid, user: Uuid) -> Result<PollRecord> {
    let conversation = conversation_of(txn, poll).await?;
    lock_as_member(txn, conversation, user).await?;
    load(txn, poll, true).await?.ok_or(Error::NotFound("poll"))
}

fn vote(row: poll_votes::Model) -> Result<Vote> {
    Ok(Vote {
        user: row.user_id,
        picks: picks_from_db(&row.option_ids)?,
        time: row.vote_time,
    })
}

/// Moves the counters of `picks` by `delta`.
async fn count_picks<C: ConnectionTrait>(
    txn: &C,
    poll: Uuid,
    picks: &[Uuid],
    delta: i32,
) -> Result<()> {
    if picks.is_empty() {
        return Ok(());
    }
    poll_options::Entity::update_many()
        .col_expr(
            poll_options::Column::Votes,
            Expr::col(poll_options::Column::Votes).add(delta),
        )
        .filter(poll_options::Column::PollId.eq(poll))
        .filter(poll_options::Column::OptionId.is_in(picks.iter().copied()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Moves the voter count by `delta` (0 for a changed vote) and counts a tally change.
async fn count_voters<C: ConnectionTrait>(txn: &C, poll: Uuid, delta: i32) -> Result<()> {
    polls::Entity::update_many()
        .col_expr(
            polls::Column::TotalVoters,
            Expr::col(polls::Column::TotalVoters).add(delta),
        )
        .col_expr(
            polls::Column::TallyVersion,
            Expr::col(polls::Column::TallyVersion).add(1),
        )
        .filter(polls::Column::Id.eq(poll))
        .exec(txn)
        .await?;
    Ok(())
}

/// Creates poll `id`, carried by message `message_id`, inside the message's send.
pub(super) async fn insert<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
    message_id: Uuid,
    new: &NewPoll,
    now: Time,
) -> Result<()> {
    let settings = &new.settings;
    polls::ActiveModel {
        id: Set(id),
        conversation_id: Set(new.conversation_id),
        message_id: Set(message_id),
        creator_id: Set(new.creator),
        question: Set(new.question.clone()),
        multiple_choice: Set(settings.multiple_choice),
        max_selections: Set(settings
            .max_selections
            .map(|m| i32::try_from(m).unwrap_or(i32::MAX))),
        allow_vote_changes: Set(settings.allow_vote_changes),
        anonymous: Set(settings.anonymous),
        results_visibility: Set(visibility_code(settings.results_visibility)),
        members_can_add_options: Set(settings.members_can_add_options),
        close_time: Set(settings.close_time.map(db_time)),
        state: Set(state_code(PollState::Open)),
        create_time: Set(now),
        closed_time: Set(None),
        total_voters: Set(0),
        tally_version: Set(0),
    }
    .insert(txn)
    .await?;
    poll_options::Entity::insert_many(new.options.iter().enumerate().map(|(i, text)| {
        poll_options::ActiveModel {
            poll_id: Set(id),
            option_id: Set(Uuid::now_v7()),
            position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
            text: Set(text.clone()),
            key: Set(rules::option_key(text)),
            added_by: Set(new.creator),
            votes: Set(0),
        }
    }))
    .exec(txn)
    .await?;
    Ok(())
}

/// Deletes poll `id` with its message (inside that message's delete): only its id and
/// conversation remain.
pub(super) async fn mark_deleted<C: ConnectionTrait>(txn: &C, id: Uuid) -> Result<()> {
    poll_votes::Entity::delete_many()
        .filter(poll_votes::Column::PollId.eq(id))
        .exec(txn)
        .await?;
    poll_options::Entity::delete_many()
        .filter(poll_options::Column::PollId.eq(id))
        .exec(txn)
        .await?;
    polls::Entity::update_many()
        .col_expr(polls::Column::State, state_code(PollState::Deleted).into())
        .col_expr(polls::Column::Question, String::new().into())
        .col_expr(polls::Column::TotalVoters, 0.into())
        .filter(polls::Column::Id.eq(id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Forgets every poll of a conversation being deleted.
pub(super) async fn forget<C: ConnectionTrait>(txn: &C, conversation: Uuid) -> Result<()> {
    let ids: Vec<Uuid> = polls::Entity::find()
        .select_only()
        .column(polls::Column::Id)
        .filter(polls::Column::ConversationId.eq(conversation))
        .into_tuple()
        .all(txn)
        .await?;
    if ids.is_empty() {
        return Ok(());
    }
    poll_votes::Entity::delete_many()
        .filter(poll_votes::Column::PollId.is_in(ids.iter().copied()))
        .exec(txn)
        .await?;
    poll_options::Entity::delete_many()
        .filter(poll_options::Column::PollId.is_in(ids.iter().copied()))
        .exec(txn)
        .await?;
    polls::Entity::delete_many()
        .filter(polls::Column::ConversationId.eq(conversation))
        .exec(txn)
        .await?;
    Ok(())
}

/// Flips `poll` (locked in `txn`, with the conversation's change `seq` taken) from open
/// to closed and records its `PollClosed` event; `None` when it was not open.
async fn close_locked(
    txn: &DatabaseTransaction,
    poll: Uuid,
    seq: u64,
    actor: Uuid,
    now: Time,
) -> Result<Option<(PollRecord, Published)>> {
    // Only an open poll flips: of several nodes racing here, one sees a row changed.
    let flipped = polls::Entity::update_many()
        .col_expr(polls::Column::State, state_code(PollState::Closed).into())
        .col_expr(polls::Column::ClosedTime, Some(now).into())
        .filter(polls::Column::Id.eq(poll))
        .filter(polls::Column::State.eq(state_code(PollState::Open)))
        .exec(txn)
        .await?
        .rows_affected;
    if flipped != 1 {
        return Ok(None);
    }
    let closed = load(txn, poll, false)
        .await?
        .ok_or(Error::NotFound("poll"))?;
    let change = Change::PollClosed {
        poll_id: closed.id,
        message_id: closed.message_id,
        tally: closed.tally.clone(),
    };
    let published =
        record_change(txn, closed.conversation_id, seq, actor, now, None, change).await?;
    Ok(Some((closed, published)))
}

/// The conversation a poll is in (read before the write locks the conversation).
async fn conversation_of<C: ConnectionTrait>(db: &C, poll: Uuid) -> Result<Uuid> {
    polls::Entity::find_by_id(poll)
        .select_only()
        .column(polls::Column::ConversationId)
        .into_tuple()
        .one(db)
        .await?
        .ok_or(Error::NotFound("poll"))
}

#[async_trait]
impl PollStore for SqlStore {
    async fn create_poll(
        &self,
        new: NewPoll,
        request: RequestKey,
        now: Time,
    ) -> Result<Committed<PollRecord>> {
        let now = db_time(now);
        let content = Content::Poll(PollRef {
            poll_id: Uuid::now_v7(),
            question: new.question.clone(),
        });
        let message = NewMessage::carrying(new.conversation_id, new.creator, content, request);
        // A retry gets the first poll's message back, and so the first poll.
        let Committed { value, published } =
            messages::send(self, message, messages::Carried::Poll(new), now).await?;
        let Some(Content::Poll(carried)) = value.content else {
            return Err(Error::NotFound("poll"));
        };
        let poll = load(&self.db, carried.poll_id, false)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        Ok(Committed {
            value: poll,
            published,
        })
    }

    async fn poll(&self, id: Uuid) -> Result<Option<PollRecord>> {
        load(&self.db, id, false).await
    }

    async fn polls_by_id(&self, ids: &[Uuid]) -> Result<Vec<PollRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = polls::Entity::find()
            .filter(polls::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?;
        with_options(&self.db, rows).await
    }

    async fn vote(&self, poll: Uuid, user: Uuid) -> Result<Option<Vote>> {
        poll_votes::Entity::find_by_id((poll, user))
            .one(&self.db)
            .await?
            .map(vote)
            .transpose()
    }

    async fn votes_of(&self, user: Uuid, polls: &[Uuid]) -> Result<Vec<(Uuid, Vote)>> {
        if polls.is_empty() {
            return Ok(Vec::new());
        }
        poll_votes::Entity::find()
            .filter(poll_votes::Column::UserId.eq(user))
            .filter(poll_votes::Column::PollId.is_in(polls.iter().copied()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| Ok((row.poll_id, vote(row)?)))
            .collect()
    }

    async fn cast_vote(
        &self,
        poll: Uuid,
        user: Uuid,
        picks: &[String],
        now: Time,
    ) -> Result<PollRecord> {
        let now = db_time(now);
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let current = lock_poll(&txn, poll, user).await?;
        let earlier = poll_votes::Entity::find_by_id((poll, user))
            .one(&txn)
            .await?;
        rules::may_change_vote(current.state, &current.settings, earlier.is_some())?;
        let mut v = Violations::new();
        let chosen = rules::check_selection(&mut v, picks, &current.options, &current.settings);
        v.finish()?;
        let previous = match &earlier {
            Some(row) => picks_from_db(&row.option_ids)?,
            None => Vec::new(),
        };
        if earlier.is_some() && previous == chosen {
            return Ok(current); // The same vote again: nothing changes.
        }
        count_picks(&txn, poll, &previous, -1).await?;
        count_picks(&txn, poll, &chosen, 1).await?;
        // Anonymous polls keep that the member voted, never what they picked, nor when
        // (a vote time could be matched with the tally's changes).
        let (stored, when) = if current.settings.anonymous {
            (String::new(), current.create_time)
        } else {
            (picks_to_db(&chosen), now)
        };
        match earlier {
            Some(row) => {
                let mut active = row.into_active_model();
                active.option_ids = Set(stored);
                active.vote_time = Set(when);
                active.update(&txn).await?;
                count_voters(&txn, poll, 0).await?;
            }
            None => {
                poll_votes::ActiveModel {
                    poll_id: Set(poll),
                    user_id: Set(user),
                    option_ids: Set(stored),
                    vote_time: Set(when),
                }
                .insert(&txn)
                .await?;
                count_voters(&txn, poll, 1).await?;
            }
        }
        let after = load(&txn, poll, false)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        txn.commit().await?;
        Ok(after)
    }

    async fn retract_vote(&self, poll: Uuid, user: Uuid) -> Result<PollRecord> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let current = lock_poll(&txn, poll, user).await?;
        let Some(earlier) = poll_votes::Entity::find_by_id((poll, user))
            .one(&txn)
            .await?
        else {
            return Ok(current);
        };
        rules::may_change_vote(current.state, &current.settings, true)?;
        count_picks(&txn, poll, &picks_from_db(&earlier.option_ids)?, -1).await?;
        count_voters(&txn, poll, -1).await?;
        poll_votes::Entity::delete_by_id((poll, user))
            .exec(&txn)
            .await?;
        let after = load(&txn, poll, false)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        txn.commit().await?;
        Ok(after)
    }

    async fn add_option(
        &self,
        poll: Uuid,
        user: Uuid,
        text: &str,
        now: Time,
    ) -> Result<Committed<PollRecord>> {
        let now = db_time(now);
        let conversation = conversation_of(&self.db, poll).await?;
        let Locked {
            _writer, txn, seq, ..
        } = self.begin_change(conversation, user, now).await?;
        let current = load(&txn, poll, true)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        rules::may_add_option(&current, user)?;
        let mut v = Violations::new();
        let text = rules::check_new_option(&mut v, text, &current.options);
        v.finish()?;
        poll_options::ActiveModel {
            poll_id: Set(poll),
            option_id: Set(Uuid::now_v7()),
            position: Set(i32::try_from(current.options.len()).unwrap_or(i32::MAX)),
            key: Set(rules::option_key(&text)),
            text: Set(text),
            added_by: Set(user),
            votes: Set(0),
        }
        .insert(&txn)
        .await?;
        count_voters(&txn, poll, 0).await?;
        // The poll's message is edited: streams and history readers see the new option.
        let mut message = self
            .history
            .message_in(&txn, conversation, current.message_id, seq - 1)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        message.edit_time = Some(now);
        self.history.update(&txn, &message).await?;
        let change = Change::MessageEdited(message);
        let published = record_change(&txn, conversation, seq, user, now, None, change).await?;
        let after = load(&txn, poll, false)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        txn.commit().await?;
        self.history.committed(&published).await;
        Ok(Committed {
            value: after,
            published: Some(published),
        })
    }

    async fn close_poll(
        &self,
        poll: Uuid,
        actor: Uuid,
        now: Time,
    ) -> Result<Committed<PollRecord>> {
        let now = db_time(now);
        let conversation = conversation_of(&self.db, poll).await?;
        let Locked {
            _writer,
            txn,
            seq,
            role,
        } = self.begin_change(conversation, actor, now).await?;
        let current = load(&txn, poll, true)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        conversation_rules::authorize(
            actor,
            role,
            Act::ClosePoll {
                creator: current.creator,
            },
        )?;
        match current.state {
            PollState::Deleted => return Err(Error::NotFound("poll")),
            // Closing twice changes nothing (and takes no `seq`: the write rolls back).
            PollState::Closed => return Ok(Committed::unchanged(current)),
            PollState::Open => {}
        }
        let (closed, published) = close_locked(&txn, poll, seq, actor, now)
            .await?
            .ok_or_else(|| Error::internal("a locked open poll did not close"))?;
        txn.commit().await?;
        Ok(Committed {
            value: closed,
            published: Some(published),
        })
    }

    async fn close_due(&self, now: Time, limit: u64) -> Result<Vec<Committed<PollRecord>>> {
        let now = db_time(now);
        let due: Vec<(Uuid, Uuid, Uuid)> = polls::Entity::find()
            .select_only()
            .column(polls::Column::Id)
            .column(polls::Column::ConversationId)
            .column(polls::Column::CreatorId)
            .filter(polls::Column::State.eq(state_code(PollState::Open)))
            .filter(polls::Column::CloseTime.lte(now))
            .order_by_asc(polls::Column::CloseTime)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut closed = Vec::new();
        for (id, conversation, creator) in due {
            let _guard = self.write_guard().await;
            let txn = self.db.begin().await?;
            // Numbering first locks the conversation, as every timeline change does; a
            // poll another node closed meanwhile rolls this back, `seq` untaken.
            let seq = match next_seq(&txn, conversation, now).await {
                Ok(seq) => seq,
                // Its conversation is gone: nothing to close it in.
                Err(Error::NotFound(_)) => {
                    mark_deleted(&txn, id).await?;
                    txn.commit().await?;
                    continue;
                }
                Err(err) => return Err(err),
            };
            // The close is the poll's: its creator is the actor, even after leaving.
            if let Some((poll, published)) = close_locked(&txn, id, seq, creator, now).await? {
                txn.commit().await?;
                closed.push(Committed {
                    value: poll,
                    published: Some(published),
                });
            }
        }
        Ok(closed)
    }

    async fn polls(
        &self,
        conversation: Uuid,
        open: Option<bool>,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<PollRecord>> {
        let mut query = polls::Entity::find()
            .filter(polls::Column::ConversationId.eq(conversation))
            .filter(polls::Column::State.ne(state_code(PollState::Deleted)));
        if let Some(open) = open {
            let state = if open {
                PollState::Open
            } else {
                PollState::Closed
            };
            query = query.filter(polls::Column::State.eq(state_code(state)));
        }
        let rows = paging::page(
            query,
            (polls::Column::CreateTime, polls::Column::Id),
            Order::NewestFirst,
            before,
            limit,
        )
        .all(&self.db)
        .await?;
        with_options(&self.db, rows).await
    }

    async fn votes(&self, poll: Uuid) -> Result<Vec<Vote>> {
        poll_votes::Entity::find()
            .filter(poll_votes::Column::PollId.eq(poll))
            .order_by_asc(poll_votes::Column::VoteTime)
            .all(&self.db)
            .await?
            .into_iter()
            .map(vote)
            .collect()
    }

    async fn voters(
        &self,
        poll: Uuid,
        option: Option<Uuid>,
        after: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Vote>> {
        let mut query = poll_votes::Entity::find().filter(poll_votes::Column::PollId.eq(poll));
        if let Some(option) = option {
            query = query.filter(poll_votes::Column::OptionIds.contains(option.to_string()));
        }
        paging::page(
            query,
            (poll_votes::Column::VoteTime, poll_votes::Column::UserId),
            Order::OldestFirst,
            after,
            limit,
        )
        .all(&self.db)
        .await?
        .into_iter()
        .map(vote)
        .collect()
    }

    async fn voter_ids(&self, poll: Uuid) -> Result<Vec<Uuid>> {
        Ok(poll_votes::Entity::find()
            .select_only()
            .column(poll_votes::Column::UserId)
            .filter(poll_votes::Column::PollId.eq(poll))
            .into_tuple()
            .all(&self.db)
            .await?)
    }
}

/// `rows` with their options, read in one query (not one per poll).
async fn with_options<C: ConnectionTrait>(
    db: &C,
    rows: Vec<polls::Model>,
) -> Result<Vec<PollRecord>> {
    let mut options: HashMap<Uuid, Vec<poll_options::Model>> = HashMap::new();
    for option in poll_options::Entity::find()
        .filter(poll_options::Column::PollId.is_in(rows.iter().map(|row| row.id)))
        .order_by_asc(poll_options::Column::Position)
        .all(db)
        .await?
    {
        options.entry(option.poll_id).or_default().push(option);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = options.remove(&row.id).unwrap_or_default();
            record(row, own)
        })
        .collect())
}
