//! One plain send, written with prepared statements on the writer's connection: the same
//! rows, in the same encodings, as the sea-orm write in `chat::messages` (sqlx's SQLite
//! encodings: UUIDs as 16-byte blobs, times as RFC 3339 text, booleans as 0/1), so
//! everything else reads them through sea-orm. `store_suite::sqlite_rows`
//! checks the two writes against each other. A conversation fanned out on read gets its
//! event stored once on the shared timeline, as `store::sql::append_to_timeline` does.

use std::{collections::HashMap, sync::Arc};

use chrono::SecondsFormat;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::{
    domain::{Change, Event, Message, Published, Time, TimelineSpot, rules},
    error::{Error, Result},
    store::{
        Committed, NewMessage,
        sql::{
            chat::{
                messages::{Written, blocked, peer_to_check},
                timeline::conversation_event,
            },
            convert,
        },
    },
};

/// What a send checks of the conversation (the writer thread is SQLite's only writer, so
/// nothing changes it between this read and the send's writes).
const CONVERSATION: &str = "SELECT kind, end_to_end_encrypted, fanout_on_read \
     FROM conversations WHERE id = ?1";
const REQUEST_SEEN: &str = "SELECT EXISTS (SELECT 1 FROM request_ids \
     WHERE user_id = ?1 AND kind = ?2 AND request_id = ?3)";
/// Numbers the change.
const NUMBER: &str = "UPDATE conversations SET last_seq = last_seq + 1, last_activity_time = ?2 \
     WHERE id = ?1 RETURNING last_seq";
const RECORD_REQUEST: &str = "INSERT INTO request_ids \
     (user_id, kind, request_id, fingerprint, conversation_id, result_id, create_time) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const MEMBERS: &str = "SELECT user_id FROM members WHERE conversation_id = ?1";
const BLOCKED: &str = "SELECT EXISTS (SELECT 1 FROM blocks WHERE \
     (blocker_id = ?1 AND blocked_id = ?2) OR (blocker_id = ?2 AND blocked_id = ?1))";
const INSERT_MESSAGE: &str = "INSERT INTO messages (id, conversation_id, seq, sender_id, \
     request_id, text, encrypted_payload, poll_id, call_id, metadata, reply_to, \
     forwarded_sender_id, forwarded_create_time, attachments, create_time, edit_time, \
     delete_time) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, ?14, NULL, NULL)";
const INSERT_EVENT: &str = "INSERT INTO events (conversation_id, seq, payload, body, create_time) \
     VALUES (?1, ?2, '', ?3, ?4)";
/// A large conversation's send: the event stored once, at the shared timeline's next
/// position (see `store::sql::shared_timeline`; a send changes no member ranges).
const TAKE_POSITION: &str =
    "UPDATE timeline_head SET position = position + 1 WHERE id = 1 RETURNING position";
const INSERT_TIMELINE_EVENT: &str = "INSERT INTO events \
     (conversation_id, seq, payload, body, create_time, position) \
     VALUES (?1, ?2, '', ?3, ?4, ?5)";
/// Each member's next feed position, taken and read back in one statement; the next
/// statement files the event there (the positions are the members' heads by then).
const ADVANCE_FEEDS: &str = "UPDATE users SET feed_seq = feed_seq + 1 \
     WHERE id IN (SELECT user_id FROM members WHERE conversation_id = ?1) \
     RETURNING id, feed_seq";
const FILE_EVENT: &str = "INSERT INTO feed (user_id, feed_seq, event_id) \
     SELECT id, feed_seq, ?2 FROM users \
     WHERE id IN (SELECT user_id FROM members WHERE conversation_id = ?1)";

/// A plain send that passed its checks, and what its write needs of them.
pub(super) struct Checked {
    members: Vec<Uuid>,
    on_timeline: bool,
}

/// The checks of a plain send, in the order of the sea-orm write for the same answers,
/// all before anything is written so that a refused send leaves nothing to roll back (no
/// savepoint per send: copying each page it touches into a sub-journal was 5 % of a send's
/// CPU). `None` for a retry (or reuse) of a request id: its first write answers it.
pub(super) fn check(conn: &Connection, new: &NewMessage) -> Result<Option<Checked>> {
    let conversation = new.conversation_id.as_bytes();
    let Some((kind, end_to_end_encrypted, on_timeline)) =
        conn.prepare_cached(CONVERSATION).and_then(|mut read| {
            read.query_row([conversation], |row| {
                Ok((row.get::<_, i16>(0)?, row.get(1)?, row.get::<_, bool>(2)?))
            })
            .optional()
        })?
    else {
        return Err(Error::NotFound("conversation"));
    };
    // The request id first: a retry of a committed send gets its message back even if the
    // sender may no longer post.
    let request = &new.request;
    let seen: bool = conn.prepare_cached(REQUEST_SEEN).and_then(|mut seen| {
        seen.query_row(
            params![request.user.as_bytes(), request.kind.code(), request.id],
            |row| row.get(0),
        )
    })?;
    if seen {
        return Ok(None);
    }
    let members = member_ids(conn, conversation)?;
    let kind = convert::kind_from_db(kind);
    if let Some(peer) = peer_to_check(kind, new.sender_id, &members)?
        && blocked_between(conn, new.sender_id, *peer)?
    {
        return Err(blocked());
    }
    rules::fits_encryption(end_to_end_encrypted, &new.content, false)?;
    Ok(Some(Checked {
        members,
        on_timeline,
    }))
}

/// The writes of a checked send: the number, the request id, the message, its event in
/// every member's feed (or on the shared timeline). Only a fault fails here, and then the
/// caller must roll back the whole transaction: nothing undoes a part of a send.
pub(super) fn write(
    conn: &Connection,
    new: &NewMessage,
    checked: Checked,
    now: Time,
) -> Result<Written> {
    let conversation = new.conversation_id.as_bytes();
    let time = time_text(now);
    let seq: i64 = conn
        .prepare_cached(NUMBER)?
        .query_row(params![conversation, time], |row| row.get(0))?;
    let seq = convert::seq_from_db(seq);
    let message = new.message(seq, now);
    let request = &new.request;
    conn.prepare_cached(RECORD_REQUEST)?.execute(params![
        request.user.as_bytes(),
        request.kind.code(),
        request.id,
        request.fingerprint,
        conversation,
        message.id.as_bytes(),
        time,
    ])?;
    insert_message(conn, &message, &request.id)?;
    let change = Change::MessageSent(message.clone());
    let event = conversation_event(new.conversation_id, seq, new.sender_id, now, change);
    let members = &checked.members[..];
    let published = append_event(conn, event, &time, checked.on_timeline.then_some(members))?;
    Ok(Written::Sent(Box::new(Committed {
        value: message,
        published: Some(published),
    })))
}

fn member_ids(conn: &Connection, conversation: &[u8; 16]) -> Result<Vec<Uuid>> {
    let read = || {
        let mut members = conn.prepare_cached(MEMBERS)?;
        let rows = members.query_map([conversation], |row| row.get::<_, [u8; 16]>(0))?;
        rows.map(|id| id.map(Uuid::from_bytes))
            .collect::<rusqlite::Result<Vec<Uuid>>>()
    };
    Ok(read()?)
}

fn blocked_between(conn: &Connection, a: Uuid, b: Uuid) -> Result<bool> {
    conn.prepare_cached(BLOCKED)
        .and_then(|mut blocked| blocked.query_row([a.as_bytes(), b.as_bytes()], |row| row.get(0)))
        .map_err(Error::from)
}

fn insert_message(conn: &Connection, message: &Message, request_id: &str) -> Result<()> {
    let columns = convert::content_columns(message.content.as_ref());
    let metadata = serde_json::to_string(&message.metadata).map_err(Error::internal)?;
    let forwarded = message.forwarded_from;
    conn.prepare_cached(INSERT_MESSAGE).and_then(|mut insert| {
        insert.execute(params![
            message.id.as_bytes(),
            message.conversation_id.as_bytes(),
            convert::seq_to_db(message.seq),
            message.sender_id.as_bytes(),
            request_id,
            columns.text,
            columns.encrypted_payload,
            columns.poll_id.map(Uuid::into_bytes),
            columns.call_id.map(Uuid::into_bytes),
            metadata,
            message.reply_to.map(Uuid::into_bytes),
            forwarded.map(|f| f.sender_id.into_bytes()),
            forwarded.map(|f| time_text(f.create_time)),
            time_text(message.create_time),
        ])
    })?;
    Ok(())
}

/// Stores the event of a send: in a conversation fanned out on read (`on_timeline` names
/// its members) once, at the shared timeline's next position; otherwise filed in every
/// member's feed.
fn append_event(
    conn: &Connection,
    event: Event,
    time: &str,
    on_timeline: Option<&[Uuid]>,
) -> Result<Published> {
    let Event::Conversation {
        conversation_id,
        seq,
        ..
    } = &event
    else {
        return Err(Error::internal("a send's event is a conversation's"));
    };
    let conversation = conversation_id.as_bytes();
    let seq = convert::seq_to_db(*seq);
    let body = crate::format::encode_event(&event);
    if let Some(members) = on_timeline {
        let position: i64 = conn
            .prepare_cached(TAKE_POSITION)?
            .query_row([], |row| row.get(0))?;
        conn.prepare_cached(INSERT_TIMELINE_EVENT)?
            .execute(params![conversation, seq, body, time, position])?;
        return Ok(Published {
            event: Arc::new(event),
            recipients: members.iter().map(|&user| (user, 0)).collect(),
            timeline: Some(TimelineSpot {
                position: convert::seq_from_db(position),
                opens: false,
            }),
        });
    }
    let file = || {
        conn.prepare_cached(INSERT_EVENT)?
            .execute(params![conversation, seq, body, time])?;
        let event_id = conn.last_insert_rowid();
        let mut advance = conn.prepare_cached(ADVANCE_FEEDS)?;
        let positions = advance
            .query_map([conversation], |row| {
                Ok((
                    Uuid::from_bytes(row.get(0)?),
                    convert::seq_from_db(row.get(1)?),
                ))
            })?
            .collect::<rusqlite::Result<HashMap<Uuid, u64>>>()?;
        conn.prepare_cached(FILE_EVENT)?
            .execute(params![conversation, event_id])?;
        Ok::<_, rusqlite::Error>(positions)
    };
    let recipients = file()?;
    Ok(Published {
        event: Arc::new(event),
        recipients,
        timeline: None,
    })
}

/// A time as sqlx writes `DateTime<Utc>` to SQLite, so reads and comparisons agree.
fn time_text(time: Time) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}
