//! A WebRTC participant for testing the SFU, built on str0m alone (full ICE, DTLS, SRTP, its
//! own UDP socket on loopback; none of the SFU's code): it publishes Opus audio and VP8
//! video frames whose bytes say who sent them and which they are, answers the SFU's offers,
//! and counts what it receives, checking every frame byte for byte. Shared by the test suite
//! and the SFU load scenario (`server/examples/sfu_load.rs`).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use secureconnect_server::sfu::{PeerEvent, Sfu};
use str0m::{
    Candidate, Event, Input, Output, Rtc,
    change::{SdpAnswer, SdpOffer},
    format::Codec,
    media::{Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer},
    net::{Protocol, Receive},
};
use tokio::{net::UdpSocket, sync::mpsc};
use uuid::Uuid;

/// Frames received, by (publisher's tag, kind): how many, all checked byte for byte.
pub type Received = Arc<Mutex<HashMap<(u8, MediaKind), u32>>>;

/// A frame's bytes: who sent it, which kind, which one. A VP8 frame starts with a keyframe
/// header byte, so every one is decodable on its own.
pub fn frame(tag: u8, kind: MediaKind, n: u32) -> Vec<u8> {
    let mut bytes = match kind {
        MediaKind::Audio => vec![b'A', tag],
        MediaKind::Video => vec![0x10, b'V', tag],
    };
    bytes.extend_from_slice(&n.to_be_bytes());
    let len = if kind == MediaKind::Audio { 80 } else { 1200 };
    bytes.extend((0..len).map(|i| (i as u8) ^ tag));
    bytes
}

/// Which publisher and frame number `bytes` are, if they are exactly such a frame.
fn decode(kind: MediaKind, bytes: &[u8]) -> Option<u8> {
    let at = if kind == MediaKind::Audio { 1 } else { 2 };
    let tag = *bytes.get(at)?;
    let n = u32::from_be_bytes(bytes.get(at + 1..at + 5)?.try_into().ok()?);
    (bytes == frame(tag, kind, n).as_slice()).then_some(tag)
}

/// How a client reaches the SFU: straight (the SFU's own API) or through the call service
/// (`SendSignal`, with the SFU's events from `WatchCall`).
#[async_trait]
pub trait Signaling: Send + Sync + 'static {
    /// The client's first offer; the SFU's answer.
    async fn connect(&self, offer: String) -> String;
    /// The client's answer to the SFU's offer `offer_id`.
    async fn answer(&self, offer_id: u64, sdp: String);
    /// A new offer of the client's; the SFU's answer, and up to which of its offers are
    /// void.
    async fn renegotiate(&self, offer: String) -> (String, u64);
}

/// Signaling straight to the SFU.
struct Direct {
    sfu: Sfu,
    room: Uuid,
    id: Uuid,
    events: Mutex<Option<mpsc::Sender<PeerEvent>>>,
}

#[async_trait]
impl Signaling for Direct {
    async fn connect(&self, offer: String) -> String {
        let events = self
            .events
            .lock()
            .expect("lock")
            .take()
            .expect("connect once");
        self.sfu
            .join(self.room, self.id, offer, events)
            .await
            .expect("join")
    }

    async fn answer(&self, offer_id: u64, sdp: String) {
        self.sfu
            .answer(self.id, offer_id, sdp)
            .await
            .expect("answer the SFU");
    }

    async fn renegotiate(&self, offer: String) -> (String, u64) {
        let answered = self
            .sfu
            .renegotiate(self.id, offer)
            .await
            .expect("renegotiate");
        (answered.answer, answered.void_up_to)
    }
}

/// A WebRTC participant on its own socket.
pub struct Client {
    pub id: Uuid,
    pub received: Received,
    /// The media stream ids of the tracks the SFU offered it.
    pub streams: Arc<Mutex<std::collections::BTreeSet<String>>>,
    /// The active speaker the SFU last announced, if it did.
    speaker: Arc<Mutex<Option<Option<Uuid>>>>,
    pub stop: tokio::sync::oneshot::Sender<()>,
}

/// What a client sends.
#[derive(Debug, Clone)]
pub struct Publish {
    pub audio: bool,
    pub video: bool,
    /// Its audio level, dBov (0 loudest, -127 silence).
    pub level: i8,
    /// Video in three simulcast layers, `l`, `m` and `h`: a layer's frames are tagged
    /// `tag * 10 + 1`, `+ 2` and `+ 3`.
    pub simulcast: bool,
    /// Starts sending video this long after connecting (offering again to say so).
    pub video_after: Option<Duration>,
    /// Also offers a second video track, in a stream of its own (as a screen share is).
    pub screen: bool,
    /// Receives over a bad link: two in five media datagrams are lost.
    pub lossy: bool,
}

/// The simulcast layers a client sends, lowest first.
pub const LAYERS: [&str; 3] = ["l", "m", "h"];

impl Default for Publish {
    fn default() -> Publish {
        Publish {
            audio: true,
            video: true,
            level: -80,
            simulcast: false,
            video_after: None,
            screen: false,
            lossy: false,
        }
    }
}

impl Client {
    /// Joins `room` publishing audio and video tagged `tag`, and runs until stopped.
    pub async fn join(sfu: &Sfu, room: Uuid, tag: u8) -> Client {
        Client::join_with(sfu, room, tag, Publish::default()).await
    }

    /// Joins publishing what `publish` says (a client publishing nothing only receives).
    pub async fn join_with(sfu: &Sfu, room: Uuid, tag: u8, publish: Publish) -> Client {
        let id = Uuid::new_v4();
        let (events_tx, events) = mpsc::channel(64);
        let direct = Direct {
            sfu: sfu.clone(),
            room,
            id,
            events: Mutex::new(Some(events_tx)),
        };
        Client::connect(id, Arc::new(direct), events, tag, publish).await
    }

    /// Connects through `signaling`, with the SFU's events on `events` (`id`: the
    /// client's, as the SFU's active-speaker events name it).
    pub async fn connect(
        id: Uuid,
        signaling: Arc<dyn Signaling>,
        events: mpsc::Receiver<PeerEvent>,
        tag: u8,
        publish: Publish,
    ) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = socket.local_addr().expect("addr");
        let mut rtc = Rtc::builder().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let direction = |sends| match sends {
            true => Direction::SendOnly,
            false => Direction::Inactive,
        };
        // Camera and microphone in one stream, as browsers send them.
        let camera = Some("camera".to_owned());
        let audio = api.add_media(
            MediaKind::Audio,
            direction(publish.audio),
            camera.clone(),
            None,
            None,
        );
        let layers = publish.simulcast.then(|| Simulcast {
            send: LAYERS.iter().map(|rid| SimulcastLayer::new(rid)).collect(),
            recv: Vec::new(),
        });
        let video = api.add_media(
            MediaKind::Video,
            direction(publish.video),
            camera,
            None,
            layers,
        );
        if publish.screen {
            let screen = Some("screen".to_owned());
            api.add_media(MediaKind::Video, Direction::SendOnly, screen, None, None);
        }
        let (offer, pending) = api.apply().expect("offer");
        let answer = signaling.connect(offer.to_sdp_string()).await;
        rtc.sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&answer).expect("answer"),
            )
            .expect("accept answer");
        let received = Received::default();
        let streams = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        let speaker = Arc::new(Mutex::new(None));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let run = Run {
            signaling,
            tag,
            rtc,
            socket,
            local,
            audio,
            video,
            publish,
            received: Arc::clone(&received),
            speaker: Arc::clone(&speaker),
            streams: Arc::clone(&streams),
        };
        tokio::spawn(run.run(events, stopped));
        Client {
            id,
            received,
            streams,
            speaker,
            stop,
        }
    }

    pub fn speaker(&self) -> Option<Option<Uuid>> {
        *self.speaker.lock().expect("lock")
    }

    pub fn count(&self, tag: u8, kind: MediaKind) -> u32 {
        let received = self.received.lock().expect("lock");
        received.get(&(tag, kind)).copied().unwrap_or(0)
    }
}

struct Run {
    signaling: Arc<dyn Signaling>,
    tag: u8,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    audio: Mid,
    video: Mid,
    publish: Publish,
    received: Received,
    speaker: Arc<Mutex<Option<Option<Uuid>>>>,
    streams: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl Run {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<PeerEvent>,
        mut stopped: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut buffer = vec![0u8; 2048];
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        let mut connected = false;
        let mut sent = 0u32;
        // The SFU's offers up to this one crossed one of ours: they are void.
        let mut void_up_to = 0;
        let start_video = self.publish.video_after.map(|after| Instant::now() + after);
        let mut start_video = std::pin::pin!(async move {
            match start_video {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        });
        let mut video_started = false;
        let mut received_media = 0u64;
        loop {
            let wake = self.drain(&mut connected);
            tokio::select! {
                _ = &mut stopped => return,
                event = events.recv() => match event {
                    Some(PeerEvent::Offer { id, sdp }) => {
                        if id <= void_up_to {
                            continue;
                        }
                        // The streams of what the SFU sends (its own tracks' sections).
                        let named = sdp.split("\nm=").filter(|m| m.contains("a=sendonly")).filter_map(|m| {
                            let msid = m.lines().find_map(|l| l.trim_end().strip_prefix("a=msid:"))?;
                            msid.split(' ').next().map(str::to_owned)
                        });
                        self.streams.lock().expect("lock").extend(named);
                        let offer = SdpOffer::from_sdp_string(&sdp).expect("SFU offer");
                        let answer = self.rtc.sdp_api().accept_offer(offer).expect("accept");
                        self.drain(&mut connected);
                        self.signaling.answer(id, answer.to_sdp_string()).await;
                    }
                    Some(PeerEvent::ActiveSpeaker(peer)) => {
                        *self.speaker.lock().expect("lock") = Some(peer);
                    }
                    Some(_) => {}
                    None => return,
                },
                got = self.socket.recv_from(&mut buffer) => {
                    let Ok((len, from)) = got else { continue };
                    // (S)RTP and RTCP start with 128–191 (RFC 7983).
                    let media = (128..192).contains(&buffer[0]);
                    if self.publish.lossy && connected && media {
                        received_media += 1;
                        if received_media % 5 < 2 {
                            continue;
                        }
                    }
                    let Ok(contents) = buffer[..len].try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source: from,
                        destination: self.local,
                        contents,
                    });
                    self.rtc.handle_input(input).expect("input");
                }
                () = &mut start_video, if connected && !video_started => {
                    video_started = true;
                    let mut api = self.rtc.sdp_api();
                    api.set_direction(self.video, Direction::SendOnly);
                    let (offer, pending) = api.apply().expect("offer video");
                    self.drain(&mut connected);
                    let (answer, void) = self.signaling.renegotiate(offer.to_sdp_string()).await;
                    void_up_to = void;
                    let answer = SdpAnswer::from_sdp_string(&answer).expect("answer");
                    self.rtc
                        .sdp_api()
                        .accept_answer(pending, answer)
                        .expect("accept the SFU's answer");
                    self.publish.video = true;
                }
                _ = ticks.tick(), if connected => {
                    sent += 1;
                    if self.publish.audio {
                        self.send(MediaKind::Audio, sent);
                        self.drain(&mut connected);
                    }
                    if self.publish.video && self.publish.simulcast {
                        for (i, rid) in LAYERS.iter().enumerate() {
                            let tag = self.tag * 10 + i as u8 + 1;
                            self.send_as(MediaKind::Video, sent, tag, Some(Rid::from(*rid)));
                            self.drain(&mut connected);
                        }
                    } else if self.publish.video {
                        self.send(MediaKind::Video, sent);
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).expect("timeout");
                }
            }
        }
    }

    fn send(&mut self, kind: MediaKind, n: u32) {
        self.send_as(kind, n, self.tag, None);
    }

    /// Sends frame `n` tagged `tag` (of simulcast layer `rid`).
    fn send_as(&mut self, kind: MediaKind, n: u32, tag: u8, rid: Option<Rid>) {
        let (mid, codec, rate, step) = match kind {
            MediaKind::Audio => (self.audio, Codec::Opus, Frequency::FORTY_EIGHT_KHZ, 960),
            MediaKind::Video => (self.video, Codec::Vp8, Frequency::NINETY_KHZ, 1800),
        };
        let mut writer = self.rtc.writer(mid).expect("writer");
        if kind == MediaKind::Audio {
            let level = self.publish.level;
            writer = writer.audio_level(level, level > -50);
        }
        if let Some(rid) = rid {
            writer = writer.rid(rid);
        }
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .expect("codec negotiated")
            .pt();
        let time = MediaTime::new(u64::from(n) * step, rate);
        writer
            .write(pt, Instant::now(), time, frame(tag, kind, n))
            .expect("write");
    }

    /// Runs the connection's output until it waits; when it next wants a timeout.
    fn drain(&mut self, connected: &mut bool) -> Instant {
        loop {
            match self.rtc.poll_output().expect("output") {
                Output::Timeout(at) => return at,
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => *connected = true,
                Output::Event(Event::MediaData(data)) => {
                    let kind = if data.params.spec().codec == Codec::Opus {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    };
                    let tag = decode(kind, &data.data)
                        .unwrap_or_else(|| panic!("a {kind:?} frame not as sent"));
                    assert_ne!(tag, self.tag, "its own media came back");
                    if kind == MediaKind::Audio {
                        assert!(
                            data.ext_vals.audio_level.is_some(),
                            "the level is forwarded"
                        );
                    }
                    *self
                        .received
                        .lock()
                        .expect("lock")
                        .entry((tag, kind))
                        .or_default() += 1;
                }
                Output::Event(_) => {}
            }
        }
    }
}
