//! Row ↔ domain conversions for the SQL store.

use std::collections::BTreeMap;

use sea_orm::{DbErr, SqlErr};
use uuid::Uuid;

use super::entities::{conversations, messages, sessions, users};
use crate::{
    domain::{
        Content, Conversation, ConversationKind, Details, Forwarded, Message, PollRef, Session,
        User, call::CallRef,
    },
    error::{Error, Result},
};

/// SQL has no unsigned integers; sequence numbers never reach `i64::MAX`.
/// `time` as the database keeps it: PostgreSQL stores microseconds, so a write that
/// returned nanoseconds would answer a client differently from every later read (and
/// from a retry of the same request).
pub fn db_time(time: crate::domain::Time) -> crate::domain::Time {
    chrono::SubsecRound::trunc_subsecs(time, 6)
}

pub fn seq_to_db(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Inverse of [`seq_to_db`]; negative values (never written) read as 0.
pub fn seq_from_db(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// Whether `err` is a unique-constraint violation (a lost race or a duplicate).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

pub fn user(row: users::Model) -> User {
    User {
        id: row.id,
        email: row.email,
        username: row.username,
        display_name: row.display_name,
        avatar_url: row.avatar_url,
        create_time: row.create_time,
    }
}

pub fn session(row: sessions::Model) -> Session {
    Session {
        id: row.id,
        user_id: row.user_id,
        device_name: row.device_name,
        device_platform: row.device_platform,
        create_time: row.create_time,
        last_refresh_time: row.last_refresh_time,
    }
}

pub fn kind_to_db(kind: ConversationKind) -> i16 {
    match kind {
        ConversationKind::Direct => 1,
        ConversationKind::Group => 2,
    }
}

pub fn kind_from_db(code: i16) -> ConversationKind {
    if code == 1 {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    }
}

pub fn conversation(row: conversations::Model) -> Conversation {
    Conversation {
        id: row.id,
        kind: kind_from_db(row.kind),
        details: Details {
            title: row.title,
            description: row.description,
            avatar_url: row.avatar_url,
        },
        end_to_end_encrypted: row.end_to_end_encrypted,
        create_time: row.create_time,
        last_activity_time: row.last_activity_time,
        last_seq: seq_from_db(row.last_seq),
        member_count: u32::try_from(row.member_count).unwrap_or(0),
    }
}

pub fn message(row: messages::Model) -> Result<Message> {
    let content = match (row.poll_id, row.text, row.encrypted_payload) {
        (Some(poll_id), question, _) => Some(Content::Poll(PollRef {
            poll_id,
            question: question.unwrap_or_default(),
        })),
        (None, media, _) if row.call_id.is_some() => row.call_id.map(|call_id| {
            Content::Call(CallRef {
                call_id,
                video: media.as_deref() == Some(VIDEO),
            })
        }),
        (None, Some(text), _) => Some(Content::Text(text)),
        (None, None, Some(bytes)) => Some(Content::Encrypted(bytes)),
        (None, None, None) => None,
    };
    let metadata: BTreeMap<String, String> =
        serde_json::from_str(&row.metadata).map_err(Error::internal)?;
    let attachments = match &row.attachments {
        Some(bytes) => crate::format::decode_attachments(bytes)?,
        None => Vec::new(),
    };
    Ok(Message {
        id: row.id,
        conversation_id: row.conversation_id,
        seq: seq_from_db(row.seq),
        sender_id: row.sender_id,
        content,
        metadata,
        reply_to: row.reply_to,
        create_time: row.create_time,
        edit_time: row.edit_time,
        delete_time: row.delete_time,
        forwarded_from: row.forwarded_sender_id.zip(row.forwarded_create_time).map(
            |(sender_id, create_time)| Forwarded {
                sender_id,
                create_time,
            },
        ),
        attachments,
    })
}

/// Content as its nullable columns (a poll keeps its question in `text`, a call its media).
#[derive(Default)]
pub struct ContentColumns {
    pub text: Option<String>,
    pub encrypted_payload: Option<Vec<u8>>,
    pub poll_id: Option<Uuid>,
    pub call_id: Option<Uuid>,
}

pub fn content_columns(content: Option<&Content>) -> ContentColumns {
    match content {
        Some(Content::Text(text)) => ContentColumns {
            text: Some(text.clone()),
            ..ContentColumns::default()
        },
        Some(Content::Encrypted(bytes)) => ContentColumns {
            encrypted_payload: Some(bytes.clone()),
            ..ContentColumns::default()
        },
        Some(Content::Poll(poll)) => ContentColumns {
            text: Some(poll.question.clone()),
            poll_id: Some(poll.poll_id),
            ..ContentColumns::default()
        },
        Some(Content::Call(call)) => ContentColumns {
            text: Some(if call.video { VIDEO } else { AUDIO }.to_owned()),
            call_id: Some(call.call_id),
            ..ContentColumns::default()
        },
        None => ContentColumns::default(),
    }
}

/// What a call message keeps in `text`: the media it started with.
const VIDEO: &str = "video";
const AUDIO: &str = "audio";
