//! One participant's connection: its `Rtc`, the tracks it publishes, and the others'
//! tracks it receives (each negotiated before media is written to it).

use std::time::Instant;

use str0m::{
    Event, IceConnectionState, Output, Rtc,
    bwe::{Bitrate, BweKind},
    media::{Direction, KeyframeRequest, MediaData, MediaKind, Mid, Rid},
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    PeerEvent,
    layers::{self, LayerState, Quality},
};

/// What the bandwidth estimation probes for, per video track a peer receives: room for a
/// browser's top simulcast layer.
pub const TOP_LAYER_KBPS: u64 = 2_500;

/// A track the peer publishes.
#[derive(Debug)]
pub struct TrackIn {
    pub mid: Mid,
    pub kind: MediaKind,
    /// Its simulcast layers, lowest first; empty when it has none.
    pub layers: Vec<Rid>,
    /// Each layer's bitrate, in the order of `layers`.
    pub rates: Vec<layers::Rate>,
    /// The stream id the others receive it under (see `msid::forwarded_stream`).
    pub stream: String,
}

/// A track another peer publishes, as this peer receives it.
#[derive(Debug)]
pub struct TrackOut {
    /// The publisher and its track's mid on the publisher's connection.
    pub source: (Uuid, Mid),
    pub kind: MediaKind,
    pub state: OutState,
    /// Which layer of a layered track it gets.
    pub layer: LayerState,
    /// The stream id it is offered under: its publisher's (see `msid`).
    pub stream: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// To be offered to the peer.
    ToOpen,
    /// Offered as this mid; waiting for the peer's answer.
    Negotiating(Mid),
    /// Answered: media is written to this mid.
    Open(Mid),
}

/// What a peer's connection produced that concerns other peers.
pub enum Propagated {
    /// The peer publishes a new track.
    TrackOpen {
        publisher: Uuid,
        mid: Mid,
        kind: MediaKind,
        stream: String,
    },
    /// The peer stopped publishing a track.
    TrackClosed { publisher: Uuid, mid: Mid },
    /// A frame of one of the peer's tracks.
    /// (Boxed: a frame's metadata is ten times the size of the other variants.)
    Media {
        publisher: Uuid,
        data: Box<MediaData>,
    },
    /// The peer asks for a keyframe of a track it receives.
    Keyframe {
        subscriber: Uuid,
        request: KeyframeRequest,
    },
}

pub struct Peer {
    pub id: Uuid,
    pub room: Uuid,
    pub rtc: Rtc,
    pub events: mpsc::Sender<PeerEvent>,
    pub tracks_in: Vec<TrackIn>,
    pub tracks_out: Vec<TrackOut>,
    /// Mids of tracks whose publisher left, to stop in the next offer.
    pub stopping: Vec<Mid>,
    /// The SFU's offer waiting for its answer (one at a time), with its id.
    pub pending: Option<(u64, str0m::change::SdpPendingOffer)>,
    /// The id of the SFU's last offer to it.
    pub offers: u64,
    /// When its `Rtc` next wants `Input::Timeout`.
    pub wake: Instant,
    pub joined: Instant,
    pub connected: bool,
    /// Kinds of its tracks not forwarded (muted).
    pub muted: Vec<MediaKind>,
    /// The video layers it asked to receive.
    pub quality: Quality,
    /// What each video track it receives may use, by its bandwidth estimate (TWCC),
    /// in bits per second; `None` until estimated.
    pub video_budget: Option<f64>,
    /// Its connection panicked inside the WebRTC stack: it is removed.
    pub broken: bool,
    /// The media stream of each track it offered, by mid, as its last offer said.
    pub msids: std::collections::HashMap<String, String>,
    /// Its streams in the order its tracks first came in them (the first is its main one).
    pub streams: Vec<String>,
}

/// Runs `work`, turning a panic into `None`: str0m panics on what it considers a bug
/// rather than carry on corrupted, and one peer's connection must not take down every
/// call on the node.
pub fn shielded<T>(peer: Uuid, work: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(done) => Some(done),
        Err(_) => {
            tracing::error!(%peer, "the WebRTC stack panicked on a call peer's connection");
            None
        }
    }
}

impl Peer {
    /// Makes a change to the connection (`change`), then drains it; `None` if the peer is
    /// (or just became) broken.
    pub fn apply<T>(
        &mut self,
        socket: &tokio::net::UdpSocket,
        out: &mut Vec<Propagated>,
        change: impl FnOnce(&mut Rtc) -> T,
    ) -> Option<T> {
        if self.broken {
            return None;
        }
        let id = self.id;
        let done = shielded(id, || {
            let done = change(&mut self.rtc);
            self.drain(socket, out);
            done
        });
        self.broken = done.is_none();
        done
    }

    /// Drains the `Rtc`'s output until it next waits (str0m's rule after every change):
    /// sends what it transmits, tells the peer what concerns it, and returns what concerns
    /// the others.
    pub fn drain(&mut self, socket: &tokio::net::UdpSocket, out: &mut Vec<Propagated>) {
        loop {
            let output = match self.rtc.poll_output() {
                Ok(output) => output,
                Err(err) => {
                    tracing::info!(peer = %self.id, %err, "a call peer's connection failed");
                    self.rtc.disconnect();
                    return;
                }
            };
            match output {
                Output::Timeout(at) => {
                    self.wake = at;
                    return;
                }
                Output::Transmit(sent) => {
                    // Never waits: a datagram the socket cannot take now is lost, as on
                    // any network, and WebRTC recovers (NACK, keyframes).
                    let _ = socket.try_send_to(&sent.contents, sent.destination);
                }
                Output::Event(event) => self.handle(event, out),
            }
        }
    }

    /// The stream id the others receive the peer's track `mid` under.
    fn stream_of(&mut self, mid: Mid) -> String {
        let index = match self.msids.get(&mid.to_string()) {
            None => 0,
            Some(label) => match self.streams.iter().position(|s| s == label) {
                Some(index) => index,
                None => {
                    self.streams.push(label.clone());
                    self.streams.len() - 1
                }
            },
        };
        super::msid::forwarded_stream(self.id, index)
    }

    fn handle(&mut self, event: Event, out: &mut Vec<Propagated>) {
        match event {
            Event::Connected => {
                self.connected = true;
                let _ = self.events.try_send(PeerEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.rtc.disconnect();
            }
            Event::MediaChanged(changed) => {
                let known = self.tracks_in.iter().any(|t| t.mid == changed.mid);
                if changed.direction.is_receiving() && !known {
                    let kind = self.rtc.media(changed.mid).map(|m| m.kind());
                    if let Some(kind) = kind {
                        let stream = self.stream_of(changed.mid);
                        self.tracks_in.push(TrackIn {
                            mid: changed.mid,
                            kind,
                            layers: Vec::new(),
                            rates: Vec::new(),
                            stream: stream.clone(),
                        });
                        out.push(Propagated::TrackOpen {
                            publisher: self.id,
                            mid: changed.mid,
                            kind,
                            stream,
                        });
                    }
                } else if !changed.direction.is_receiving() && known {
                    self.tracks_in.retain(|t| t.mid != changed.mid);
                    out.push(Propagated::TrackClosed {
                        publisher: self.id,
                        mid: changed.mid,
                    });
                }
            }
            Event::MediaAdded(added) if added.direction.is_receiving() => {
                let offered = added
                    .simulcast
                    .map(|s| if s.recv.is_empty() { s.send } else { s.recv })
                    .unwrap_or_default();
                let stream = self.stream_of(added.mid);
                let layers = layers::ranked(offered.into_iter().map(|l| l.rid).collect());
                let now = Instant::now();
                self.tracks_in.push(TrackIn {
                    mid: added.mid,
                    kind: added.kind,
                    rates: layers.iter().map(|_| layers::Rate::new(now)).collect(),
                    layers,
                    stream: stream.clone(),
                });
                out.push(Propagated::TrackOpen {
                    publisher: self.id,
                    mid: added.mid,
                    kind: added.kind,
                    stream,
                });
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let video = self.open_video().max(1);
                self.video_budget = Some(estimate.as_f64() / video as f64);
            }
            Event::MediaData(data) => {
                out.push(Propagated::Media {
                    publisher: self.id,
                    data: Box::new(data),
                });
            }
            Event::KeyframeRequest(request) => out.push(Propagated::Keyframe {
                subscriber: self.id,
                request,
            }),
            _ => {}
        }
    }

    /// Offers the tracks waiting to be opened, and stops those whose publisher left,
    /// unless an offer is waiting already (or the peer is not connected yet: it has then
    /// not applied the SFU's first answer).
    pub fn negotiate(&mut self) -> Option<(u64, String)> {
        if self.pending.is_some() || !self.connected {
            return None;
        }
        let mut api = self.rtc.sdp_api();
        for mid in self.stopping.drain(..) {
            api.stop_media(mid);
        }
        for track in &mut self.tracks_out {
            if track.state == OutState::ToOpen {
                let stream = track.stream.clone();
                let mid = api.add_media(track.kind, Direction::SendOnly, Some(stream), None, None);
                track.state = OutState::Negotiating(mid);
            }
        }
        let (offer, pending) = api.apply()?;
        self.offers += 1;
        self.pending = Some((self.offers, pending));
        Some((self.offers, offer.to_sdp_string()))
    }

    /// The SFU's offer is void (spent, or crossed by the peer's): what it offered is to be
    /// offered again.
    pub fn reoffer(&mut self) {
        self.pending = None;
        for track in &mut self.tracks_out {
            if let OutState::Negotiating(_) = track.state {
                track.state = OutState::ToOpen;
            }
        }
    }

    /// The peer answered the SFU's offer: the tracks offered are open.
    pub fn opened(&mut self) -> Vec<(Uuid, Mid)> {
        let mut opened = Vec::new();
        for track in &mut self.tracks_out {
            if let OutState::Negotiating(mid) = track.state {
                track.state = OutState::Open(mid);
                opened.push(track.source);
            }
        }
        // Probe for room for a top layer of every video it receives.
        let video = self.open_video() as u64;
        if video > 0 {
            let desired = Bitrate::kbps(TOP_LAYER_KBPS * video);
            self.rtc.bwe().set_bitrate(Bitrate::kbps(0), desired);
        }
        opened
    }

    /// How many video tracks it receives.
    fn open_video(&self) -> usize {
        self.tracks_out
            .iter()
            .filter(|t| t.kind == MediaKind::Video && matches!(t.state, OutState::Open(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_stack_is_contained() {
        let id = Uuid::new_v4();
        assert_eq!(shielded(id, || 7), Some(7));
        let panicked: Option<()> = shielded(id, || panic!("a str0m bug"));
        assert_eq!(panicked, None);
    }
}
