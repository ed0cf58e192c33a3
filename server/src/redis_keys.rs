//! Every Redis key and channel SecureConnect uses, in one place. Names are versioned
//! (`sc:v1:`) so a format change can run beside the old one during a rolling upgrade.

/// Pub/sub channel from each node to all others (JSON `Envelope`, see `bus/redis.rs`):
/// every committed event, which each node filters for the users it has streams for, and
/// every session revocation, which each node applies to its token checks.
pub const EVENTS_CHANNEL: &str = "sc:v1:events";

/// Counter of `subject`'s requests against `limit` during the Unix second `second`
/// (INCR + EXPIRE 2 s). Example: `sc:v1:rate:send:<user id>:1795900000`.
pub fn rate_counter(limit: &str, subject: &str, second: u64) -> String {
    format!("sc:v1:rate:{limit}:{subject}:{second}")
}
