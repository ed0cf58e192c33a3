//! The SFU's one task: it owns the UDP socket and every peer, takes commands from the call
//! service, feeds datagrams and timeouts to the right peer, and forwards what a peer
//! publishes to the others in its room.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use str0m::{
    Candidate, Input, Rtc, RtcConfig,
    change::{SdpAnswer, SdpOffer},
    media::{KeyframeRequestKind, MediaKind, Mid, Rid},
    net::{Protocol, Receive},
};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};
use uuid::Uuid;

use super::{
    PeerEvent, Renegotiated, SfuError, SfuStats,
    layers::{LayerState, Picks, Quality},
    peer::{OutState, Peer, Propagated, TrackOut, shielded},
    speakers::Speakers,
};

/// A peer not connected this long after joining is given up on (str0m has no such limit).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often peers are checked for removal (not after every datagram: it visits them all).
const REAP_EVERY: Duration = Duration::from_millis(250);

type Reply<T> = oneshot::Sender<Result<T, SfuError>>;

pub enum Command {
    Join {
        room: Uuid,
        peer: Uuid,
        offer: String,
        events: mpsc::Sender<PeerEvent>,
        reply: Reply<String>,
    },
    Answer {
        peer: Uuid,
        offer: u64,
        answer: String,
        reply: Reply<()>,
    },
    Renegotiate {
        peer: Uuid,
        offer: String,
        reply: Reply<Renegotiated>,
    },
    SetMuted {
        peer: Uuid,
        kind: MediaKind,
        muted: bool,
        reply: Reply<()>,
    },
    Leave {
        peer: Uuid,
        reply: Reply<()>,
    },
    SetQuality {
        peer: Uuid,
        quality: Quality,
        reply: Reply<()>,
    },
    Stats {
        reply: Reply<SfuStats>,
    },
}

pub struct Engine {
    socket: Arc<UdpSocket>,
    /// The one host candidate every peer is given.
    media_addr: SocketAddr,
    config: RtcConfig,
    peers: HashMap<Uuid, Peer>,
    /// Which peer a remote address belongs to, once known.
    routes: HashMap<SocketAddr, Uuid>,
    speakers: Speakers,
    frames_forwarded: u64,
    next_reap: Instant,
}

impl Engine {
    pub fn new(socket: Arc<UdpSocket>, media_addr: SocketAddr) -> Engine {
        let config = Rtc::builder().set_ice_lite(true);
        Engine {
            socket,
            media_addr,
            config,
            peers: HashMap::new(),
            routes: HashMap::new(),
            speakers: Speakers::default(),
            frames_forwarded: 0,
            next_reap: Instant::now(),
        }
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buffer = vec![0u8; 2048];
        loop {
            let wake = self.next_wake();
            let socket = Arc::clone(&self.socket);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break, // Every handle is gone.
                },
                received = socket.recv_from(&mut buffer) => match received {
                    Ok((len, from)) => self.datagram(from, &buffer[..len]),
                    Err(err) => tracing::warn!(%err, "SFU socket"),
                },
                () = tokio::time::sleep_until(wake.into()) => self.timeouts(Instant::now()),
            }
            let now = Instant::now();
            if now >= self.next_reap {
                self.reap(now);
                self.next_reap = now + REAP_EVERY;
            }
            self.announce_speakers(now);
        }
        for peer in self.peers.values_mut() {
            peer.rtc.disconnect();
        }
    }

    fn next_wake(&self) -> Instant {
        let idle = self.speakers.next_check();
        self.peers
            .values()
            .map(|peer| peer.wake)
            .min()
            // With peers, their removal is checked on time too.
            .map_or(idle, |wake| wake.min(idle).min(self.next_reap))
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Join {
                room,
                peer,
                offer,
                events,
                reply,
            } => {
                let _ = reply.send(self.join(room, peer, &offer, events));
            }
            Command::Answer {
                peer,
                offer,
                answer,
                reply,
            } => {
                let _ = reply.send(self.answer(peer, offer, &answer));
            }
            Command::Renegotiate { peer, offer, reply } => {
                let answered = self.renegotiate(peer, &offer);
                let _ = reply.send(answered);
                // After the answer: the SFU's next offer comes once the peer is stable.
                self.offer(peer);
            }
            Command::SetMuted {
                peer,
                kind,
                muted,
                reply,
            } => {
                let _ = reply.send(self.set_muted(peer, kind, muted));
            }
            Command::SetQuality {
                peer,
                quality,
                reply,
            } => {
                let set = match self.peers.get_mut(&peer) {
                    Some(peer) => {
                        peer.quality = quality;
                        Ok(())
                    }
                    None => Err(SfuError::UnknownPeer),
                };
                let _ = reply.send(set);
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(SfuStats {
                    peers: self.peers.len(),
                    frames_forwarded: self.frames_forwarded,
                }));
            }
            Command::Leave { peer, reply } => {
                self.remove(peer);
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn join(
        &mut self,
        room: Uuid,
        id: Uuid,
        offer: &str,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<String, SfuError> {
        if self.peers.contains_key(&id) {
            return Err(SfuError::AlreadyJoined);
        }
        let offer_text = offer;
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let now = Instant::now();
        // Bandwidth estimation (TWCC) keeps a subscriber's simulcast layers within what
        // its connection carries, starting from room for one top layer. It is for video
        // rooms only: its pacing and feedback would raise the cost of forwarding audio by
        // about 60% (measured with the load scenario), for nothing to choose.
        let offers_video = offer_text
            .split("\nm=")
            .any(|m| m.starts_with("video") && !m.contains("a=inactive"));
        let video_room = offers_video
            || self
                .peers
                .values()
                .any(|p| p.room == room && p.tracks_in.iter().any(|t| t.kind == MediaKind::Video));
        let mut config = self.config.clone();
        if video_room {
            let initial = str0m::bwe::Bitrate::kbps(super::peer::TOP_LAYER_KBPS);
            config = config.enable_bwe(Some(initial));
        }
        let mut rtc = config.build(now);
        let candidate = Candidate::host(self.media_addr, "udp")
            .map_err(|e| SfuError::InvalidSdp(format!("media address: {e}")))?;
        rtc.add_local_candidate(candidate);
        let answer = shielded(id, || rtc.sdp_api().accept_offer(offer))
            .ok_or_else(|| SfuError::InvalidSdp("the offer broke the WebRTC stack".into()))?
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        // Everything the room publishes already, to offer once it is connected.
        let tracks_out = self
            .peers
            .values()
            .filter(|other| other.room == room)
            .flat_map(|other| {
                other.tracks_in.iter().map(|track| TrackOut {
                    source: (other.id, track.mid),
                    kind: track.kind,
                    state: OutState::ToOpen,
                    layer: LayerState::default(),
                    stream: track.stream.clone(),
                })
            })
            .collect();
        let mut peer = Peer {
            id,
            room,
            rtc,
            events,
            tracks_in: Vec::new(),
            tracks_out,
            stopping: Vec::new(),
            pending: None,
            offers: 0,
            wake: now,
            joined: now,
            connected: false,
            muted: Vec::new(),
            quality: Quality::default(),
            video_budget: None,
            broken: false,
            msids: super::msid::streams_by_mid(offer_text),
            streams: Vec::new(),
        };
        let mut out = Vec::new();
        peer.apply(&self.socket, &mut out, |_| ());
        self.peers.insert(id, peer);
        self.propagate(out);
        Ok(answer.to_sdp_string())
    }

    fn answer(&mut self, id: Uuid, offer: u64, answer: &str) -> Result<(), SfuError> {
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        match &peer.pending {
            None => return Err(SfuError::NoPendingOffer),
            Some((pending, _)) if *pending != offer => return Err(SfuError::StaleOffer),
            Some(_) => {}
        }
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let (_, pending) = peer.pending.take().ok_or(SfuError::NoPendingOffer)?;
        let mut out = Vec::new();
        let accepted = peer
            .apply(&self.socket, &mut out, |rtc| {
                rtc.sdp_api().accept_answer(pending, answer)
            })
            .ok_or_else(|| SfuError::InvalidSdp("the answer broke the WebRTC stack".into()))?;
        if let Err(err) = accepted {
            // The offer is spent: its tracks are offered again.
            peer.reoffer();
            self.offer(id);
            return Err(SfuError::InvalidSdp(err.to_string()));
        }
        let opened = peer.opened();
        self.offer(id);
        // A new subscriber needs a keyframe to start decoding.
        for (publisher, mid) in opened {
            self.request_keyframe(publisher, mid, None, KeyframeRequestKind::Pli);
        }
        self.propagate(out);
        Ok(())
    }

    fn set_muted(&mut self, id: Uuid, kind: MediaKind, muted: bool) -> Result<(), SfuError> {
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        let was = peer.muted.contains(&kind);
        peer.muted.retain(|k| *k != kind);
        if muted {
            peer.muted.push(kind);
        }
        if was && !muted && kind == MediaKind::Video {
            // Subscribers resume decoding from a keyframe.
            let mids: Vec<_> = peer
                .tracks_in
                .iter()
                .filter(|track| track.kind == kind)
                .map(|track| (track.mid, track.layers.clone()))
                .collect();
            for (mid, layers) in mids {
                if layers.is_empty() {
                    self.request_keyframe(id, mid, None, KeyframeRequestKind::Pli);
                }
                for rid in layers {
                    self.request_keyframe(id, mid, Some(rid), KeyframeRequestKind::Pli);
                }
            }
        }
        Ok(())
    }

    /// Tells each room whose voice is loudest, when that changed.
    fn announce_speakers(&mut self, now: Instant) {
        for (room, speaker) in self.speakers.changes(now) {
            for peer in self.peers.values().filter(|p| p.room == room) {
                let _ = peer.events.try_send(PeerEvent::ActiveSpeaker(speaker));
            }
        }
    }

    /// The peer offers again: its offer wins over one of the SFU's still out (which str0m
    /// drops when it accepts the peer's), and the SFU offers its tracks again after.
    fn renegotiate(&mut self, id: Uuid, offer: &str) -> Result<Renegotiated, SfuError> {
        let peer = self.peers.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        let streams = super::msid::streams_by_mid(offer);
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        peer.msids = streams;
        peer.reoffer();
        let mut out = Vec::new();
        let answer = peer
            .apply(&self.socket, &mut out, |rtc| {
                rtc.sdp_api().accept_offer(offer)
            })
            .ok_or_else(|| SfuError::InvalidSdp("the offer broke the WebRTC stack".into()))?
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let void_up_to = peer.offers;
        self.propagate(out);
        Ok(Renegotiated {
            answer: answer.to_sdp_string(),
            void_up_to,
        })
    }

    /// Sends the peer an offer of the tracks waiting for one, if it can take one now.
    fn offer(&mut self, id: Uuid) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.broken {
            return;
        }
        let Some(offer) = shielded(id, || peer.negotiate()) else {
            peer.broken = true;
            return;
        };
        if let Some((offer_id, sdp)) = offer {
            let _ = peer.events.try_send(PeerEvent::Offer { id: offer_id, sdp });
            let mut out = Vec::new();
            peer.apply(&self.socket, &mut out, |_| ());
            self.propagate(out);
        }
    }

    /// Asks a publisher for a keyframe of its track `mid` (of layer `rid`, when layered).
    fn request_keyframe(
        &mut self,
        publisher: Uuid,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let mut out = Vec::new();
        peer.apply(&self.socket, &mut out, |rtc| {
            if let Some(mut writer) = rtc.writer(mid)
                && writer.is_request_keyframe_possible(kind)
            {
                let _ = writer.request_keyframe(rid, kind);
            }
        });
        self.propagate(out);
    }

    fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Ok(contents) = bytes.try_into() else {
            return; // Not STUN, DTLS or (S)RTP.
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.media_addr,
                contents,
            },
        );
        let known = self
            .routes
            .get(&from)
            .filter(|id| self.peers.get(id).is_some_and(|p| accepts(p, &input)))
            .copied();
        let Some(id) = known.or_else(|| {
            self.peers
                .values()
                .find(|peer| accepts(peer, &input))
                .map(|peer| peer.id)
        }) else {
            return; // Nobody's (yet): a check that beat its peer's join, say.
        };
        self.routes.insert(from, id);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let was_connected = peer.connected;
        let mut out = Vec::new();
        peer.apply(&self.socket, &mut out, |rtc| {
            if rtc.handle_input(input).is_err() {
                rtc.disconnect();
            }
        });
        let now_connected = peer.connected;
        self.propagate(out);
        if now_connected && !was_connected {
            self.offer(id);
        }
    }

    fn timeouts(&mut self, now: Instant) {
        let due: Vec<Uuid> = self
            .peers
            .values()
            .filter(|peer| peer.wake <= now)
            .map(|peer| peer.id)
            .collect();
        for id in due {
            if let Some(peer) = self.peers.get_mut(&id) {
                let mut out = Vec::new();
                peer.apply(&self.socket, &mut out, |rtc| {
                    if rtc.handle_input(Input::Timeout(now)).is_err() {
                        rtc.disconnect();
                    }
                });
                self.propagate(out);
            }
        }
    }

    /// Forwards what peers produced to the others in their rooms; writing to a peer can
    /// produce more (a keyframe request), handled in the same pass.
    fn propagate(&mut self, mut queue: Vec<Propagated>) {
        while let Some(item) = queue.pop() {
            match item {
                Propagated::TrackOpen {
                    publisher,
                    mid,
                    kind,
                    stream,
                } => {
                    let Some(room) = self.peers.get(&publisher).map(|p| p.room) else {
                        continue;
                    };
                    let others: Vec<Uuid> = self
                        .peers
                        .values()
                        .filter(|p| p.room == room && p.id != publisher)
                        .map(|p| p.id)
                        .collect();
                    for other in others {
                        if let Some(peer) = self.peers.get_mut(&other) {
                            peer.tracks_out.push(TrackOut {
                                source: (publisher, mid),
                                kind,
                                state: OutState::ToOpen,
                                layer: LayerState::default(),
                                stream: stream.clone(),
                            });
                        }
                        self.offer(other);
                    }
                }
                Propagated::TrackClosed { publisher, mid } => {
                    self.stop_forwarding(publisher, Some(mid));
                }
                Propagated::Media { publisher, data } => {
                    let now = Instant::now();
                    let Some(source) = self.peers.get_mut(&publisher) else {
                        continue;
                    };
                    let room = source.room;
                    let mut track = source.tracks_in.iter_mut().find(|t| t.mid == data.mid);
                    if let Some(track) = track.as_deref_mut()
                        && let Some(rid) = data.rid
                        && let Some(at) = track.layers.iter().position(|r| *r == rid)
                        && let Some(rate) = track.rates.get_mut(at)
                    {
                        rate.add(data.data.len(), now);
                    }
                    let kind = track.as_ref().map(|t| t.kind);
                    let picks = track
                        .map(|t| Picks::of(&t.layers, &t.rates))
                        .unwrap_or_default();
                    if kind.is_some_and(|kind| source.muted.contains(&kind)) {
                        continue;
                    }
                    // Layers subscribers wait for a keyframe of.
                    let mut wanted: Vec<Rid> = Vec::new();
                    if kind == Some(MediaKind::Audio)
                        && let Some(level) = data.ext_vals.audio_level
                    {
                        self.speakers.heard(room, publisher, level, now);
                    }
                    for peer in self.peers.values_mut() {
                        if peer.room != room || peer.id == publisher {
                            continue;
                        }
                        let (quality, budget) = (peer.quality, peer.video_budget);
                        let Some((mid, layer)) =
                            peer.tracks_out.iter_mut().find_map(|t| match t.state {
                                OutState::Open(mid) if t.source == (publisher, data.mid) => {
                                    Some((mid, &mut t.layer))
                                }
                                _ => None,
                            })
                        else {
                            continue;
                        };
                        if let Some(rid) = data.rid
                            && layer.current != Some(rid)
                        {
                            // Another layer than this subscriber's: switch to it only if
                            // it is the one wanted, at a keyframe.
                            let target = picks.fitting(quality, budget);
                            if target == Some(rid) && data.is_keyframe() {
                                layer.switch(rid, data.time);
                            } else {
                                if let Some(target) = target
                                    && layer.current != Some(target)
                                    && layer.ask_keyframe(now)
                                    && !wanted.contains(&target)
                                {
                                    wanted.push(target);
                                }
                                continue;
                            }
                        }
                        let time = match data.rid {
                            Some(_) => layer.out_time(data.time),
                            None => data.time,
                        };
                        let written = peer.apply(&self.socket, &mut queue, |rtc| {
                            let Some(mut writer) = rtc.writer(mid) else {
                                return false;
                            };
                            let Some(pt) = writer.match_params(data.params) else {
                                return false; // A codec this subscriber did not accept.
                            };
                            // Header extensions are not carried over by themselves.
                            if let Some(level) = data.ext_vals.audio_level {
                                let voice = data.ext_vals.voice_activity.unwrap_or(false);
                                writer = writer.audio_level(level, voice);
                            }
                            writer
                                .write(pt, data.network_time, time, data.data.clone())
                                .is_ok()
                        });
                        if written == Some(true) {
                            self.frames_forwarded += 1;
                        }
                    }
                    for rid in wanted {
                        self.request_keyframe(
                            publisher,
                            data.mid,
                            Some(rid),
                            KeyframeRequestKind::Pli,
                        );
                    }
                }
                Propagated::Keyframe {
                    subscriber,
                    request,
                } => {
                    let source = self.peers.get(&subscriber).and_then(|peer| {
                        peer.tracks_out.iter().find_map(|t| match t.state {
                            OutState::Open(mid) if mid == request.mid => {
                                Some((t.source, t.layer.current))
                            }
                            _ => None,
                        })
                    });
                    if let Some(((publisher, mid), rid)) = source {
                        self.request_keyframe(publisher, mid, rid, request.kind);
                    }
                }
            }
        }
    }

    /// Removes peers whose connection is gone or never came up.
    fn reap(&mut self, now: Instant) {
        let gone: Vec<Uuid> = self
            .peers
            .values()
            .filter(|peer| {
                peer.broken
                    || !peer.rtc.is_alive()
                    || (!peer.connected && now.duration_since(peer.joined) > CONNECT_TIMEOUT)
            })
            .map(|peer| peer.id)
            .collect();
        for id in gone {
            self.remove(id);
        }
    }

    /// Takes a peer out: its connection closes, and the others stop receiving its tracks.
    fn remove(&mut self, id: Uuid) {
        let Some(mut gone) = self.peers.remove(&id) else {
            return;
        };
        gone.rtc.disconnect();
        let _ = gone.events.try_send(PeerEvent::Closed);
        self.routes.retain(|_, peer| *peer != id);
        self.speakers.forget(gone.room, id);
        self.stop_forwarding(id, None);
    }

    /// The others stop receiving `publisher`'s track `mid` (every track of it: `None`).
    fn stop_forwarding(&mut self, publisher: Uuid, mid: Option<Mid>) {
        let others: Vec<Uuid> = self.peers.keys().copied().collect();
        for other in others {
            let Some(peer) = self.peers.get_mut(&other) else {
                continue;
            };
            let Peer {
                tracks_out,
                stopping,
                ..
            } = peer;
            tracks_out.retain(|track| {
                let (source, source_mid) = track.source;
                if source != publisher || mid.is_some_and(|mid| mid != source_mid) {
                    return true;
                }
                if let OutState::Open(out) | OutState::Negotiating(out) = track.state {
                    stopping.push(out);
                }
                false
            });
            if !peer.stopping.is_empty() {
                self.offer(other);
            }
        }
    }
}

/// Whether the datagram is for this peer's connection (a broken one takes nothing).
fn accepts(peer: &Peer, input: &Input) -> bool {
    !peer.broken && shielded(peer.id, || peer.rtc.accepts(input)).unwrap_or(false)
}
