//! The call store contract.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    domain::{Role, Time, call::Call},
    error::Result,
    store::{Committed, RequestKey},
};

/// A change to a call, given the acting member's role: true when it changed the call.
/// The store runs it on the call as stored, locked, and keeps what it leaves.
pub type CallChange<'a> = &'a (dyn Fn(&mut Call, Role) -> Result<bool> + Send + Sync);

/// Who changes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallActor {
    /// A member of the call's conversation (anyone else: `NOT_FOUND`), with their role.
    Member(Uuid),
    /// The call itself, for this user (no longer a member: taken out of the call); they
    /// are named as the cause of a `CallEnded`.
    Call(Uuid),
}

/// A call to start (the caller checked as allowed by the service).
#[derive(Debug, Clone)]
pub struct NewCall {
    pub conversation_id: Uuid,
    pub caller: Uuid,
    pub video: bool,
    /// When the ring times out.
    pub ring_until: Time,
}

/// Calls, their records and the one going on per conversation. Every write checks,
/// inside itself, that the actor is a member of the call's conversation (`NOT_FOUND`
/// otherwise), with the call locked: concurrent joins and leaves of one call queue.
///
/// A call lives in its conversation's timeline: starting it posts its message (ringing
/// the members), and its end is a `CallEnded` event in the same write.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Starts the call and posts its message, in one write: `CALL_IN_PROGRESS` while the
    /// conversation has a call on, `PERMISSION_DENIED` across a block in a direct
    /// conversation (`request` as for a send: a retry gets the first call back).
    async fn start_call(
        &self,
        new: NewCall,
        request: RequestKey,
        now: Time,
    ) -> Result<Committed<Call>>;
    /// The call, unless it does not exist.
    async fn call(&self, id: Uuid) -> Result<Option<Call>>;
    /// Those of `ids` that exist, in no particular order.
    async fn calls_by_id(&self, ids: &[Uuid]) -> Result<Vec<Call>>;
    /// Applies `change`, by `actor`; when it ends the call, the `CallEnded` event is
    /// written with it. Nothing is written when `change` returns false.
    async fn update_call(
        &self,
        id: Uuid,
        actor: CallActor,
        now: Time,
        change: CallChange<'_>,
    ) -> Result<Committed<Call>>;
    /// Runs `change` (the ring timing out) on those of `calls` whose ring is due, and
    /// returns those it changed: with several nodes calling it at once, each call's ring
    /// times out on exactly one of them.
    async fn ring_due(
        &self,
        calls: &[Uuid],
        now: Time,
        change: CallChange<'_>,
    ) -> Result<Vec<Committed<Call>>>;
    /// Calls going on now (at most `limit`), oldest first.
    async fn active_calls(&self, limit: u64) -> Result<Vec<Uuid>>;
    /// Calls newest first, strictly older than `before` (a call's start and id): of
    /// `conversation`, or — when `None` — every call `user` was rung for or joined.
    async fn calls(
        &self,
        conversation: Option<Uuid>,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Call>>;
}
