//! The call service: each RPC's rules on top of the store (the record), the rooms (who
//! is connected here) and the SFU (the media). Every method checks membership of the
//! call's conversation first: to anyone else a call does not exist (`NOT_FOUND`).
//!
//! A change to a call is written to the store, then told to the call's watchers here
//! and, as a `CallUpdated` signal, to every member's event stream.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    ice,
    lifecycle::CallError,
    placement::{Carrier, Placement},
    rooms::{CallView, Closing, MediaState, Rooms, WatchItem},
};
use crate::{
    bus::EventBus,
    chat::request_ids::Fingerprint,
    config::{CallsConfig, LimitsConfig},
    domain::{CallSignal, ConversationKind, Role, Signal, Time, call::Call},
    error::{Error, Reason, Result},
    paging,
    ratelimit::RateLimiter,
    sfu::{MediaKind, PeerEvent, Quality, Sfu, SfuError},
    store::{
        CallActor, CallChange, CallStore, ChatStore, Committed, NewCall, RequestKind, UserStore,
    },
    validate::{self, Violations},
};

/// How long a participant may stay joined without connecting their media.
const CONNECT_GRACE: Duration = Duration::from_secs(30);
/// The longest SDP taken (browsers' offers are a few KiB; a call of fifty with simulcast
/// stays far below): parsing runs on the SFU's task, which must never chew on megabytes.
const MAX_SDP_BYTES: usize = 64 * 1024;

/// Signaling and media-state changes one user may send, across nodes: far above what a
/// client negotiating in earnest sends, far below what would keep the SFU busy.
const SIGNAL_LIMIT: crate::ratelimit::Limit = crate::ratelimit::Limit {
    name: "call-signal",
    max: 100,
    window: Duration::from_secs(10),
};

/// How often a node looks for calls nobody carries (their node died, or this one
/// restarted) and for participants its calls lost.
const ORPHAN_PERIOD: Duration = Duration::from_secs(5);

/// A STUN or TURN server for clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// What a participant sends over `SendSignal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSignal {
    Offer(String),
    Answer { offer_id: u64, sdp: String },
    Candidate(String),
}

/// The SFU's reply to a participant's offer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignalReply {
    pub answer: String,
    pub void_up_to: u64,
}

/// Input of `list`.
#[derive(Debug, Clone, Default)]
pub struct CallPage {
    pub conversation_id: String,
    pub page_size: i32,
    pub page_token: String,
}

pub struct Calls {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CallStore>,
    chat: Arc<dyn ChatStore>,
    users: Arc<dyn UserStore>,
    bus: Arc<dyn EventBus>,
    limiter: Arc<dyn RateLimiter>,
    limits: LimitsConfig,
    config: CallsConfig,
    sfu: Sfu,
    rooms: Rooms,
    placement: Arc<dyn Placement>,
    /// This node's gRPC URL, as other nodes reach it.
    me: String,
    /// The calls this node carries.
    carried: Mutex<HashSet<Uuid>>,
    /// When the last look for orphaned calls was.
    orphans_checked: Mutex<Option<Instant>>,
}

/// What `Calls::new` needs besides the stores.
pub struct CallsParts {
    pub sfu: Sfu,
    pub placement: Arc<dyn Placement>,
    /// This node's gRPC URL, as other nodes reach it.
    pub node_url: String,
}

impl Calls {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn CallStore>,
        chat: Arc<dyn ChatStore>,
        users: Arc<dyn UserStore>,
        bus: Arc<dyn EventBus>,
        limiter: Arc<dyn RateLimiter>,
        limits: LimitsConfig,
        config: CallsConfig,
        parts: CallsParts,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                chat,
                users,
                bus,
                limiter,
                limits,
                config,
                sfu: parts.sfu,
                rooms: Rooms::default(),
                placement: parts.placement,
                me: parts.node_url,
                carried: Mutex::new(HashSet::new()),
                orphans_checked: Mutex::new(None),
            }),
        }
    }

    /// Which node carries the call (`who` may see it): this one claims it when none does.
    /// The RPCs that touch a call's sessions run on its carrier.
    pub async fn carrier(&self, who: Uuid, call_id: &str) -> Result<Carrier> {
        let inner = &self.inner;
        let id = parse_call_id(call_id)?;
        // A session here means this node carries the call (it closes them if it loses it).
        if inner.rooms.has(id, who) {
            return Ok(Carrier::Here);
        }
        let call = inner.visible(who, id).await?;
        if call.is_over() {
            // Nothing left to carry: any node answers (with CALL_ENDED).
            return Ok(Carrier::Here);
        }
        let carrier = inner.placement.claim(id, &inner.me).await?;
        if carrier == Carrier::Here {
            inner.carry(id);
        }
        Ok(carrier)
    }

    /// The SFU's media address (for logs and tests).
    pub fn media_addr(&self) -> std::net::SocketAddr {
        self.inner.sfu.media_addr()
    }

    pub async fn start(
        &self,
        who: Uuid,
        conversation_id: &str,
        video: Option<bool>,
        request_id: String,
    ) -> Result<(CallView, Vec<IceServer>)> {
        let inner = &self.inner;
        let mut v = Violations::new();
        let conversation_id = v.id("conversation_id", conversation_id);
        if video.is_none() {
            v.add("media", "required: CALL_MEDIA_AUDIO or CALL_MEDIA_VIDEO");
        }
        validate::request_id(&mut v, "request_id", &request_id, false);
        v.finish()?;
        let (Some(conversation_id), Some(video)) = (conversation_id, video) else {
            return Err(Error::NotFound("conversation"));
        };
        let request_id = if request_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            request_id
        };
        let request = Fingerprint::of("call")
            .id(conversation_id)
            .part(&[u8::from(video)])
            .key(who, RequestKind::Message, request_id);
        // A call posts a message: it counts against the caller's allowance.
        inner
            .limiter
            .check(crate::chat::send_limit(&inner.limits), &who.to_string())
            .await?;
        let now = chrono::Utc::now();
        let new = NewCall {
            conversation_id,
            caller: who,
            video,
            ring_until: now + inner.ring(),
        };
        let committed = inner.store.start_call(new, request, now).await?;
        let fresh = committed.published.is_some();
        let call = crate::bus::publish_committed(&*inner.bus, committed);
        // A new call is carried where it started (a retry's, wherever it is carried).
        if let Carrier::Elsewhere(node) = inner.placement.claim(call.id, &inner.me).await? {
            return Err(Error::Unavailable(format!(
                "call {} is carried by {node}: join it there",
                call.id
            )));
        }
        inner.carry(call.id);
        // The caller is in the call from the start (a retry keeps the session it has).
        let replaced = (fresh || !inner.rooms.has(call.id, who))
            .then(|| inner.rooms.open(call.id, who))
            .flatten();
        if let Some(old) = replaced {
            inner.leave_sfu(old).await;
        }
        Ok((inner.view(call), inner.ice_servers(who)))
    }

    pub async fn join(&self, who: Uuid, call_id: &str) -> Result<(CallView, Vec<IceServer>)> {
        let inner = &self.inner;
        let id = parse_call_id(call_id)?;
        let call = inner.visible(who, id).await?;
        let conversation = inner
            .chat
            .conversation(call.conversation)
            .await?
            .ok_or(Error::NotFound("call"))?;
        if conversation.kind == ConversationKind::Direct {
            let peer = call.members.keys().find(|m| **m != who).copied();
            if let Some(peer) = peer
                && inner.users.is_blocked_between(who, peer).await?
            {
                return Err(Error::PermissionDenied {
                    reason: Reason::Blocked,
                    message: "a block between you stops this call",
                });
            }
        }
        let max = usize::try_from(inner.config.max_participants).unwrap_or(usize::MAX);
        let now = chrono::Utc::now();
        let joining = move |call: &mut Call, _: Role| {
            let before = call.clone();
            call.join(who, max, now).map_err(refused)?;
            Ok(*call != before)
        };
        let call = inner.update(id, who, now, &joining).await?;
        // A new session, even when already joined: another device, or a reconnect.
        if let Some(old) = inner.rooms.open(id, who) {
            inner.leave_sfu(old).await;
        }
        inner.told(&call).await;
        Ok((inner.view(call), inner.ice_servers(who)))
    }

    pub async fn decline(&self, who: Uuid, call_id: &str) -> Result<CallView> {
        let inner = &self.inner;
        let id = parse_call_id(call_id)?;
        let now = chrono::Utc::now();
        let declining = move |call: &mut Call, _: Role| {
            let before = call.clone();
            call.decline(who, now).map_err(refused)?;
            Ok(*call != before)
        };
        let call = inner.update(id, who, now, &declining).await?;
        inner.after_change(&call).await;
        Ok(inner.view(call))
    }

    pub async fn leave(&self, who: Uuid, call_id: &str) -> Result<CallView> {
        let id = parse_call_id(call_id)?;
        self.inner.leave(who, id, Closing::Left).await
    }

    pub async fn end(&self, who: Uuid, call_id: &str) -> Result<CallView> {
        let inner = &self.inner;
        let id = parse_call_id(call_id)?;
        let now = chrono::Utc::now();
        let ending = move |call: &mut Call, role: Role| {
            if call.is_over() {
                return Ok(false);
            }
            call.end(who, role >= Role::Admin, now).map_err(refused)?;
            Ok(true)
        };
        let call = inner.update(id, who, now, &ending).await?;
        inner.after_change(&call).await;
        Ok(inner.view(call))
    }

    pub async fn get(&self, who: Uuid, call_id: &str) -> Result<CallView> {
        let id = parse_call_id(call_id)?;
        let call = self.inner.visible(who, id).await?;
        Ok(self.inner.view(call))
    }

    pub async fn list(&self, who: Uuid, page: CallPage) -> Result<(Vec<CallView>, String)> {
        let inner = &self.inner;
        let mut v = Violations::new();
        let conversation = if page.conversation_id.is_empty() {
            None
        } else {
            v.id("conversation_id", &page.conversation_id)
        };
        let size = v.page_size("page_size", page.page_size, 50, 200);
        v.finish()?;
        let before = paging::decode_time_key("page_token", &page.page_token)?;
        if let Some(conversation) = conversation {
            inner.member(conversation, who).await?;
        }
        let calls = inner.store.calls(conversation, who, before, size).await?;
        let next = paging::next_token(&calls, size, |c| paging::encode_time_key(c.started, c.id));
        Ok((calls.into_iter().map(|c| inner.view(c)).collect(), next))
    }

    /// Each of the calls `ids` as it is now (the caller has checked that the reader may
    /// see them: they are the calls of messages the reader may read), by call id.
    pub async fn views_by_id(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, CallView>> {
        let calls = self.inner.store.calls_by_id(ids).await?;
        Ok(calls
            .into_iter()
            .map(|call| (call.id, self.inner.view(call)))
            .collect())
    }

    /// The call's stream for `who`, a participant: the call as it is first.
    pub async fn watch(&self, who: Uuid, call_id: &str) -> Result<mpsc::Receiver<WatchItem>> {
        let inner = &self.inner;
        let id = parse_call_id(call_id)?;
        let call = inner.visible(who, id).await?;
        let receiver = inner.rooms.watch(id, who).ok_or_else(not_in_call)?;
        inner
            .rooms
            .send(id, who, WatchItem::Call(Box::new(inner.view(call))));
        Ok(receiver)
    }

    pub async fn signal(
        &self,
        who: Uuid,
        call_id: &str,
        signal: Option<ClientSignal>,
    ) -> Result<SignalReply> {
        let inner = &self.inner;
        let id = parse_call_id(call_id)?;
        let Some(signal) = signal else {
            return Err(Error::invalid(
                "signal",
                "required: offer, answer or ice_candidate",
            ));
        };
        let sdp_len = match &signal {
            ClientSignal::Offer(sdp) => Some(("offer", sdp.len())),
            ClientSignal::Answer { sdp, .. } => Some(("answer.sdp", sdp.len())),
            ClientSignal::Candidate(_) => None,
        };
        if let Some((field, len)) = sdp_len
            && len > MAX_SDP_BYTES
        {
            return Err(Error::invalid(
                field,
                format!("at most {MAX_SDP_BYTES} bytes of SDP"),
            ));
        }
        let (generation, peer) = inner.session(who, id).await?;
        inner.limiter.check(SIGNAL_LIMIT, &who.to_string()).await?;
        match (signal, peer) {
            (ClientSignal::Offer(sdp), None) => {
                let peer = Uuid::new_v4();
                let (events, receiver) = mpsc::channel(64);
                let answer = inner
                    .sfu
                    .join(id, peer, sdp, events)
                    .await
                    .map_err(|e| sfu_error("offer", e))?;
                if !inner.rooms.set_peer(id, who, generation, peer) {
                    // Replaced or left meanwhile: this connection is not wanted.
                    inner.leave_sfu(peer).await;
                    return Err(not_in_call());
                }
                tokio::spawn(forward_peer_events(
                    Arc::downgrade(&self.inner),
                    id,
                    who,
                    peer,
                    receiver,
                ));
                inner.told_watchers(id).await;
                Ok(SignalReply {
                    answer,
                    void_up_to: 0,
                })
            }
            (ClientSignal::Offer(sdp), Some(peer)) => {
                let renegotiated = inner
                    .sfu
                    .renegotiate(peer, sdp)
                    .await
                    .map_err(|e| sfu_error("offer", e))?;
                Ok(SignalReply {
                    answer: renegotiated.answer,
                    void_up_to: renegotiated.void_up_to,
                })
            }
            (ClientSignal::Answer { offer_id, sdp }, Some(peer)) => {
                inner
                    .sfu
                    .answer(peer, offer_id, sdp)
                    .await
                    .map_err(|e| sfu_error("answer", e))?;
                Ok(SignalReply::default())
            }
            (ClientSignal::Answer { .. }, None) => Err(Error::FailedPrecondition {
                reason: Reason::StaleOffer,
                message: "no offer of the SFU's is waiting: send your offer first",
            }),
            (ClientSignal::Candidate(candidate), _) => {
                check_candidate(&candidate)?;
                Ok(SignalReply::default())
            }
        }
    }

    pub async fn update_media(
        &self,
        who: Uuid,
        call_id: &str,
        media: Option<MediaState>,
        quality: Option<Quality>,
    ) -> Result<CallView> {
        let inner = &self.inner;
        let id = parse_call_id(call_id)?;
        let Some(media) = media else {
            return Err(Error::invalid("media_state", "required"));
        };
        let (_, peer) = inner.session(who, id).await?;
        inner.limiter.check(SIGNAL_LIMIT, &who.to_string()).await?;
        if let Some(peer) = peer {
            let sfu = &inner.sfu;
            let muting = [
                (MediaKind::Audio, media.audio_muted),
                // A screen share is video too: it flows while the camera is off.
                (MediaKind::Video, media.video_muted && !media.screen_sharing),
            ];
            for (kind, muted) in muting {
                sfu.set_muted(peer, kind, muted)
                    .await
                    .map_err(|e| sfu_error("media_state", e))?;
            }
            if let Some(quality) = quality {
                sfu.set_quality(peer, quality)
                    .await
                    .map_err(|e| sfu_error("receive_quality", e))?;
            }
        }
        inner.rooms.set_media(id, who, media);
        let call = inner.store.call(id).await?.ok_or(Error::NotFound("call"))?;
        let view = inner.view(call);
        inner
            .rooms
            .broadcast(id, &WatchItem::Call(Box::new(view.clone())));
        Ok(view)
    }

    /// Keeps this node's claims on its calls, times out their rings that are due (each
    /// once, even against another node), removes participants who joined and never
    /// connected, and every few seconds takes over calls nobody carries and lets go of
    /// participants its calls lost. The number of rings timed out.
    pub async fn sweep(&self, now: Time) -> Result<usize> {
        let inner = &self.inner;
        let carried = inner.carried_ids();
        for lost in inner.placement.renew(&carried, &inner.me).await? {
            tracing::warn!(call = %lost, "another node took over a call carried here");
            inner.uncarry(lost);
            for peer in inner.rooms.close_all(lost, Closing::Shutdown) {
                inner.leave_sfu(peer).await;
            }
        }
        let ring = inner.ring();
        let timing_out = move |call: &mut Call, _: Role| Ok(call.ring_timeout(ring, now));
        let changed = inner
            .store
            .ring_due(&inner.carried_ids(), now, &timing_out)
            .await?;
        let count = changed.len();
        for committed in changed {
            let call = crate::bus::publish_committed(&*inner.bus, committed);
            inner.after_change(&call).await;
        }
        for (call, user) in inner.rooms.unconnected(CONNECT_GRACE) {
            if let Err(err) = inner.leave(user, call, Closing::MediaLost).await {
                tracing::debug!(%call, %user, %err, "removing an unconnected participant");
            }
        }
        if inner.orphan_check_due() {
            inner.adopt_orphans(now).await?;
        }
        Ok(count)
    }

    /// Tells every watcher this node is going away, and ends their media.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        for call in inner.rooms.calls() {
            for peer in inner.rooms.close_all(call, Closing::Shutdown) {
                inner.leave_sfu(peer).await;
            }
        }
    }
}

impl Inner {
    /// How long a call rings.
    fn ring(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.config.ring_timeout_secs).unwrap_or(i64::MAX))
    }

    /// `who`'s session in the call, checked as allowed: a session is opened only for a
    /// member who joined (and is closed when they stop being one), so it stands for the
    /// membership check; without one, a member gets `NOT_IN_CALL`, anyone else
    /// `NOT_FOUND`.
    async fn session(&self, who: Uuid, id: Uuid) -> Result<(u64, Option<Uuid>)> {
        if let Some(session) = self.rooms.peer(id, who) {
            return Ok(session);
        }
        self.visible(who, id).await?;
        Err(not_in_call())
    }

    fn carry(&self, call: Uuid) {
        self.carried
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(call);
    }

    fn uncarry(&self, call: Uuid) {
        self.carried
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&call);
    }

    fn carried_ids(&self) -> Vec<Uuid> {
        let carried = self.carried.lock().unwrap_or_else(PoisonError::into_inner);
        carried.iter().copied().collect()
    }

    fn orphan_check_due(&self) -> bool {
        let mut last = self
            .orphans_checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= ORPHAN_PERIOD);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Takes over the calls going on that no node carries, and takes out of this node's
    /// calls those participants who are in them by their record but have no session
    /// here, a grace period after joining (their node died, or this one restarted).
    async fn adopt_orphans(&self, now: Time) -> Result<()> {
        let carried: HashSet<Uuid> = self.carried_ids().into_iter().collect();
        for id in self.store.active_calls(1000).await? {
            if carried.contains(&id) {
                continue;
            }
            match self.placement.carrier(id, &self.me).await? {
                Some(Carrier::Here) => self.carry(id),
                Some(Carrier::Elsewhere(_)) => {}
                None => {
                    if self.placement.claim(id, &self.me).await? == Carrier::Here {
                        tracing::info!(call = %id, "taking over a call no node carries");
                        self.carry(id);
                    }
                }
            }
        }
        let grace = chrono::Duration::from_std(CONNECT_GRACE).unwrap_or(chrono::Duration::MAX);
        for call in self.store.calls_by_id(&self.carried_ids()).await? {
            if call.is_over() {
                self.uncarry(call.id);
                self.placement.release(call.id, &self.me).await?;
                continue;
            }
            self.remove_non_members(&call, now).await?;
            let gone: Vec<Uuid> = call
                .members
                .iter()
                .filter(|(user, p)| {
                    p.presence == crate::domain::call::Presence::Joined
                        && p.joined.is_some_and(|at| at + grace < now)
                        && !self.rooms.has(call.id, **user)
                })
                .map(|(user, _)| *user)
                .collect();
            for user in gone {
                if let Err(err) = self.leave(user, call.id, Closing::MediaLost).await {
                    tracing::debug!(call = %call.id, %user, %err, "removing a participant with no session");
                }
            }
        }
        Ok(())
    }

    /// The call, when `who` is a member of its conversation; `NOT_FOUND` otherwise.
    async fn visible(&self, who: Uuid, id: Uuid) -> Result<Call> {
        let call = self.store.call(id).await?.ok_or(Error::NotFound("call"))?;
        self.member(call.conversation, who).await?;
        Ok(call)
    }

    async fn member(&self, conversation: Uuid, who: Uuid) -> Result<()> {
        self.chat
            .membership(conversation, who)
            .await?
            .map(|_| ())
            .ok_or(Error::NotFound("call"))
    }

    async fn update(&self, id: Uuid, who: Uuid, now: Time, change: CallChange<'_>) -> Result<Call> {
        let committed: Committed<Call> = self
            .store
            .update_call(id, CallActor::Member(who), now, change)
            .await?;
        Ok(crate::bus::publish_committed(&*self.bus, committed))
    }

    async fn leave(&self, who: Uuid, id: Uuid, why: Closing) -> Result<CallView> {
        let call = self.store.call(id).await?.ok_or(Error::NotFound("call"))?;
        let direct = self
            .chat
            .conversation(call.conversation)
            .await?
            .is_some_and(|c| c.kind == ConversationKind::Direct);
        let now = chrono::Utc::now();
        let leaving = move |call: &mut Call, _: Role| {
            call.leave(who, now).map_err(refused)?;
            // Two people talking: when one hangs up, the call is over.
            if direct && !call.is_over() {
                call.end(who, true, now).map_err(refused)?;
            }
            Ok(true)
        };
        let result = self.update(id, who, now, &leaving).await;
        if let Some(peer) = self.rooms.close(id, who, why) {
            self.leave_sfu(peer).await;
        }
        let call = result?;
        self.after_change(&call).await;
        Ok(self.view(call))
    }

    /// Takes out of `call` those in it who are no longer members of its conversation
    /// (removed, or left it): a non-member sees and hears nothing of a conversation.
    async fn remove_non_members(&self, call: &Call, now: Time) -> Result<()> {
        let members: std::collections::HashSet<Uuid> = self
            .chat
            .members(call.conversation, None, u64::from(u32::MAX))
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        let outsiders = call.members.iter().filter(|(user, p)| {
            p.presence == crate::domain::call::Presence::Joined && !members.contains(user)
        });
        for (user, _) in outsiders {
            let user = *user;
            let leaving = move |call: &mut Call, _: Role| {
                call.leave(user, now).map_err(refused)?;
                Ok(true)
            };
            let result = self
                .store
                .update_call(call.id, CallActor::Call(user), now, &leaving)
                .await;
            if let Some(peer) = self.rooms.close(call.id, user, Closing::Removed) {
                self.leave_sfu(peer).await;
            }
            match result {
                Ok(committed) => {
                    let after = crate::bus::publish_committed(&*self.bus, committed);
                    self.after_change(&after).await;
                }
                Err(err) => tracing::debug!(call = %call.id, %user, %err, "removing a non-member"),
            }
        }
        Ok(())
    }

    async fn leave_sfu(&self, peer: Uuid) {
        if let Err(err) = self.sfu.leave(peer).await {
            tracing::warn!(%peer, %err, "removing a peer from the SFU");
        }
    }

    /// Tells everyone of a change: the watchers here, the members' streams; when the
    /// call is over, its sessions end.
    async fn after_change(&self, call: &Call) {
        self.told(call).await;
        if call.is_over() {
            self.uncarry(call.id);
            if let Err(err) = self.placement.release(call.id, &self.me).await {
                tracing::debug!(call = %call.id, %err, "releasing an ended call's claim");
            }
            for peer in self.rooms.close_all(call.id, Closing::Ended) {
                self.leave_sfu(peer).await;
            }
        }
    }

    /// Tells the watchers here and the event stream of every member of its conversation
    /// (now: not those who left it since the call started) of the call as it is.
    async fn told(&self, call: &Call) {
        let view = self.view(call.clone());
        self.rooms
            .broadcast(call.id, &WatchItem::Call(Box::new(view)));
        let members = self
            .chat
            .members(call.conversation, None, u64::from(u32::MAX))
            .await;
        let recipients = match members {
            Ok(members) => members.into_iter().map(|m| m.user_id).collect(),
            Err(err) => {
                // Ephemeral: the call's message and GetCall still tell where it stands.
                tracing::warn!(call = %call.id, %err, "reading a call's members to tell them");
                return;
            }
        };
        self.bus
            .publish_signal(Signal::CallUpdated(Box::new(CallSignal {
                call: call.clone(),
                recipients,
            })));
    }

    /// Tells the watchers here of the call's live part changing.
    async fn told_watchers(&self, id: Uuid) {
        match self.store.call(id).await {
            Ok(Some(call)) => {
                let view = self.view(call);
                self.rooms.broadcast(id, &WatchItem::Call(Box::new(view)));
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%id, %err, "reading a call to tell its watchers"),
        }
    }

    fn view(&self, call: Call) -> CallView {
        let mut live = self.rooms.live(call.id);
        live.retain(|user, _| {
            call.members
                .get(user)
                .is_some_and(|p| p.presence == crate::domain::call::Presence::Joined)
        });
        CallView { call, live }
    }

    fn ice_servers(&self, who: Uuid) -> Vec<IceServer> {
        let config = &self.config;
        let mut servers = Vec::new();
        if !config.stun_urls.is_empty() {
            servers.push(IceServer {
                urls: config.stun_urls.clone(),
                username: String::new(),
                credential: String::new(),
            });
        }
        if !config.turn_urls.is_empty() {
            let expires =
                chrono::Utc::now().timestamp().max(0).unsigned_abs() + config.turn_ttl_secs;
            let credentials = ice::turn_credentials(
                config.turn_secret.expose().as_bytes(),
                &who.to_string(),
                expires,
            );
            servers.push(IceServer {
                urls: config.turn_urls.clone(),
                username: credentials.username,
                credential: credentials.password,
            });
        }
        servers
    }
}

/// Passes one SFU peer's events to its participant's watcher, until the peer closes;
/// a peer that closes while still its participant's (its connection lost) takes the
/// participant out of the call.
async fn forward_peer_events(
    inner: Weak<Inner>,
    call: Uuid,
    user: Uuid,
    peer: Uuid,
    mut events: mpsc::Receiver<PeerEvent>,
) {
    while let Some(event) = events.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match event {
            PeerEvent::Offer { id, sdp } => {
                inner.rooms.send(call, user, WatchItem::Offer { id, sdp });
            }
            PeerEvent::Connected => inner.rooms.send(call, user, WatchItem::Connected),
            PeerEvent::ActiveSpeaker(speaker) => {
                let speaker = speaker.and_then(|p| inner.rooms.user_of_peer(call, p));
                inner
                    .rooms
                    .send(call, user, WatchItem::ActiveSpeaker(speaker));
            }
            PeerEvent::Closed => {
                let still_theirs = inner
                    .rooms
                    .peer(call, user)
                    .is_some_and(|(_, current)| current == Some(peer));
                if still_theirs && let Err(err) = inner.leave(user, call, Closing::MediaLost).await
                {
                    tracing::debug!(%call, %user, %err, "removing a participant whose media was lost");
                }
                return;
            }
        }
    }
}

fn parse_call_id(raw: &str) -> Result<Uuid> {
    let mut v = Violations::new();
    let id = v.id("call_id", raw);
    v.finish()?;
    id.ok_or(Error::NotFound("call"))
}

fn not_in_call() -> Error {
    Error::FailedPrecondition {
        reason: Reason::NotInCall,
        message: "you are not in this call: join it first",
    }
}

/// A lifecycle refusal as the contract spells it.
fn refused(err: CallError) -> Error {
    match err {
        CallError::Ended => Error::FailedPrecondition {
            reason: Reason::CallEnded,
            message: "the call has ended",
        },
        CallError::Full => Error::Exhausted {
            reason: Reason::CallFull,
            message: "the call has as many participants as it may",
        },
        CallError::NotAllowed => Error::PermissionDenied {
            reason: Reason::InsufficientRole,
            message: "only the caller or a group admin ends a call for everyone",
        },
        CallError::NotMember | CallError::NotJoined => not_in_call(),
    }
}

/// An SFU refusal as the contract spells it; `field` names what the client sent.
fn sfu_error(field: &str, err: SfuError) -> Error {
    match err {
        SfuError::InvalidSdp(why) => Error::invalid(field, format!("invalid SDP: {why}")),
        SfuError::StaleOffer | SfuError::NoPendingOffer => Error::FailedPrecondition {
            reason: Reason::StaleOffer,
            message: "that offer is no longer waiting for an answer: a newer one follows",
        },
        SfuError::UnknownPeer | SfuError::AlreadyJoined => not_in_call(),
        SfuError::Stopped => Error::Unavailable("the SFU has stopped".to_owned()),
    }
}

/// Checks an ICE candidate line (`candidate:…` as in `RTCIceCandidate.candidate`, RFC
/// 8839 §5.1); an empty one (the end of candidates) is fine. The SFU never uses them (it
/// is ICE-lite), so this only keeps garbage out.
fn check_candidate(candidate: &str) -> Result<()> {
    if candidate.is_empty() || candidate_is_valid(candidate) {
        return Ok(());
    }
    Err(Error::invalid(
        "ice_candidate",
        "not an ICE candidate line: candidate:<foundation> <component> <transport> \
         <priority> <address> <port> typ <host|srflx|prflx|relay> …",
    ))
}

fn candidate_is_valid(candidate: &str) -> bool {
    let line = candidate.strip_prefix("a=").unwrap_or(candidate);
    let Some(rest) = line.strip_prefix("candidate:") else {
        return false;
    };
    let parts: Vec<&str> = rest.split(' ').collect();
    let [
        foundation,
        component,
        transport,
        priority,
        address,
        port,
        typ,
        kind,
        ..,
    ] = parts.as_slice()
    else {
        return false;
    };
    let ice_char = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
    let address_char = |c: char| c.is_ascii_alphanumeric() || ".:-".contains(c);
    line.len() <= 1024
        && (1..=32).contains(&foundation.len())
        && foundation.chars().all(ice_char)
        && component
            .parse::<u16>()
            .is_ok_and(|c| (1..=256).contains(&c))
        && !transport.is_empty()
        && transport.chars().all(|c| c.is_ascii_alphanumeric())
        && priority.parse::<u32>().is_ok_and(|p| p > 0)
        && (1..=253).contains(&address.len())
        && address.chars().all(address_char)
        && port.parse::<u16>().is_ok()
        && *typ == "typ"
        && ["host", "srflx", "prflx", "relay"].contains(kind)
}

#[cfg(test)]
mod tests {
    use super::candidate_is_valid;

    #[test]
    fn candidates_are_checked_against_the_grammar() {
        for good in [
            "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXgk network-cost 999",
            "candidate:1 1 UDP 2122252543 a1b2c3d4-0000-4000-8000-000000000000.local 54321 typ host",
            "a=candidate:2 1 tcp 1518280447 2001:db8::1 9 typ host tcptype active",
        ] {
            assert!(candidate_is_valid(good), "{good}");
        }
        for bad in [
            "candidate:",
            "hello",
            "candidate:1 1 udp 0 1.2.3.4 5 typ host",
            "candidate:1 0 udp 1 1.2.3.4 5 typ host",
            "candidate:1 1 udp 1 1.2.3.4 70000 typ host",
            "candidate:1 1 udp 1 1.2.3.4 5 kind host",
            "candidate:1 1 udp 1 1.2.3.4 5 typ banana",
            "candidate:1 1 udp 1 <script> 5 typ host",
        ] {
            assert!(!candidate_is_valid(bad), "{bad}");
        }
    }
}
