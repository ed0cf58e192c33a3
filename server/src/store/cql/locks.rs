//! Per-conversation projection locks on this node.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use uuid::Uuid;

/// One projector per conversation on this node. Without it, concurrent sends to one
/// conversation each find the others' events unapplied and each re-apply the whole range
/// — work that grows with the square of the concurrency, and collapsed throughput in the
/// load test. Queued behind the lock, a projector usually finds its event applied already.
#[derive(Default)]
pub(super) struct ProjectionLocks {
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl ProjectionLocks {
    pub(super) async fn lock(&self, conversation: Uuid) -> ProjectionGuard<'_> {
        let lock = Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(conversation)
                .or_default(),
        );
        let guard = lock.clone().lock_owned().await;
        ProjectionGuard {
            locks: self,
            conversation,
            _guard: guard,
        }
    }
}

/// Held while projecting one conversation; forgets the lock when nobody else wants it.
pub struct ProjectionGuard<'a> {
    locks: &'a ProjectionLocks,
    conversation: Uuid,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for ProjectionGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self
            .locks
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Two references while only this guard holds it: the map's and the guard's.
        if locks
            .get(&self.conversation)
            .is_some_and(|lock| Arc::strong_count(lock) <= 2)
        {
            locks.remove(&self.conversation);
        }
    }
}
