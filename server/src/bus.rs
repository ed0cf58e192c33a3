//! The event bus: how committed events reach the streams. In-process here (tokio
//! broadcast); a cluster implementation relays the same `Published` values between nodes.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::domain::Published;

/// Fan-out of committed events to every open stream on this node.
pub trait EventBus: Send + Sync {
    /// Hands a committed event to the streams. Never blocks: a stream that falls behind
    /// is cut off and resumes from the store.
    fn publish(&self, event: Published);
    /// A receiver of everything published from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Published>>;
}

/// The embedded bus: one broadcast channel in this process.
pub struct LocalBus {
    sender: broadcast::Sender<Arc<Published>>,
}

impl LocalBus {
    /// `capacity` bounds how far any stream may lag before it is cut off.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(16));
        Self { sender }
    }
}

impl EventBus for LocalBus {
    fn publish(&self, event: Published) {
        // An error only means no stream is open right now; the store has the event.
        let _ = self.sender.send(Arc::new(event));
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }
}
