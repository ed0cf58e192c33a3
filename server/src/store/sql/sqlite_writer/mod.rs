//! SQLite's send writer: one thread with its own connection writes plain sends (text or
//! encrypted content, no attachment, poll or call) with prepared statements, in groups
//! that share one commit.
//!
//! Why a thread of its own: through sqlx, every statement is a round trip to the
//! connection's worker thread — two context switches, and a send is about ten statements.
//! `perf` put half of a send's CPU in the kernel (mostly `finish_task_switch`) and only 2 %
//! in SQLite itself. Here a group of sends costs one wake-up in and one per sender out.
//!
//! Grouping is as in [`super::group_commit`] (which still writes the sends this one does
//! not): whatever queued while a group was written joins the next, and results are handed
//! back only after the group's commit (one WAL sync, `synchronous = FULL`) made them
//! durable. Unlike there, a send needs no savepoint of its own: it checks everything
//! before it writes anything (see `send::check`). The thread takes the same writer lock as
//! every other SQLite write, so the two paths never write at once.

mod send;

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{chat::messages::Written, group_commit::Failure};

use crate::{
    config::SqliteSync,
    domain::Time,
    error::{Error, Result},
    store::NewMessage,
};

/// Most sends one commit makes durable: bounds how long other writers wait behind a group.
const MAX_GROUP: usize = 64;

/// A plain send waiting for its group.
struct Job {
    new: NewMessage,
    now: Time,
    reply: oneshot::Sender<Result<Written>>,
}

/// The queue of plain sends, and the thread that writes them.
pub(in crate::store::sql) struct SqliteWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl SqliteWriter {
    /// Opens the database at `path` (migrated already) and starts the thread. `writer` is
    /// the lock every other SQLite write takes too.
    pub(in crate::store::sql) fn start(
        path: &Path,
        writer: Arc<Mutex<()>>,
        sync: SqliteSync,
    ) -> Result<Self> {
        let conn = open(path, sync).map_err(|err| {
            Error::Unavailable(format!("cannot open {} to write: {err}", path.display()))
        })?;
        let (jobs, queue) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, &writer, queue))
            .map_err(Error::internal)?;
        Ok(Self { jobs })
    }

    /// Whether `new` is a send this writer takes: nothing attached and nothing carried.
    pub(in crate::store::sql) fn takes(new: &NewMessage) -> bool {
        new.attachments.is_empty()
    }

    /// Writes `new` in the next group; returns once that group is committed.
    pub(in crate::store::sql) async fn send(&self, new: NewMessage, now: Time) -> Result<Written> {
        let (reply, result) = oneshot::channel();
        self.jobs
            .send(Job { new, now, reply })
            .map_err(|_| Error::Unavailable("the database writer has stopped".into()))?;
        result.await.map_err(|_| {
            Error::Unavailable("the write did not complete (see the server log)".into())
        })?
    }
}

/// The writer's connection, with the settings of every pooled one (see `sqlite_settings`).
fn open(path: &Path, sync: SqliteSync) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(PathBuf::from(path), flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )?;
    let synchronous = match sync {
        SqliteSync::Full => "FULL",
        SqliteSync::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Takes sends from `queue` one group at a time until the store goes away.
fn run(mut conn: Connection, writer: &Mutex<()>, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let _writer = writer.blocking_lock();
        let mut group = vec![first];
        while group.len() < MAX_GROUP
            && let Ok(job) = queue.try_recv()
        {
            group.push(job);
        }
        write_group(&mut conn, group);
    }
}

/// Writes `group` in one transaction and answers each of its senders after the commit.
/// A send refused by its checks wrote nothing, so the group goes on without it; a fault in
/// a send's writes (or a panic) fails the whole group, which is then rolled back.
fn write_group(conn: &mut Connection, group: Vec<Job>) {
    let mut outcomes = Vec::with_capacity(group.len());
    let settled = (|| {
        let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in &group {
            // A panic in one send must not take the thread (and every later send) with it.
            let outcome = catch_unwind(AssertUnwindSafe(|| send_one(&txn, job)))
                .map_err(|_| Failure::panicked())??;
            let kept = outcome.as_ref().is_ok_and(Written::keep);
            outcomes.push((kept, outcome));
        }
        txn.commit()?;
        Ok::<_, Failure>(())
    })();
    if let Err(failure) = &settled {
        tracing::error!(error = %failure, writes = group.len(), "a group of sends failed");
    }
    let mut outcomes = outcomes.into_iter();
    for job in group {
        let outcome = match (&settled, outcomes.next()) {
            (Ok(()), Some((_, outcome))) => outcome,
            // Refused on its own (nothing of it was to stay): its answer stands.
            (Err(_), Some((false, outcome))) => outcome,
            (Err(failure), _) => Err(failure.error()),
            (Ok(()), None) => Err(Error::internal("a send of the group was not written")),
        };
        // The caller may have gone away; the write stands all the same.
        let _ = job.reply.send(outcome);
    }
}

/// One send of a group: its sender's answer, or `Err` for a fault that fails the group.
fn send_one(txn: &Connection, job: &Job) -> std::result::Result<Result<Written>, Failure> {
    let checked = match send::check(txn, &job.new) {
        Ok(Some(checked)) => checked,
        Ok(None) => {
            let seen = "the request id was used before".to_owned();
            return Ok(Ok(Written::RequestSeen(seen)));
        }
        Err(refused) => return Ok(Err(refused)),
    };
    Ok(Ok(send::write(txn, &job.new, checked, job.now)?))
}

impl From<rusqlite::Error> for Failure {
    fn from(err: rusqlite::Error) -> Self {
        Error::from(err).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_syncs_as_configured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sync.db");
        Connection::open(&path).expect("create");
        for (sync, expected) in [(SqliteSync::Full, 2), (SqliteSync::Normal, 1)] {
            let conn = open(&path, sync).expect("open");
            let synchronous: i64 = conn
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .expect("pragma");
            assert_eq!(synchronous, expected, "{sync:?}");
        }
    }
}
