//! Every Redis key and channel SecureConnect uses, in one place. Each starts with the
//! deployment's `redis.key_prefix` (default `sc`), so several deployments — or test
//! servers — can share one Redis without meeting, then a format version (`v1`) so a
//! format change can run beside the old one during a rolling upgrade.

/// Pub/sub channel from each node to all others (JSON `Envelope`, see `bus/redis.rs`):
/// every committed event, which each node filters for the users it has streams for, and
/// every session revocation, which each node applies to its token checks.
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

/// When `user`'s last device disconnected (ms since the epoch), kept 30 days.
/// Example: `sc:v1:seen:<user id>`.
pub fn last_seen(prefix: &str, user: &str) -> String {
    format!("{prefix}:v1:seen:{user}")
}
