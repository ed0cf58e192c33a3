//! Polls on SQL. A vote locks its conversation (ordering it against membership changes,
//! which lock it too) and then its poll (queueing concurrent votes on the poll), checks
//! membership and the poll's rules, and moves the option counters in the same write: the
//! counters always equal a recount of the votes.

use std::collections::HashMap;

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    ExprTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::Expr,
};
use uuid::Uuid;

use super::{
    SqlStore,
    entities::{conversations, members, poll_options, poll_votes, polls},
    paging::{self, Order},
};
use crate::{
    domain::{
        Time,
        poll::{PollOption, PollRecord, PollSettings, PollState, ResultsVisibility, Tally, Vote},
    },
    error::{Error, Result},
    polls::rules,
    store::{NewPoll, PollStore},
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
    };
    PollRecord {
        id: row.id,
        conversation_id: row.conversation_id,
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
    if txn.get_database_backend() == DbBackend::Postgres {
        conversations::Entity::find_by_id(conversation)
            .select_only()
            .column(conversations::Column::Id)
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .one(txn)
            .await?;
    }
    members::Entity::find_by_id((conversation, user))
        .one(txn)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound("poll"))
}

/// Starts `user`'s write on `poll`: its conversation locked with `user` checked as a
/// member (so an outsider learns nothing of the poll), then the poll locked and read.
async fn lock_poll<C: ConnectionTrait>(txn: &C, poll: Uuid, user: Uuid) -> Result<PollRecord> {
    let conversation: Uuid = polls::Entity::find_by_id(poll)
        .select_only()
        .column(polls::Column::ConversationId)
        .into_tuple()
        .one(txn)
        .await?
        .ok_or(Error::NotFound("poll"))?;
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

async fn count_voters<C: ConnectionTrait>(txn: &C, poll: Uuid, delta: i32) -> Result<()> {
    polls::Entity::update_many()
        .col_expr(
            polls::Column::TotalVoters,
            Expr::col(polls::Column::TotalVoters).add(delta),
        )
        .filter(polls::Column::Id.eq(poll))
        .exec(txn)
        .await?;
    Ok(())
}

#[async_trait]
impl PollStore for SqlStore {
    async fn create_poll(&self, new: NewPoll, now: Time) -> Result<PollRecord> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        lock_as_member(&txn, new.conversation_id, new.creator).await?;
        let id = Uuid::now_v7();
        let settings = &new.settings;
        polls::ActiveModel {
            id: Set(id),
            conversation_id: Set(new.conversation_id),
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
            close_time: Set(settings.close_time),
            state: Set(state_code(PollState::Open)),
            create_time: Set(now),
            closed_time: Set(None),
            total_voters: Set(0),
        }
        .insert(&txn)
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
        .exec(&txn)
        .await?;
        let created = load(&txn, id, false)
            .await?
            .ok_or_else(|| Error::internal("a poll vanished in its own write"))?;
        txn.commit().await?;
        Ok(created)
    }

    async fn poll(&self, id: Uuid) -> Result<Option<PollRecord>> {
        load(&self.db, id, false).await
    }

    async fn vote(&self, poll: Uuid, user: Uuid) -> Result<Option<Vote>> {
        poll_votes::Entity::find_by_id((poll, user))
            .one(&self.db)
            .await?
            .map(vote)
            .transpose()
    }

    async fn cast_vote(
        &self,
        poll: Uuid,
        user: Uuid,
        picks: &[String],
        now: Time,
    ) -> Result<PollRecord> {
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
        // Anonymous polls keep that the member voted, never what they picked.
        let stored = if current.settings.anonymous {
            String::new()
        } else {
            picks_to_db(&chosen)
        };
        match earlier {
            Some(row) => {
                let mut active = row.into_active_model();
                active.option_ids = Set(stored);
                active.vote_time = Set(now);
                active.update(&txn).await?;
            }
            None => {
                poll_votes::ActiveModel {
                    poll_id: Set(poll),
                    user_id: Set(user),
                    option_ids: Set(stored),
                    vote_time: Set(now),
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

    async fn add_option(&self, poll: Uuid, user: Uuid, text: &str) -> Result<PollRecord> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let current = lock_poll(&txn, poll, user).await?;
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
        let after = load(&txn, poll, false)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        txn.commit().await?;
        Ok(after)
    }

    async fn close_due(&self, now: Time, limit: u64) -> Result<Vec<PollRecord>> {
        let due: Vec<Uuid> = polls::Entity::find()
            .select_only()
            .column(polls::Column::Id)
            .filter(polls::Column::State.eq(state_code(PollState::Open)))
            .filter(polls::Column::CloseTime.lte(now))
            .order_by_asc(polls::Column::CloseTime)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut closed = Vec::new();
        for id in due {
            let _guard = self.write_guard().await;
            let txn = self.db.begin().await?;
            // Only an open poll flips: of several nodes racing here, one sees a row changed.
            let flipped = polls::Entity::update_many()
                .col_expr(polls::Column::State, state_code(PollState::Closed).into())
                .col_expr(polls::Column::ClosedTime, Some(now).into())
                .filter(polls::Column::Id.eq(id))
                .filter(polls::Column::State.eq(state_code(PollState::Open)))
                .exec(&txn)
                .await?
                .rows_affected;
            if flipped == 1 {
                let poll = load(&txn, id, false)
                    .await?
                    .ok_or(Error::NotFound("poll"))?;
                txn.commit().await?;
                closed.push(poll);
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
        // The page's options in one query, not one per poll.
        let mut options: HashMap<Uuid, Vec<poll_options::Model>> = HashMap::new();
        for option in poll_options::Entity::find()
            .filter(poll_options::Column::PollId.is_in(rows.iter().map(|row| row.id)))
            .order_by_asc(poll_options::Column::Position)
            .all(&self.db)
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
}
