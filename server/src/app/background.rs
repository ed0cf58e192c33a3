//! The tasks that run beside the gRPC server (feed trimming, health, revocations, the
//! Redis bus). They keep running while connections drain, since draining streams still
//! deliver events, and are stopped afterwards one at a time in the order they were added,
//! each with its own token (the Redis bus's three share one) so that it sees the request
//! only when its turn comes.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long one task may take to notice its stop request (it finishes the round it is in,
/// such as a trim already running) before it is aborted.
const STOP_DEADLINE: Duration = Duration::from_secs(2);

/// Background tasks, stopped in the order they were added.
#[derive(Default)]
pub(super) struct Background {
    tasks: Vec<Task>,
}

struct Task {
    name: &'static str,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Background {
    /// Spawns a task through `start`, which receives the token that asks it to stop.
    pub(super) fn start(
        &mut self,
        name: &'static str,
        start: impl FnOnce(CancellationToken) -> JoinHandle<()>,
    ) {
        let stop = CancellationToken::new();
        let handle = start(stop.clone());
        self.add(name, stop, handle);
    }

    /// Adds a task already started with `stop` as its token.
    pub(super) fn add(
        &mut self,
        name: &'static str,
        stop: CancellationToken,
        handle: JoinHandle<()>,
    ) {
        self.tasks.push(Task { name, stop, handle });
    }

    pub(super) fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|task| task.name).collect()
    }

    /// Stops each task in turn and waits for it, logging each step.
    pub(super) async fn stop(self) {
        for Task {
            name,
            stop,
            mut handle,
        } in self.tasks
        {
            stop.cancel();
            match tokio::time::timeout(STOP_DEADLINE, &mut handle).await {
                Ok(Ok(())) => tracing::info!("stopped {name}"),
                Ok(Err(err)) => tracing::warn!(error = %err, "{name} had already failed"),
                Err(_) => {
                    handle.abort();
                    tracing::warn!("{name} did not stop within {STOP_DEADLINE:?}; aborted");
                }
            }
        }
    }

    /// Ends every task at once, like a crash.
    pub(super) fn abort(self) {
        for task in self.tasks {
            task.stop.cancel();
            task.handle.abort();
        }
    }
}
