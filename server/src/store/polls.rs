//! The poll store contract.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    domain::{
        Time,
        poll::{PollRecord, PollSettings, Vote},
    },
    error::Result,
    store::{Committed, RequestKey},
};

/// A poll to create (already checked with `polls::rules::check_new_poll`).
#[derive(Debug, Clone)]
pub struct NewPoll {
    pub conversation_id: Uuid,
    pub creator: Uuid,
    pub question: String,
    pub options: Vec<String>,
    pub settings: PollSettings,
}

/// Polls, their options and votes. Every write checks, inside itself, that the caller is
/// a member of the poll's conversation (`NOT_FOUND` otherwise) and what the poll's rules
/// allow (`polls::rules`), with the poll locked: concurrent votes on one poll queue, so
/// its counters always equal a recount of its votes.
///
/// A poll lives in its conversation's timeline: creating it posts its message, adding an
/// option edits that message, closing it is a `PollClosed` event, and deleting it is
/// deleting the message (`ChatStore::delete_message`). Votes are not timeline events.
#[async_trait]
pub trait PollStore: Send + Sync {
    /// Creates the poll and posts its message, in one write (`request` as for a send: a
    /// retry gets the first poll back).
    async fn create_poll(
        &self,
        new: NewPoll,
        request: RequestKey,
        now: Time,
    ) -> Result<Committed<PollRecord>>;
    /// The poll, unless it does not exist (deleted ones included, with their state).
    async fn poll(&self, id: Uuid) -> Result<Option<PollRecord>>;
    /// Those of `ids` that exist, in no particular order.
    async fn polls_by_id(&self, ids: &[Uuid]) -> Result<Vec<PollRecord>>;
    /// `user`'s vote on the poll, if any.
    async fn vote(&self, poll: Uuid, user: Uuid) -> Result<Option<Vote>>;
    /// `user`'s votes on those of `polls` they voted on, as (poll, vote).
    async fn votes_of(&self, user: Uuid, polls: &[Uuid]) -> Result<Vec<(Uuid, Vote)>>;
    /// Sets `user`'s picks (option ids as sent), replacing any earlier vote at once.
    async fn cast_vote(
        &self,
        poll: Uuid,
        user: Uuid,
        picks: &[String],
        now: Time,
    ) -> Result<PollRecord>;
    /// Withdraws `user`'s vote; nothing happens when there is none.
    async fn retract_vote(&self, poll: Uuid, user: Uuid) -> Result<PollRecord>;
    /// Every vote of the poll, earliest first (picks empty for anonymous polls).
    async fn votes(&self, poll: Uuid) -> Result<Vec<Vote>>;
    /// A page of a public poll's votes, earliest first, strictly after `after` (a vote's
    /// time and user), only those that picked `option` when given.
    async fn voters(
        &self,
        poll: Uuid,
        option: Option<Uuid>,
        after: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Vote>>;
    /// Who voted on the poll (whatever they picked): the members who may see an
    /// after-voting tally.
    async fn voter_ids(&self, poll: Uuid) -> Result<Vec<Uuid>>;
    /// Adds an option to an open poll, by its creator or — when the poll allows it — any
    /// member (`text` as sent; checked in the write against the options there). The
    /// poll's message is edited, so the timeline carries the change.
    async fn add_option(
        &self,
        poll: Uuid,
        user: Uuid,
        text: &str,
        now: Time,
    ) -> Result<Committed<PollRecord>>;
    /// Closes an open poll (its creator or a group admin), with a `PollClosed` event.
    /// Closing a closed poll changes nothing.
    async fn close_poll(&self, poll: Uuid, actor: Uuid, now: Time)
    -> Result<Committed<PollRecord>>;
    /// Closes open polls whose close time has come (at most `limit`), each with its
    /// `PollClosed` event, and returns those this call closed: with several nodes calling
    /// it at once, each poll is closed — and returned — by exactly one of them.
    async fn close_due(&self, now: Time, limit: u64) -> Result<Vec<Committed<PollRecord>>>;
    /// The conversation's polls (`open`: only open ones, only closed ones, or all when
    /// `None`), newest first, strictly older than `before`; deleted ones never.
    async fn polls(
        &self,
        conversation: Uuid,
        open: Option<bool>,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<PollRecord>>;
}
