//! Fan-out on read for large conversations (ARCHITECTURE.md, "the timeline").
//!
//! Filing an event in every member's feed costs a write per member: at 1,000 members that
//! was nearly all of a send's cost, and 1,000 writes to random places of the feed index.
//! Once a conversation's membership grows past `database.fanout_on_read_members`, its
//! events are stored once, each at the next position of one **shared timeline** (dense,
//! in commit order: taking a position locks the head row until commit). Who receives a
//! position is recorded as **member ranges**: a member receives the conversation's events
//! in `(from_position, to_position]`, opened when they join (or when the conversation
//! switches) and closed by the event that removes them, which they still receive. So
//! recipients are exactly those fan-out on write would have chosen, for live delivery
//! (the publish names them) and for replay (the ranges do) alike.
//!
//! A stream's cursor is then two positions, its feed's and the timeline's; see
//! `crate::events`. The switch is one-way, so a conversation's feed events all precede
//! its timeline events, and the first timeline event says so (`TimelineSpot::opens`).

use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::{SqlStore, convert, statement, stored_event};
use crate::{
    domain::{Change, Event, TimelineItem},
    error::{Error, Result},
    store::Heads,
};

/// `?, ?, …` for `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Whether `conversation`'s events go on the shared timeline.
pub(super) async fn fanned_out_on_read<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
) -> Result<bool> {
    let backend = txn.get_database_backend();
    let row = txn
        .query_one_raw(statement(
            backend,
            "SELECT fanout_on_read FROM conversations WHERE id = ?",
            vec![conversation.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get_by_index(0)?,
        None => false,
    })
}

/// Moves `conversation` to the shared timeline, for good, if it has more than
/// `threshold` members now: called by the changes that add members, before they record
/// their event (which is then the conversation's first on the timeline).
pub(super) async fn switch_if_large<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    members: usize,
    threshold: usize,
) -> Result<()> {
    if members <= threshold {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    txn.execute_raw(statement(
        backend,
        "UPDATE conversations SET fanout_on_read = TRUE WHERE id = ?",
        vec![conversation.into()],
    ))
    .await?;
    Ok(())
}

/// Takes the timeline's next position. On PostgreSQL the head row stays locked until
/// commit, so positions become visible in order and without holes.
pub(super) async fn take_position<C: ConnectionTrait>(txn: &C) -> Result<u64> {
    let backend = txn.get_database_backend();
    let row = txn
        .query_one_raw(statement(
            backend,
            "UPDATE timeline_head SET position = position + 1 WHERE id = 1 RETURNING position",
            vec![],
        ))
        .await?
        .ok_or_else(|| Error::internal("the timeline head row is missing"))?;
    Ok(convert::seq_from_db(row.try_get_by_index(0)?))
}

/// Whether `change` alters who receives the conversation's events.
pub(super) fn changes_membership(event: &Event) -> bool {
    matches!(
        event,
        Event::Conversation {
            change: Change::Created { .. }
                | Change::MembersAdded(_)
                | Change::MemberRemoved { .. }
                | Change::Deleted,
            ..
        }
    )
}

/// Before a membership change at `position` is stored: every recipient without an open
/// range gets one that includes it. Returns whether these are the conversation's first
/// ranges (the event opens its timeline).
pub(super) async fn open_ranges<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    position: u64,
    recipients: &[Uuid],
) -> Result<bool> {
    let backend = txn.get_database_backend();
    let first = txn
        .query_one_raw(statement(
            backend,
            "SELECT NOT EXISTS (SELECT 1 FROM member_ranges WHERE conversation_id = ?)",
            vec![conversation.into()],
        ))
        .await?
        .map(|row| row.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(true);
    if recipients.is_empty() {
        return Ok(first);
    }
    let sql = format!(
        "INSERT INTO member_ranges (user_id, conversation_id, from_position, to_position) \
         SELECT id, ?, ?, NULL FROM users WHERE id IN ({}) AND NOT EXISTS \
         (SELECT 1 FROM member_ranges r WHERE r.user_id = users.id \
          AND r.conversation_id = ? AND r.to_position IS NULL)",
        placeholders(recipients.len())
    );
    let mut values: Vec<Value> = vec![conversation.into(), convert::seq_to_db(position - 1).into()];
    values.extend(recipients.iter().map(|&user| Value::from(user)));
    values.push(conversation.into());
    txn.execute_raw(statement(backend, &sql, values)).await?;
    Ok(first)
}

/// After a membership change at `position` is stored: the ranges of those no longer
/// members (all of them when the conversation was deleted) end with it.
pub(super) async fn close_ranges<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    position: u64,
    deleted: bool,
) -> Result<()> {
    let backend = txn.get_database_backend();
    let still_member = if deleted {
        ""
    } else {
        " AND user_id NOT IN (SELECT user_id FROM members WHERE conversation_id = ?)"
    };
    let mut values: Vec<Value> = vec![convert::seq_to_db(position).into(), conversation.into()];
    if !deleted {
        values.push(conversation.into());
    }
    txn.execute_raw(statement(
        backend,
        &format!(
            "UPDATE member_ranges SET to_position = ? \
             WHERE conversation_id = ? AND to_position IS NULL{still_member}"
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// The user's feed head and the timeline's, at one instant (one statement), so that
/// every feed event of a conversation before its first timeline event below the timeline
/// head is below the feed head too.
pub(super) async fn heads(store: &SqlStore, user: Uuid) -> Result<Heads> {
    let backend = store.db.get_database_backend();
    let row = store
        .db
        .query_one_raw(statement(
            backend,
            "SELECT (SELECT feed_seq FROM users WHERE id = ?), position, trimmed \
             FROM timeline_head WHERE id = 1",
            vec![user.into()],
        ))
        .await?
        .ok_or_else(|| Error::internal("the timeline head row is missing"))?;
    let feed: Option<i64> = row.try_get_by_index(0)?;
    Ok(Heads {
        feed: feed.map(convert::seq_from_db).unwrap_or(0),
        timeline: convert::seq_from_db(row.try_get_by_index(1)?),
        trimmed: convert::seq_from_db(row.try_get_by_index(2)?),
    })
}

/// The conditions of `user`'s timeline events in `(after, until]`.
const RECEIVED: &str = "FROM member_ranges r JOIN events e \
     ON e.conversation_id = r.conversation_id AND e.position > r.from_position \
     AND (r.to_position IS NULL OR e.position <= r.to_position) \
     WHERE r.user_id = ? AND e.position > ? AND e.position <= ?";

/// `user`'s timeline events in `(after, until]`, at most `limit`, in order.
pub(super) async fn timeline(
    store: &SqlStore,
    user: Uuid,
    after: u64,
    until: u64,
    limit: u64,
) -> Result<Vec<TimelineItem>> {
    let backend = store.db.get_database_backend();
    let rows = store
        .db
        .query_all_raw(statement(
            backend,
            &format!("SELECT e.position, e.payload, e.body {RECEIVED} ORDER BY e.position LIMIT ?"),
            vec![
                user.into(),
                convert::seq_to_db(after).into(),
                convert::seq_to_db(until).into(),
                convert::seq_to_db(limit).into(),
            ],
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let position: i64 = row.try_get_by_index(0)?;
            let payload: String = row.try_get_by_index(1)?;
            let body: Option<Vec<u8>> = row.try_get_by_index(2)?;
            Ok(TimelineItem {
                position: convert::seq_from_db(position),
                event: std::sync::Arc::new(stored_event(&payload, body.as_deref())?),
            })
        })
        .collect()
}

/// How many of `user`'s timeline events lie in `(after, until]`, counting no further
/// than `cap`.
pub(super) async fn backlog(
    store: &SqlStore,
    user: Uuid,
    after: u64,
    until: u64,
    cap: u64,
) -> Result<u64> {
    let backend = store.db.get_database_backend();
    let row = store
        .db
        .query_one_raw(statement(
            backend,
            &format!("SELECT COUNT(*) FROM (SELECT 1 AS one {RECEIVED} LIMIT ?) AS counted"),
            vec![
                user.into(),
                convert::seq_to_db(after).into(),
                convert::seq_to_db(until).into(),
                convert::seq_to_db(cap).into(),
            ],
        ))
        .await?;
    let count: i64 = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(convert::seq_from_db(count))
}
