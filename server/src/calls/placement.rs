//! Which node carries a call. A call's media and signaling live on one node (its SFU
//! room, its participants' sessions and `WatchCall` streams); every other node forwards
//! the call's RPCs there. One node: it carries every call. A cluster: the carrier is
//! recorded in Redis under a key that expires unless the carrier keeps renewing it, so
//! when a node dies its calls are free to be claimed by the next node that touches them
//! (its participants join again there).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::{Pool, redis};
use uuid::Uuid;

use crate::{error::Result, redis_keys};

/// How long a claim lasts without renewal: how long after a node dies its calls wait
/// for a new carrier. Carriers renew every sweep (each second).
pub const CLAIM_TTL: Duration = Duration::from_secs(10);

/// Where a call is carried, as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carrier {
    Here,
    /// Another node, at this URL (its gRPC endpoint).
    Elsewhere(String),
}

#[async_trait]
pub trait Placement: Send + Sync {
    /// The call's carrier, this node (`me`) claiming it when no node does.
    async fn claim(&self, call: Uuid, me: &str) -> Result<Carrier>;
    /// The call's carrier, if any node carries it now.
    async fn carrier(&self, call: Uuid, me: &str) -> Result<Option<Carrier>>;
    /// Keeps this node's claims on `calls` alive; those another node took meanwhile.
    async fn renew(&self, calls: &[Uuid], me: &str) -> Result<Vec<Uuid>>;
    /// Gives up the claim on a call that ended.
    async fn release(&self, call: Uuid, me: &str) -> Result<()>;
}

/// One node: every call is here.
pub struct LocalPlacement;

#[async_trait]
impl Placement for LocalPlacement {
    async fn claim(&self, _: Uuid, _: &str) -> Result<Carrier> {
        Ok(Carrier::Here)
    }

    async fn carrier(&self, _: Uuid, _: &str) -> Result<Option<Carrier>> {
        Ok(Some(Carrier::Here))
    }

    async fn renew(&self, _: &[Uuid], _: &str) -> Result<Vec<Uuid>> {
        Ok(Vec::new())
    }

    async fn release(&self, _: Uuid, _: &str) -> Result<()> {
        Ok(())
    }
}

/// A cluster: claims in Redis (`SET NX` with an expiry; the carrier renews it).
pub struct RedisPlacement {
    pool: Pool,
    prefix: String,
}

impl RedisPlacement {
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
        }
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection> {
        self.pool.get().await.map_err(unavailable)
    }

    fn key(&self, call: Uuid) -> String {
        redis_keys::call_carrier(&self.prefix, &call.to_string())
    }
}

fn unavailable(err: impl std::fmt::Display) -> crate::error::Error {
    crate::error::Error::Unavailable(format!("call placement: {err}"))
}

fn carrier_of(node: String, me: &str) -> Carrier {
    if node == me {
        Carrier::Here
    } else {
        Carrier::Elsewhere(node)
    }
}

#[async_trait]
impl Placement for RedisPlacement {
    async fn claim(&self, call: Uuid, me: &str) -> Result<Carrier> {
        let key = self.key(call);
        let mut conn = self.connection().await?;
        // SET NX … GET: the carrier before, or nothing when this node won the claim.
        let before: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(me)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(CLAIM_TTL.as_millis().to_string())
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match before {
            None => Carrier::Here,
            Some(node) => carrier_of(node, me),
        })
    }

    async fn carrier(&self, call: Uuid, me: &str) -> Result<Option<Carrier>> {
        let mut conn = self.connection().await?;
        let node: Option<String> = redis::cmd("GET")
            .arg(self.key(call))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(node.map(|node| carrier_of(node, me)))
    }

    async fn renew(&self, calls: &[Uuid], me: &str) -> Result<Vec<Uuid>> {
        // Renewed while still this node's (or lapsed, with nobody else's since); a claim
        // another node took meanwhile is theirs: this node lost the call.
        const RENEW: &str = "local v = redis.call('GET', KEYS[1]) \
             if v == false or v == ARGV[1] then \
               redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
             return 0";
        let ttl = CLAIM_TTL.as_millis().to_string();
        let mut conn = self.connection().await?;
        let mut lost = Vec::new();
        for call in calls {
            let kept: i64 = redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(self.key(*call))
                .arg(me)
                .arg(&ttl)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if kept == 0 {
                lost.push(*call);
            }
        }
        Ok(lost)
    }

    async fn release(&self, call: Uuid, me: &str) -> Result<()> {
        let mut conn = self.connection().await?;
        // Only this node's own claim: a call another node took over stays theirs.
        const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.key(call))
            .arg(me)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
