//! The prepared statements of the message history, prepared once at start-up.

use scylla::{client::session::Session, statement::prepared::PreparedStatement};

use super::cql_error;
use crate::error::Result;

/// Prepared once at start-up: token-aware routing needs the partition key bound, and a
/// prepared statement skips parsing on every call.
pub(super) struct Statements {
    pub(super) insert_message: PreparedStatement,
    pub(super) insert_id: PreparedStatement,
    pub(super) set_progress: PreparedStatement,
    pub(super) progress: PreparedStatement,
    pub(super) seq_of_id: PreparedStatement,
    pub(super) message_at: PreparedStatement,
    pub(super) newest_first: PreparedStatement,
    pub(super) oldest_first: PreparedStatement,
    pub(super) scan_unread: PreparedStatement,
    pub(super) ids_in_bucket: PreparedStatement,
    pub(super) delete_bucket: PreparedStatement,
    pub(super) delete_id: PreparedStatement,
    pub(super) delete_progress: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(session: &Session, ks: &str) -> Result<Self> {
        let prepare = |text: String| async move { session.prepare(text).await.map_err(cql_error) };
        Ok(Self {
            insert_message: prepare(format!(
                "INSERT INTO {ks}.messages (conversation_id, bucket, seq, id, sender_id, deleted, data) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            insert_id: prepare(format!(
                "INSERT INTO {ks}.message_ids (conversation_id, id, seq) VALUES (?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            set_progress: prepare(format!(
                "UPDATE {ks}.conversation_progress USING TIMESTAMP ? SET applied_seq = ? \
                 WHERE conversation_id = ?"
            ))
            .await?,
            progress: prepare(format!(
                "SELECT applied_seq FROM {ks}.conversation_progress WHERE conversation_id = ?"
            ))
            .await?,
            seq_of_id: prepare(format!(
                "SELECT seq FROM {ks}.message_ids WHERE conversation_id = ? AND id = ?"
            ))
            .await?,
            message_at: prepare(format!(
                "SELECT body, data FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq = ?"
            ))
            .await?,
            newest_first: prepare(format!(
                "SELECT body, data FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq < ? \
                 ORDER BY seq DESC LIMIT ?"
            ))
            .await?,
            oldest_first: prepare(format!(
                "SELECT body, data FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq > ? \
                 ORDER BY seq ASC LIMIT ?"
            ))
            .await?,
            scan_unread: prepare(format!(
                "SELECT sender_id, deleted FROM {ks}.messages \
                 WHERE conversation_id = ? AND bucket = ? AND seq > ? LIMIT ?"
            ))
            .await?,
            ids_in_bucket: prepare(format!(
                "SELECT id FROM {ks}.messages WHERE conversation_id = ? AND bucket = ?"
            ))
            .await?,
            delete_bucket: prepare(format!(
                "DELETE FROM {ks}.messages USING TIMESTAMP ? WHERE conversation_id = ? AND bucket = ?"
            ))
            .await?,
            delete_id: prepare(format!(
                "DELETE FROM {ks}.message_ids USING TIMESTAMP ? WHERE conversation_id = ? AND id = ?"
            ))
            .await?,
            delete_progress: prepare(format!(
                "DELETE FROM {ks}.conversation_progress USING TIMESTAMP ? WHERE conversation_id = ?"
            ))
            .await?,
        })
    }
}
