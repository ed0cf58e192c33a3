//! A Redis sorted set whose members expire: each member's score is its expiry (ms since
//! the epoch). Presence keeps a user's devices in one, stream routing the nodes holding a
//! user's streams; a member whose owner died without a goodbye lapses by itself.

use deadpool_redis::redis;

/// Queues on `pipe`: (re)add `member` until `now_ms + ttl_ms`, drop members already
/// expired, and let the whole key expire with its last member.
pub fn renew(pipe: &mut redis::Pipeline, key: &str, member: &str, now_ms: i64, ttl_ms: i64) {
    pipe.cmd("ZADD")
        .arg(key)
        .arg(now_ms.saturating_add(ttl_ms))
        .arg(member)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(key)
        .arg("-inf")
        .arg(now_ms)
        .ignore()
        .cmd("PEXPIRE")
        .arg(key)
        .arg(ttl_ms)
        .ignore();
}
