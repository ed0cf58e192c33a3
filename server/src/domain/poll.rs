//! Polls in the domain: what a poll is and how it works, free of transport and storage.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Time;

/// When members may see the tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ResultsVisibility {
    #[default]
    Always,
    AfterVoting,
    AfterClose,
}

/// How a poll works, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PollSettings {
    pub multiple_choice: bool,
    /// With `multiple_choice`: the most options one member may pick; `None` for no limit.
    pub max_selections: Option<u32>,
    pub allow_vote_changes: bool,
    pub anonymous: bool,
    pub results_visibility: ResultsVisibility,
    pub members_can_add_options: bool,
    pub close_time: Option<Time>,
}

impl PollSettings {
    /// The most options one vote may pick, given the poll's current option count.
    pub fn selection_limit(&self, options: usize) -> usize {
        if !self.multiple_choice {
            return 1;
        }
        match self.max_selections {
            Some(max) => usize::try_from(max).unwrap_or(usize::MAX).min(options),
            None => options,
        }
    }
}

/// Where a poll is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PollState {
    Open,
    Closed,
    Deleted,
}

/// One answer members can pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollOption {
    pub id: Uuid,
    pub text: String,
    pub added_by: Uuid,
}

/// A poll's tally: votes per option (in option order) and how many members voted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tally {
    pub counts: Vec<(Uuid, u32)>,
    pub total_voters: u32,
    /// Grows with every change: of two tallies of one poll, the higher is newer.
    pub version: u64,
}

/// A poll as stored: everything but who voted for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRecord {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The timeline message that carries it.
    pub message_id: Uuid,
    pub creator: Uuid,
    pub question: String,
    pub options: Vec<PollOption>,
    pub settings: PollSettings,
    pub state: PollState,
    pub create_time: Time,
    pub closed_time: Option<Time>,
    pub tally: Tally,
}

/// One member's vote; `picks` is empty on anonymous polls (never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub user: Uuid,
    pub picks: Vec<Uuid>,
    pub time: Time,
}
