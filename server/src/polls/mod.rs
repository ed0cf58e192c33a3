//! Polls: the rules (what a valid poll and a valid vote are, who sees what) as pure
//! functions; the service and its storage build on them.

pub mod coalesce;
pub mod rules;
mod service;

pub use service::{
    CreatePoll, PollFilter, PollPage, PollView, Polls, TALLY_INTERVAL, Voter, VoterPage,
};
