//! Every Redis key and channel SecureConnect uses, in one place. Names are versioned
//! (`sc:v1:`) so a format change can run beside the old one during a rolling upgrade.

/// Pub/sub channel carrying every committed event (JSON `WireEvent`) from the node that
/// committed it to all other nodes. Each node filters for the users it has streams for.
pub const EVENTS_CHANNEL: &str = "sc:v1:events";
