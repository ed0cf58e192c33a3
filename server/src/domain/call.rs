//! Calls in the domain: what a call's record holds. Its rules are in `calls::lifecycle`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Time;

/// Where one member stands in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Presence {
    Ringing,
    Joined,
    Left,
    Declined,
    /// Rang until the ring timed out.
    Missed,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    /// Its caller or an admin ended it.
    EndedBy(Uuid),
    /// The last participant left.
    Emptied,
    /// Everyone rung declined.
    Declined,
    /// Nobody answered before the ring timed out, or the caller gave up first.
    Missed,
}

/// One member's part in a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub presence: Presence,
    /// When they (last) joined.
    pub joined: Option<Time>,
}

/// A call's record: everything durable about it (media state lives with the SFU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub id: Uuid,
    pub conversation: Uuid,
    /// The timeline message that carries it.
    pub message: Uuid,
    pub caller: Uuid,
    pub video: bool,
    pub started: Time,
    /// When someone other than the caller first joined.
    pub answered: Option<Time>,
    pub ended: Option<(Time, Ending)>,
    /// Every member rung, by user id (the caller included), and anyone who joined since.
    pub members: BTreeMap<Uuid, Participant>,
}

/// The call a call message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRef {
    pub call_id: Uuid,
    /// Started as a video call (kept with the message for previews).
    pub video: bool,
}
