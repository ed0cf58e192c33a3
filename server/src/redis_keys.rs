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
