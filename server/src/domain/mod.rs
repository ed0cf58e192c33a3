//! Domain types shared by services and stores. No tonic or database types here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod call;
pub mod drive;
pub mod event;
pub mod poll;
pub mod rules;

pub use event::{
    CallSignal, Change, Contact, ContactRequest, Event, FeedItem, Published, Signal, TallySignal,
    TimelineItem, TimelineSpot, TypingSignal,
};

/// Point in time used everywhere in the domain.
pub type Time = DateTime<Utc>;

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub avatar_url: String,
    pub create_time: Time,
}

/// A signed-in device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_name: String,
    pub device_platform: String,
    pub create_time: Time,
    pub last_refresh_time: Time,
}

/// Direct (two users) or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationKind {
    Direct,
    Group,
}

/// A member's rights in a conversation, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    /// Stable storage code.
    pub fn code(self) -> i16 {
        match self {
            Role::Member => 1,
            Role::Admin => 2,
            Role::Owner => 3,
        }
    }

    /// Inverse of [`Role::code`]; unknown codes read as the least privileged role.
    pub fn from_code(code: i16) -> Role {
        match code {
            3 => Role::Owner,
            2 => Role::Admin,
            _ => Role::Member,
        }
    }
}

/// Editable details of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    pub title: String,
    pub description: String,
    pub avatar_url: String,
}

/// Which group details an update touches; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetailsChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub avatar_url: Option<String>,
}

impl DetailsChanges {
    /// The details after the change, applied to what is stored now (read in the write,
    /// so two admins editing different fields at once both keep their change).
    pub fn apply(self, mut details: Details) -> Details {
        if let Some(title) = self.title {
            details.title = title;
        }
        if let Some(description) = self.description {
            details.description = description;
        }
        if let Some(avatar_url) = self.avatar_url {
            details.avatar_url = avatar_url;
        }
        details
    }
}

/// A conversation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: Uuid,
    pub kind: ConversationKind,
    pub details: Details,
    pub end_to_end_encrypted: bool,
    pub create_time: Time,
    pub last_activity_time: Time,
    pub last_seq: u64,
    pub member_count: u32,
}

/// A conversation as one member sees it (`ListConversations`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub membership: Membership,
    pub last_message: Option<Message>,
    pub unread_count: u32,
    pub peer_user_id: Option<Uuid>,
}

/// One user's membership of one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub role: Role,
    pub read_seq: u64,
    pub join_time: Time,
}

/// A member, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: Uuid,
    pub role: Role,
    pub join_time: Time,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    Text(String),
    /// End-to-end encrypted bytes the server never reads.
    Encrypted(#[serde(with = "base64_bytes")] Vec<u8>),
    /// A poll; its options, votes and state live with the poll.
    Poll(PollRef),
    /// A call; its participants and state live with the call.
    Call(call::CallRef),
}

/// The poll a poll message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRef {
    pub poll_id: Uuid,
    /// Kept with the message for previews and history readers.
    pub question: String,
}

/// A message; `content` is `None` once deleted (a tombstone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: u64,
    pub sender_id: Uuid,
    pub content: Option<Content>,
    pub metadata: BTreeMap<String, String>,
    pub reply_to: Option<Uuid>,
    pub create_time: Time,
    pub edit_time: Option<Time>,
    pub delete_time: Option<Time>,
    /// Set on a forwarded copy.
    #[serde(default)]
    pub forwarded_from: Option<Forwarded>,
    /// Drive files attached, as they were when it was sent; empty once deleted.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// A drive file attached to a message: a snapshot of what readers are shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub file_id: Uuid,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    /// Set for images, which have a thumbnail.
    pub image: Option<ImageSize>,
}

/// An image's size in pixels, as displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

/// The origin of a forwarded message (never its conversation, which stays private).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    pub sender_id: Uuid,
    pub create_time: Time,
}

/// Stores encrypted payloads compactly in JSON event payloads.
mod base64_bytes {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
