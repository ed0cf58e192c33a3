//! Timeline and per-user events, and how they travel to streams.

use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ConversationKind, Details, Member, Message, Time, User, call::Call, poll::Tally};

/// A durable event. Conversation events carry the conversation's `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A change to a conversation's timeline.
    Conversation {
        conversation_id: Uuid,
        seq: u64,
        actor: Uuid,
        time: Time,
        change: Change,
    },
    /// The user's read position moved (sent to that user's devices only).
    ReadState {
        conversation_id: Uuid,
        read_seq: u64,
        time: Time,
    },
    /// Someone asked the recipient to become a contact.
    ContactRequested(ContactRequest),
    /// Two users became contacts (sent to both; each sees the other).
    ContactAdded { users: [User; 2], time: Time },
    /// Two users stopped being contacts (sent to both).
    ContactRemoved { users: [Uuid; 2], time: Time },
}

/// A pending request to become contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRequest {
    pub from: User,
    pub to: User,
    pub message: String,
    pub time: Time,
}

/// One of a user's contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub user: User,
    pub since: Time,
}

/// What changed in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    MessageSent(Message),
    MessageEdited(Message),
    MessageDeleted(Message),
    Created {
        kind: ConversationKind,
        details: Details,
        end_to_end_encrypted: bool,
        members: Vec<Member>,
    },
    Updated(Details),
    MembersAdded(Vec<Member>),
    MemberRemoved {
        user_id: Uuid,
        left: bool,
    },
    RoleUpdated(Member),
    /// The group was deleted: the last event of its timeline.
    Deleted,
    /// A poll closed, with its final tally.
    PollClosed {
        poll_id: Uuid,
        message_id: Uuid,
        tally: Tally,
    },
    /// A call ended: the call as it ended.
    CallEnded(Box<Call>),
}

/// One event in one user's feed: `feed_seq` is dense per user and is the resume cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    pub feed_seq: u64,
    pub event: Arc<Event>,
}

/// A committed event with where it was filed for each recipient. This is what travels over
/// the bus to the streams.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a committed event reaches live streams only when published"]
pub struct Published {
    pub event: Arc<Event>,
    /// Who receives it: with fan-out on write, each recipient and the feed position their
    /// copy took; on the shared timeline (`timeline` is set), each recipient with 0.
    pub recipients: HashMap<Uuid, u64>,
    /// Where the event was stored once, for a conversation fanned out on read.
    pub timeline: Option<TimelineSpot>,
}

/// An event's place on the shared timeline of conversations fanned out on read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineSpot {
    /// Dense across all such conversations, in commit order.
    pub position: u64,
    /// The conversation's first event on the timeline: its earlier events are in feeds,
    /// so a stream reads its feed up to date before delivering this one.
    pub opens: bool,
}

impl Published {
    /// The feed item for `user`, if they are a recipient of an event filed in feeds.
    pub fn item_for(&self, user: Uuid) -> Option<FeedItem> {
        if self.timeline.is_some() {
            return None;
        }
        self.recipients.get(&user).map(|&feed_seq| FeedItem {
            feed_seq,
            event: Arc::clone(&self.event),
        })
    }
}

/// One event of the shared timeline, read back for a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineItem {
    pub position: u64,
    pub event: Arc<Event>,
}

/// Someone started or stopped typing: ephemeral, addressed to the other members, never
/// stored and never replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingSignal {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub typing: bool,
    pub expire_time: Option<Time>,
    pub recipients: Vec<Uuid>,
}

/// A poll's tally changed: ephemeral, addressed to the members who may see it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallySignal {
    pub conversation_id: Uuid,
    pub poll_id: Uuid,
    pub tally: Tally,
    pub recipients: Vec<Uuid>,
}

/// A call changed (someone joined, left or declined, or it ended): ephemeral, addressed
/// to the members of its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSignal {
    pub call: Call,
    pub recipients: Vec<Uuid>,
}

/// Something ephemeral for some users' streams: never stored and never replayed, so a
/// stream that misses one loses nothing that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Typing(TypingSignal),
    PollTally(TallySignal),
    CallUpdated(Box<CallSignal>),
}

impl Signal {
    /// Whose streams it is for.
    pub fn recipients(&self) -> &[Uuid] {
        match self {
            Signal::Typing(signal) => &signal.recipients,
            Signal::PollTally(signal) => &signal.recipients,
            Signal::CallUpdated(signal) => &signal.recipients,
        }
    }
}
