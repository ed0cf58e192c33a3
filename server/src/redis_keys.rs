//! Every Redis key and channel SecureConnect uses, in one place. Each starts with the
//! deployment's `redis.key_prefix` (default `sc`), so several deployments — or test
//! servers — can share one Redis without meeting, then a format version (`v1`) so a
//! format change can run beside the old one during a rolling upgrade.

/// Pub/sub channel from each node to all others (JSON `Envelope`, see `bus/redis.rs`):
/// every session revocation, which each node applies to its token checks, and the events
/// not routed to particular nodes (recipients beyond `routes::MAX_ROUTED_RECIPIENTS`, or
/// when the route lookup failed), which each node filters for the users it streams to.
/// Example: `sc:v1:events`.
pub fn events_channel(prefix: &str) -> String {
    format!("{prefix}:v1:events")
}

/// Sliding log of `subject`'s calls against the named limit: a sorted set of call times
/// (µs), trimmed to the window on every call, expiring after one quiet window. Subjects are
/// user ids, normalised email addresses and client IPs.
/// Example: `sc:v1:rate:send:<user id>`.
pub fn rate_log(prefix: &str, limit: &str, subject: &str) -> String {
    format!("{prefix}:v1:rate:{limit}:{subject}")
}

/// The devices of `user` with an open event stream: a sorted set of session id → expiry
/// (ms since the epoch), refreshed on every heartbeat, expiring with the last device.
/// Example: `sc:v1:presence:<user id>`.
pub fn presence_devices(prefix: &str, user: &str) -> String {
    format!("{prefix}:v1:presence:{user}")
}

/// When a device of `user` was last connected (ms since the epoch: its last heartbeat or
/// goodbye), kept 30 days.
/// Example: `sc:v1:seen:<user id>`.
pub fn last_seen(prefix: &str, user: &str) -> String {
    format!("{prefix}:v1:seen:{user}")
}

/// Pub/sub channel of one node: the events for users whose streams it holds (see
/// `routes`). Example: `sc:v1:node:<node id>`.
pub fn node_channel(prefix: &str, node: &str) -> String {
    format!("{prefix}:v1:node:{node}")
}

/// The nodes holding an event stream of `user`: a sorted set of node id → expiry (ms since
/// the epoch), refreshed every few seconds by each node. Publishers send an event only to
/// its recipients' nodes. Example: `sc:v1:routes:<user id>`.
pub fn routes(prefix: &str, user: &str) -> String {
    format!("{prefix}:v1:routes:{user}")
}

/// The node carrying a call (its gRPC URL), with an expiry its carrier keeps renewing (see
/// `calls::placement`). Example: `sc:v1:call:<call id>`.
pub fn call_carrier(prefix: &str, call: &str) -> String {
    format!("{prefix}:v1:call:{call}")
}
