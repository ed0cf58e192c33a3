//! Group commit on SQLite: sends that arrive while another is being written share its
//! transaction, each in a savepoint of its own, and one commit (one sync of the WAL) makes
//! the whole group durable before any of them is acknowledged.
//!
//! Why: SQLite runs one writer at a time and `synchronous = FULL` syncs the WAL at every
//! commit, so under concurrent sends the commit was most of each write's serial part, and
//! pages every send touches (the conversation's row, feed heads) were written to the WAL
//! once per send. Nobody waits for a group to fill: a lone send commits at once, so latency
//! never grows to save work; groups form only when sends queue anyway.
//!
//! Each write runs to completion on the writer task even if its caller goes away (a
//! cancelled RPC cannot leave a savepoint half done), and its result is handed back only
//! after the group's commit: when that commit fails, every write of the group fails, and
//! none of them was acknowledged.

use std::{panic::AssertUnwindSafe, sync::Arc};

use futures::{FutureExt, future::BoxFuture};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{Error, Result};

/// Most writes one commit makes durable: bounds how long other writers (which take the
/// same lock) wait behind a group.
const MAX_GROUP: usize = 64;

/// Hands a write's result to its caller, given how the group's commit went.
type Deliver = Box<dyn FnOnce(&Settled) + Send>;

/// A write: runs in its savepoint; says whether to keep what it did, and how to deliver.
type Job =
    Box<dyn for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, (bool, Deliver)> + Send>;

/// How a group ended: committed, or failed with an error every write of it gets a copy of.
type Settled = std::result::Result<(), Failure>;

/// Why a whole group failed (none of it was committed), kept so that each of its writes
/// gets its own copy of the error. (SQLite's send writer groups the same way.)
#[derive(Debug, Clone)]
pub(super) struct Failure {
    unavailable: bool,
    message: String,
}

impl Failure {
    fn of(err: DbErr) -> Self {
        Error::from(err).into()
    }

    /// A group that failed because one of its writes panicked.
    pub(super) fn panicked() -> Self {
        Self {
            unavailable: false,
            message: "a write panicked".into(),
        }
    }

    pub(super) fn error(&self) -> Error {
        if self.unavailable {
            Error::Unavailable(self.message.clone())
        } else {
            Error::Internal(self.message.clone())
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self {
            unavailable: matches!(err, Error::Unavailable(_)),
            message: err.to_string(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The queue of writes to group, and the task that writes them.
pub(super) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// Starts the writer task. `writer` is the lock every other SQLite write takes too.
    pub(super) fn start(db: DatabaseConnection, writer: Arc<Mutex<()>>) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(db, writer, queue));
        Self { jobs }
    }

    /// Runs `work` in the next group, keeping what it did when `keep` says so (an error is
    /// never kept). Returns once the group is committed.
    pub(super) async fn write<T, F>(&self, keep: fn(&T) -> bool, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            Box::pin(async move {
                let outcome = work(txn).await;
                let kept = outcome.as_ref().is_ok_and(keep);
                let deliver: Deliver = Box::new(move |settled: &Settled| {
                    let outcome = match settled {
                        Err(failure) if kept => Err(failure.error()),
                        _ => outcome,
                    };
                    // The caller may have gone away; the write stands all the same.
                    let _ = reply.send(outcome);
                });
                (kept, deliver)
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Unavailable("the database writer has stopped".into()))?;
        result.await.map_err(|_| {
            Error::Unavailable("the write did not complete (see the server log)".into())
        })?
    }
}

/// Takes writes from `queue` one group at a time: the first that comes, and whatever queued
/// while the group was being written, up to [`MAX_GROUP`].
async fn run(
    db: DatabaseConnection,
    writer: Arc<Mutex<()>>,
    mut queue: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(first) = queue.recv().await {
        let _writer = writer.lock().await;
        let group = match db.begin().await {
            Ok(group) => group,
            Err(err) => {
                // Dropping the write tells its caller it did not happen.
                tracing::error!(error = %err, "cannot begin a write");
                continue;
            }
        };
        let mut delivers = Vec::new();
        let mut failed: Option<Failure> = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match write_one(&group, job).await {
                Ok(deliver) => delivers.push(deliver),
                Err((failure, deliver)) => {
                    delivers.extend(deliver);
                    failed = Some(failure);
                    break;
                }
            }
            if delivers.len() < MAX_GROUP {
                next = queue.try_recv().ok();
            }
        }
        let settled = match failed {
            // The group's state is unknown: none of it may stand.
            Some(failure) => {
                let _ = group.rollback().await;
                Err(failure)
            }
            None => group.commit().await.map_err(Failure::of),
        };
        drop(_writer);
        if let Err(failure) = &settled {
            tracing::error!(error = %failure.message, writes = delivers.len(), "a group of writes failed");
        }
        for deliver in delivers {
            deliver(&settled);
        }
    }
}

/// Runs one write in a savepoint of `group`. An error here (not the write's own, which
/// its savepoint undoes) means the group can no longer be trusted.
async fn write_one(
    group: &DatabaseTransaction,
    job: Job,
) -> std::result::Result<Deliver, (Failure, Option<Deliver>)> {
    let savepoint = group
        .begin()
        .await
        .map_err(|err| (Failure::of(err), None))?;
    // A panic in a write must not take the writer task (and every later write) with it.
    let Ok((keep, deliver)) = AssertUnwindSafe(job(&savepoint)).catch_unwind().await else {
        return Err((Failure::panicked(), None));
    };
    let settled = if keep {
        savepoint.commit().await
    } else {
        savepoint.rollback().await
    };
    match settled {
        Ok(()) => Ok(deliver),
        Err(err) => Err((Failure::of(err), Some(deliver))),
    }
}
