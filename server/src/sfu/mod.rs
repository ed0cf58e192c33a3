//! The SFU of calls: every participant's WebRTC connection ends here, and each one's
//! audio and video is forwarded to the others in the same room. Built on `str0m` (sans-IO
//! WebRTC): one task owns the node's UDP socket and every peer connection, so media never
//! waits on a lock, the database or the network stack of gRPC. Nothing here knows tonic:
//! the call service drives it with [`Sfu`]'s methods and gets [`PeerEvent`]s back.
//!
//! Signaling: a participant joins with its SDP offer and gets the answer; when others
//! publish, the SFU offers the new tracks to it ([`PeerEvent::Offer`]), and it answers with
//! [`Sfu::answer`], naming the offer. To publish more (or less) later, the participant
//! offers again ([`Sfu::renegotiate`]). If both offer at once, the participant's offer
//! wins: the SFU drops its own (the answer says which offers are void) and offers again
//! after. ICE is lite (the SFU only answers connectivity checks), with one host candidate:
//! the node's media address.

mod engine;
mod layers;
mod msid;
mod peer;
mod speakers;

pub use layers::Quality;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

pub use str0m::media::MediaKind;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Where the SFU listens.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The UDP socket all peers share (port 0: any free port).
    pub bind: SocketAddr,
    /// The address peers are told to send to, when `bind` is a wildcard (0.0.0.0) or
    /// behind NAT: the node's reachable IP, with the bound port.
    pub public_ip: Option<IpAddr>,
}

/// What happens to a peer, in order, for its signaling stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// An offer from the SFU (others' tracks to receive): answer with [`Sfu::answer`],
    /// unless [`Renegotiated::void_up_to`] voided it.
    Offer { id: u64, sdp: String },
    /// ICE and DTLS are up: media flows.
    Connected,
    /// Who in the room is speaking now (the loudest voice, held for a moment), or nobody.
    ActiveSpeaker(Option<Uuid>),
    /// The connection is gone (closed, timed out or never established); it is removed.
    Closed,
}

/// The SFU's answer to a participant's new offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renegotiated {
    pub answer: String,
    /// The SFU's offers up to this id are void: the participant ignores them (it had an
    /// offer of its own out when they crossed) and gets a new one.
    pub void_up_to: u64,
}

/// What the SFU has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// Peers connected or connecting now.
    pub peers: usize,
    /// Frames written to subscribers (an audio frame is one RTP packet).
    pub frames_forwarded: u64,
}

/// Why the SFU refused a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SfuError {
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("no such peer")]
    UnknownPeer,
    #[error("no offer of the SFU's is waiting for an answer")]
    NoPendingOffer,
    #[error("that offer of the SFU's is no longer waiting for an answer")]
    StaleOffer,
    #[error("the peer is in the room already")]
    AlreadyJoined,
    #[error("the SFU has stopped")]
    Stopped,
}

/// A handle to the SFU task; cloning it is cheap. The task stops when every handle is gone.
#[derive(Clone)]
pub struct Sfu {
    commands: mpsc::Sender<engine::Command>,
    media_addr: SocketAddr,
}

impl Sfu {
    /// Binds the UDP socket and starts the SFU's task.
    pub async fn start(config: SfuConfig) -> std::io::Result<Sfu> {
        let socket = tokio::net::UdpSocket::bind(config.bind).await?;
        let bound = socket.local_addr()?;
        let ip = config.public_ip.unwrap_or(bound.ip());
        if ip.is_unspecified() {
            return Err(std::io::Error::other(
                "the SFU binds a wildcard address: set its public IP",
            ));
        }
        let media_addr = SocketAddr::new(ip, bound.port());
        let (commands, queue) = mpsc::channel(256);
        tokio::spawn(engine::Engine::new(Arc::new(socket), media_addr).run(queue));
        Ok(Sfu {
            commands,
            media_addr,
        })
    }

    /// The address peers send media to.
    pub fn media_addr(&self) -> SocketAddr {
        self.media_addr
    }

    /// Adds `peer` to `room` with its SDP offer (what it publishes; it may publish nothing);
    /// the SFU's answer. Its events arrive on `events` until [`PeerEvent::Closed`].
    pub async fn join(
        &self,
        room: Uuid,
        peer: Uuid,
        offer: String,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<String, SfuError> {
        self.ask(|reply| engine::Command::Join {
            room,
            peer,
            offer,
            events,
            reply,
        })
        .await
    }

    /// The peer's answer to the SFU's offer `offer`.
    pub async fn answer(&self, peer: Uuid, offer: u64, answer: String) -> Result<(), SfuError> {
        self.ask(|reply| engine::Command::Answer {
            peer,
            offer,
            answer,
            reply,
        })
        .await
    }

    /// A new offer from the peer (a track added or stopped); the SFU's answer.
    pub async fn renegotiate(&self, peer: Uuid, offer: String) -> Result<Renegotiated, SfuError> {
        self.ask(|reply| engine::Command::Renegotiate { peer, offer, reply })
            .await
    }

    /// Stops (or resumes) forwarding the peer's tracks of one kind: muting is enforced
    /// here, not trusted to the peer's client. Resuming video asks for a keyframe.
    pub async fn set_muted(
        &self,
        peer: Uuid,
        kind: MediaKind,
        muted: bool,
    ) -> Result<(), SfuError> {
        self.ask(|reply| engine::Command::SetMuted {
            peer,
            kind,
            muted,
            reply,
        })
        .await
    }

    /// Which simulcast layer of others' video the peer receives (the highest by default).
    pub async fn set_quality(&self, peer: Uuid, quality: Quality) -> Result<(), SfuError> {
        self.ask(|reply| engine::Command::SetQuality {
            peer,
            quality,
            reply,
        })
        .await
    }

    /// Counters, for load scenarios and metrics.
    pub async fn stats(&self) -> Result<SfuStats, SfuError> {
        self.ask(|reply| engine::Command::Stats { reply }).await
    }

    /// Removes the peer (its tracks stop for the others); gone already is fine.
    pub async fn leave(&self, peer: Uuid) -> Result<(), SfuError> {
        self.ask(|reply| engine::Command::Leave { peer, reply })
            .await
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, SfuError>>) -> engine::Command,
    ) -> Result<T, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| SfuError::Stopped)?;
        answer.await.map_err(|_| SfuError::Stopped)?
    }
}
