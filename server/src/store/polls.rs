//! The poll store contract.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    domain::{
        Time,
        poll::{PollRecord, PollSettings, Vote},
    },
    error::Result,
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
#[async_trait]
pub trait PollStore: Send + Sync {
    async fn create_poll(&self, new: NewPoll, now: Time) -> Result<PollRecord>;
    /// The poll, unless it does not exist (deleted ones included, with their state).
    async fn poll(&self, id: Uuid) -> Result<Option<PollRecord>>;
    /// `user`'s vote on the poll, if any.
    async fn vote(&self, poll: Uuid, user: Uuid) -> Result<Option<Vote>>;
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
    /// Every vote of a public poll (for recounts and voter lists).
    async fn votes(&self, poll: Uuid) -> Result<Vec<Vote>>;
    /// Adds an option to an open poll, by its creator or — when the poll allows it — any
    /// member (`text` as sent; checked in the write against the options there).
    async fn add_option(&self, poll: Uuid, user: Uuid, text: &str) -> Result<PollRecord>;
    /// Closes open polls whose close time has come (at most `limit`), and returns those
    /// this call closed: with several nodes calling it at once, each poll is closed — and
    /// returned — by exactly one of them. (The timeline event joins this write when polls
    /// reach the timeline.)
    async fn close_due(&self, now: Time, limit: u64) -> Result<Vec<PollRecord>>;
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
