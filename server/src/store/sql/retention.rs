//! Retention: the event feeds keep what a resuming device can still be replayed, no more.
//!
//! A stream replays at most `stream.max_replay_events` (older cursors get a `gap` and page
//! with `ListMessages`), so feed rows further back than that from the user's head are
//! unreachable and go; so do events of the shared timeline further back than that from
//! its head (the head row records how far, and a cursor behind that resumes with a gap),
//! with the member ranges that ended there. An event goes when no feed refers to it any
//! more and it is not on the kept part of the timeline — and, when message
//! history lives in CQL, only once it has been applied there (it is the source the
//! projection catches up from). Message history itself is never trimmed here: it lives in
//! the `messages` table or in CQL. The request ids that make creating calls idempotent are
//! kept for [`IDEMPOTENCY_WINDOW`]; a retry later than that creates again.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};

use super::{SqlStore, convert, entities::request_ids, statement};
use crate::error::Result;

/// How long a retried creating call (send, forward, create conversation) is recognised.
pub const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// What one trimming pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    pub feed_rows: u64,
    pub events: u64,
    pub request_ids: u64,
}

impl SqlStore {
    /// Removes feed rows more than `keep` behind their user's head, then events no feed
    /// refers to (see the module comment). Safe to run from every node at once.
    pub async fn trim_feeds(&self, keep: u64) -> Result<Trimmed> {
        let _guard = self.write_guard().await;
        let backend = self.db.get_database_backend();
        let keep = convert::seq_to_db(keep);
        // Portable SQL (SQLite, PostgreSQL, CockroachDB): correlated subqueries, no USING.
        let feed_rows = self
            .db
            .execute_raw(statement(
                backend,
                "DELETE FROM feed WHERE feed_seq <= \
                 (SELECT users.feed_seq FROM users WHERE users.id = feed.user_id) - ?",
                vec![keep.into()],
            ))
            .await?
            .rows_affected();
        self.db
            .execute_raw(statement(
                backend,
                "UPDATE timeline_head SET trimmed = position - ? \
                 WHERE id = 1 AND position - ? > trimmed",
                vec![keep.into(), keep.into()],
            ))
            .await?;
        self.db
            .execute_raw(Statement::from_string(
                backend,
                "DELETE FROM member_ranges WHERE to_position <= \
                 (SELECT trimmed FROM timeline_head WHERE id = 1)",
            ))
            .await?;
        let unreferenced = "NOT EXISTS (SELECT 1 FROM feed WHERE feed.event_id = events.id) \
             AND (events.position IS NULL OR events.position <= \
             (SELECT trimmed FROM timeline_head WHERE id = 1))";
        let mut events = self
            .db
            .execute_raw(Statement::from_string(
                backend,
                format!("DELETE FROM events WHERE conversation_id IS NULL AND {unreferenced}"),
            ))
            .await?
            .rows_affected();
        // A projected history may still need events no feed references: trim those only
        // once applied.
        if self.history.is_projection() {
            let candidates = self
                .db
                .query_all_raw(Statement::from_string(
                    backend,
                    format!(
                        "SELECT conversation_id, MAX(seq) AS max_seq FROM events \
                         WHERE conversation_id IS NOT NULL AND {unreferenced} \
                         GROUP BY conversation_id"
                    ),
                ))
                .await?;
            for row in candidates {
                let conversation: uuid::Uuid = row.try_get("", "conversation_id")?;
                let max_seq: i64 = row.try_get("", "max_seq")?;
                let applied = self.history.applied_seq(conversation).await?;
                let applied = convert::seq_to_db(applied);
                events += self
                    .db
                    .execute_raw(statement(
                        backend,
                        &format!(
                            "DELETE FROM events WHERE conversation_id = ? AND seq <= ? \
                             AND {unreferenced}"
                        ),
                        vec![conversation.into(), Ord::min(max_seq, applied).into()],
                    ))
                    .await?
                    .rows_affected();
            }
        } else {
            events += self
                .db
                .execute_raw(Statement::from_string(
                    backend,
                    format!("DELETE FROM events WHERE {unreferenced}"),
                ))
                .await?
                .rows_affected();
        }
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(IDEMPOTENCY_WINDOW).unwrap_or_default();
        let request_ids = request_ids::Entity::delete_many()
            .filter(request_ids::Column::CreateTime.lt(cutoff))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(Trimmed {
            feed_rows,
            events,
            request_ids,
        })
    }
}
