//! The SQL store (sea-orm): SQLite for the embedded default, PostgreSQL in production.

use std::{collections::HashMap, sync::Arc, time::Duration};

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect, Statement, Value,
    sea_query::{Expr, Query},
};
use sea_orm_migration::MigratorTrait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use super::cql::CqlHistory;
use crate::{
    config::{DatabaseConfig, SqliteSync},
    domain::{Event, Message, Published, Time},
    error::{Error, Result},
};

mod accounts;
mod calls;
mod chat;
mod contacts;
mod convert;
mod drive;
pub mod entities;
mod group_commit;
mod history;
mod migration;
mod paging;
mod polls;
mod requests;
mod retention;
mod shared_timeline;
mod sqlite_reader;
mod sqlite_writer;

pub use retention::Trimmed;

use entities::{events, feed, users};
use group_commit::GroupCommit;
use history::{CqlProjection, MessageHistory, SqlHistory};
use sqlite_reader::SqliteReader;
use sqlite_writer::SqliteWriter;

/// The SQL implementation of every store trait.
pub struct SqlStore {
    db: DatabaseConnection,
    /// SQLite allows one writer at a time and fails (rather than waits) when a read
    /// transaction tries to upgrade, so writes on SQLite queue here. It also keeps
    /// `seq` allocation and feed fan-out trivially serial. `None` on PostgreSQL, where
    /// row locks do this job.
    writer: Option<Arc<Mutex<()>>>,
    /// SQLite's sends, written in groups that share a commit (`None` on PostgreSQL, which
    /// groups concurrent commits itself).
    group_commit: Option<GroupCommit>,
    /// SQLite's plain sends (nothing attached or carried) with message history in SQL,
    /// written on a thread of their own (`None` otherwise).
    sqlite_writer: Option<SqliteWriter>,
    /// Pages of messages on SQLite with message history in SQL (`None` otherwise).
    sqlite_reader: Option<Arc<SqliteReader>>,
    /// Where message history lives: the `messages` table, or CQL in cluster mode.
    history: Arc<dyn MessageHistory>,
    /// Conversations with more members than this are fanned out on read.
    fanout_on_read_members: usize,
}

impl SqlStore {
    /// Connects, and runs pending migrations. With `cql`, message history goes there
    /// instead of the `messages` table.
    pub async fn connect(
        url: &str,
        config: &DatabaseConfig,
        cql: Option<Arc<CqlHistory>>,
    ) -> Result<Arc<Self>> {
        let sync = config.sqlite_sync;
        let mut options = ConnectOptions::new(url.to_owned());
        // (`Ord::max`, not sea-query's `ExprTrait::max`, which is also in scope here.)
        let wait = Duration::from_secs(Ord::max(config.acquire_timeout_secs, 1));
        let statement_timeout = format!("{}s", Ord::max(config.statement_timeout_secs, 1));
        options
            .max_connections(Ord::max(config.max_connections, 1))
            .acquire_timeout(wait)
            .connect_timeout(wait)
            // A pooled connection to a database server that restarted is dead: check
            // before use so calls recover by themselves instead of failing once per stale
            // connection. A SQLite file cannot restart under an open connection, and the
            // check is a round trip to its connection's thread each time (two context
            // switches: a sixth of a `ListMessages`'s CPU, `perf`).
            .test_before_acquire(!url.starts_with("sqlite"))
            .map_sqlx_postgres_opts(move |pg| {
                pg.options([("statement_timeout", statement_timeout.as_str())])
            })
            .map_sqlx_sqlite_opts(move |sqlite| sqlite_settings(sqlite, sync))
            .sqlx_logging(false);
        let db = Database::connect(options)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to the database: {e}")))?;
        let writer =
            (db.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        let group_commit = writer
            .as_ref()
            .map(|writer| GroupCommit::start(db.clone(), Arc::clone(writer)));
        migration::Migrator::up(&db, None).await?;
        let sqlite_file = writer.as_ref().map(|_| sqlite_file(url)).transpose()?;
        let (sqlite_writer, sqlite_reader) = match (&writer, &sqlite_file, &cql) {
            (Some(writer), Some(file), None) => (
                Some(SqliteWriter::start(file, Arc::clone(writer), sync)?),
                Some(SqliteReader::new(file)),
            ),
            _ => (None, None),
        };
        let history: Arc<dyn MessageHistory> = match cql {
            Some(cql) => Arc::new(CqlProjection::new(db.clone(), cql)),
            None => Arc::new(SqlHistory::new(db.clone())),
        };
        Ok(Arc::new(Self {
            db,
            writer,
            group_commit,
            sqlite_writer,
            sqlite_reader,
            history,
            fanout_on_read_members: usize::try_from(config.fanout_on_read_members)
                .unwrap_or(usize::MAX),
        }))
    }

    /// Whether the database answers, for health checks. (Not the CQL history: without
    /// it a node still signs in, sends and streams, and it is shared by every node, so
    /// reporting it would take the whole cluster out of the load balancer.)
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    /// The conversation's latest committed `seq`, when the history needs it for reads
    /// (0 otherwise, and when the conversation does not exist).
    async fn committed_seq(&self, conversation: Uuid) -> Result<u64> {
        if !self.history.is_projection() {
            return Ok(0);
        }
        match self.find_conversation(&self.db, conversation).await {
            Ok(found) => Ok(found.last_seq),
            Err(Error::NotFound(_)) => Ok(0),
            // Not 0: that would read as "no history" while the database is away.
            Err(err) => Err(err),
        }
    }

    /// A message by id, outside any write.
    async fn find_message(&self, conversation: Uuid, id: Uuid) -> Result<Option<Message>> {
        let last_seq = self.committed_seq(conversation).await?;
        self.history.message(conversation, id, last_seq).await
    }

    /// Held for the duration of a write (SQLite only).
    async fn write_guard(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }
}

/// The database file a `sqlite:` URL names.
fn sqlite_file(url: &str) -> Result<std::path::PathBuf> {
    let options: SqliteConnectOptions = url
        .parse()
        .map_err(|err| Error::Unavailable(format!("not a SQLite URL: {err}")))?;
    Ok(options.get_filename().to_owned())
}

/// Every SQLite connection's settings (each pooled connection runs them when it opens).
fn sqlite_settings(options: SqliteConnectOptions, sync: SqliteSync) -> SqliteConnectOptions {
    options
        // Readers run beside the writer. By default commits are `synchronous = FULL`: the
        // WAL is fsynced before a commit returns, so an acknowledged send survives power
        // loss, not only a crash of this process (`NORMAL`, which operators may choose,
        // survives only the latter).
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match sync {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        })
        // Covers the moments another connection holds the write lock.
        .busy_timeout(Duration::from_secs(5))
        // Statement journals (kept so one statement of a transaction can be undone, e.g.
        // a fan-out's multi-row update) in memory rather than temporary files: they are
        // never needed after a crash. With files they were 10% of the CPU of a send into
        // a 1,000-member group (`perf`); in memory, 3%.
        .pragma("temp_store", "MEMORY")
}

/// A raw statement written once for every backend: `sql`'s `?` placeholders, numbered
/// as PostgreSQL wants them there.
pub(super) fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            let mut numbered = String::with_capacity(sql.len() + 16);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    numbered.push_str(&format!("${n}"));
                } else {
                    numbered.push(c);
                }
            }
            numbered
        }
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// A stored event row's event: `body` in a versioned format, or the v0 JSON `payload` of
/// rows written before formats were versioned.
fn stored_event(payload: &str, body: Option<&[u8]>) -> Result<Event> {
    crate::format::decode_event(body.unwrap_or(payload.as_bytes()))
}

/// Stores `event` and appends it to each recipient's feed, or once on the shared
/// timeline for a conversation fanned out on read, in the caller's transaction.
async fn append_event<C: ConnectionTrait>(
    txn: &C,
    event: Event,
    recipients: &[Uuid],
    now: Time,
) -> Result<Published> {
    let on_timeline = match &event {
        Event::Conversation {
            conversation_id, ..
        } => shared_timeline::fanned_out_on_read(txn, *conversation_id).await?,
        _ => false,
    };
    file_event(txn, event, recipients, now, on_timeline).await
}

/// [`append_event`] for a caller that already read whether the event's conversation is
/// fanned out on read (a send reads it while numbering the message).
async fn file_event<C: ConnectionTrait>(
    txn: &C,
    event: Event,
    recipients: &[Uuid],
    now: Time,
    on_timeline: bool,
) -> Result<Published> {
    let (conversation_id, seq) = match &event {
        Event::Conversation {
            conversation_id,
            seq,
            ..
        } => (Some(*conversation_id), Some(convert::seq_to_db(*seq))),
        _ => (None, None),
    };
    let body = crate::format::encode_event(&event);
    if let Some(conversation) = conversation_id
        && on_timeline
    {
        return append_to_timeline(txn, conversation, event, seq, body, recipients, now).await;
    }
    let inserted = events::Entity::insert(events::ActiveModel {
        conversation_id: Set(conversation_id),
        seq: Set(seq),
        payload: Set(String::new()),
        body: Set(Some(body)),
        create_time: Set(now),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    let event_id = inserted.last_insert_id;

    let mut recipients = recipients.to_vec();
    recipients.sort();
    recipients.dedup();
    if txn.get_database_backend() == DbBackend::Postgres {
        // Take the recipients' row locks in id order: concurrent fan-outs to overlapping
        // member sets then queue behind each other instead of deadlocking. (SQLite runs one
        // writer at a time and has no row locks.)
        users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::Id.is_in(recipients.iter().copied()))
            .order_by_asc(users::Column::Id)
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .all(txn)
            .await?;
    }
    // Each recipient's next feed position, taken and read back in one statement.
    let advance = Query::update()
        .table(users::Entity)
        .value(
            users::Column::FeedSeq,
            Expr::col(users::Column::FeedSeq).add(1),
        )
        .and_where(users::Column::Id.is_in(recipients.iter().copied()))
        .returning(Query::returning().columns([users::Column::Id, users::Column::FeedSeq]))
        .to_owned();
    let positions = txn
        .query_all(&advance)
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect::<Result<Vec<(Uuid, i64)>>>()?;
    if !positions.is_empty() {
        feed::Entity::insert_many(
            positions
                .iter()
                .map(|&(user_id, feed_seq)| feed::ActiveModel {
                    user_id: Set(user_id),
                    feed_seq: Set(feed_seq),
                    event_id: Set(event_id),
                }),
        )
        .exec(txn)
        .await?;
    }
    Ok(Published {
        event: Arc::new(event),
        recipients: positions
            .into_iter()
            .map(|(user, seq)| (user, convert::seq_from_db(seq)))
            .collect::<HashMap<_, _>>(),
        timeline: None,
    })
}

/// Stores the event of a conversation fanned out on read once, at the shared timeline's
/// next position, keeping the members' ranges in step when it changes who they are (see
/// `shared_timeline`).
async fn append_to_timeline<C: ConnectionTrait>(
    txn: &C,
    conversation: Uuid,
    event: Event,
    seq: Option<i64>,
    body: Vec<u8>,
    recipients: &[Uuid],
    now: Time,
) -> Result<Published> {
    let position = shared_timeline::take_position(txn).await?;
    let membership = shared_timeline::changes_membership(&event);
    let opens = if membership {
        shared_timeline::open_ranges(txn, conversation, position, recipients).await?
    } else {
        false
    };
    events::Entity::insert(events::ActiveModel {
        conversation_id: Set(Some(conversation)),
        seq: Set(seq),
        payload: Set(String::new()),
        body: Set(Some(body)),
        create_time: Set(now),
        position: Set(Some(convert::seq_to_db(position))),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    if membership {
        let deleted = matches!(
            &event,
            Event::Conversation {
                change: crate::domain::Change::Deleted,
                ..
            }
        );
        shared_timeline::close_ranges(txn, conversation, position, deleted).await?;
    }
    Ok(Published {
        event: Arc::new(event),
        recipients: recipients.iter().map(|&user| (user, 0)).collect(),
        timeline: Some(crate::domain::TimelineSpot { position, opens }),
    })
}

#[cfg(test)]
mod tests {
    use sqlx::{ConnectOptions, Connection};

    use super::*;

    #[tokio::test]
    async fn pooled_sqlite_connections_sync_as_configured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("sync.db").display());
        for (sync, expected) in [(SqliteSync::Full, 2), (SqliteSync::Normal, 1)] {
            let options: SqliteConnectOptions = url.parse().expect("url");
            let mut conn = sqlite_settings(options, sync)
                .connect()
                .await
                .expect("connect");
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut conn)
                .await
                .expect("pragma");
            assert_eq!(synchronous, expected, "{sync:?}");
            conn.close().await.expect("close");
        }
    }
}
