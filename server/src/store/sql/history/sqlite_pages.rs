//! Pages of the `messages` table on SQLite, read through rusqlite (see `sqlite_reader` for
//! why) into the same sea-orm model as [`super::SqlHistory`] reads, so `convert` maps both.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    domain::Message,
    error::Result,
    store::{
        Direction,
        sql::{
            convert,
            entities::messages,
            sqlite_reader::{self, SqliteReader},
        },
    },
};

const IS_MEMBER: &str =
    "SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = ?1 AND user_id = ?2)";

/// Every column of `messages`, in the order [`message_row`] reads them (a macro, so the
/// page statements below are built at compile time rather than on every read).
macro_rules! message_columns {
    () => {
        "id, conversation_id, seq, sender_id, request_id, text, encrypted_payload, poll_id, \
         call_id, metadata, reply_to, forwarded_sender_id, forwarded_create_time, \
         attachments, create_time, edit_time, delete_time"
    };
}

/// A page of messages after `?2`, oldest first.
const PAGE_FORWARD: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3"
);

/// A page of messages before `?2`, newest first.
const PAGE_BACKWARD: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE conversation_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
);

/// A row of `message_columns!()`.
fn message_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<messages::Model> {
    Ok(messages::Model {
        id: sqlite_reader::uuid(row, 0)?,
        conversation_id: sqlite_reader::uuid(row, 1)?,
        seq: row.get(2)?,
        sender_id: sqlite_reader::uuid(row, 3)?,
        request_id: row.get(4)?,
        text: row.get(5)?,
        encrypted_payload: row.get(6)?,
        poll_id: sqlite_reader::optional_uuid(row, 7)?,
        call_id: sqlite_reader::optional_uuid(row, 8)?,
        metadata: row.get(9)?,
        reply_to: sqlite_reader::optional_uuid(row, 10)?,
        forwarded_sender_id: sqlite_reader::optional_uuid(row, 11)?,
        forwarded_create_time: sqlite_reader::optional_time(row, 12)?,
        attachments: row.get(13)?,
        create_time: sqlite_reader::time(row, 14)?,
        edit_time: sqlite_reader::optional_time(row, 15)?,
        delete_time: sqlite_reader::optional_time(row, 16)?,
    })
}

/// A page of `conversation`'s messages for `member`, who is checked to be one in the same
/// read (one snapshot: a removal commits wholly before or after it). `None` for a
/// non-member.
pub(in crate::store::sql) fn member_page(
    reader: &Arc<SqliteReader>,
    member: Uuid,
    conversation: Uuid,
    direction: Direction,
    anchor_seq: u64,
    limit: u64,
) -> Result<Option<Vec<Message>>> {
    let (sql, anchor) = match direction {
        Direction::Backward if anchor_seq == 0 => (PAGE_BACKWARD, i64::MAX),
        Direction::Backward => (PAGE_BACKWARD, convert::seq_to_db(anchor_seq)),
        Direction::Forward => (PAGE_FORWARD, convert::seq_to_db(anchor_seq)),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = reader.read(|conn| {
        let snapshot = conn.unchecked_transaction()?;
        let is_member: bool = snapshot
            .prepare_cached(IS_MEMBER)?
            .query_row([conversation.as_bytes(), member.as_bytes()], |row| {
                row.get(0)
            })?;
        if !is_member {
            return Ok(None);
        }
        let mut page = snapshot.prepare_cached(sql)?;
        let rows = page.query_map(
            rusqlite::params![conversation.as_bytes(), anchor, limit],
            message_row,
        )?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map(Some)
    })?;
    rows.map(|rows| rows.into_iter().map(convert::message).collect())
        .transpose()
}
