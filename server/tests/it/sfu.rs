//! The SFU with real WebRTC peers: test clients built on str0m (full ICE, DTLS, SRTP, their
//! own UDP sockets on loopback; none of the SFU's code) join a room, each publishes Opus
//! audio and VP8 video, and each must receive the other two's frames byte for byte. A peer
//! that leaves stops reaching the others, who are offered its tracks' end; muting is
//! enforced by the SFU, and the loudest voice is announced as the active speaker.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use secureconnect_server::sfu::{PeerEvent, Sfu, SfuConfig, SfuError};
use str0m::{
    Candidate, Event, Input, Output, Rtc,
    change::{SdpAnswer, SdpOffer},
    format::Codec,
    media::{Direction, Frequency, MediaKind, MediaTime, Mid},
    net::{Protocol, Receive},
};
use tokio::{net::UdpSocket, sync::mpsc};
use uuid::Uuid;

/// Frames received, by (publisher's tag, kind): how many, all checked byte for byte.
type Received = Arc<Mutex<HashMap<(u8, MediaKind), u32>>>;

/// A frame's bytes: who sent it, which kind, which one. A VP8 frame starts with a keyframe
/// header byte, so every one is decodable on its own.
fn frame(tag: u8, kind: MediaKind, n: u32) -> Vec<u8> {
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

/// A WebRTC participant on its own socket.
struct Client {
    id: Uuid,
    received: Received,
    /// The active speaker the SFU last announced, if it did.
    speaker: Arc<Mutex<Option<Option<Uuid>>>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Client {
    /// Joins `room` publishing audio and video tagged `tag`, and runs until stopped.
    async fn join(sfu: &Sfu, room: Uuid, tag: u8) -> Client {
        Client::join_at(sfu, room, tag, -80).await
    }

    /// Joins with its audio at `level` dBov (0 loudest, -127 silence).
    async fn join_at(sfu: &Sfu, room: Uuid, tag: u8, level: i8) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = socket.local_addr().expect("addr");
        let mut rtc = Rtc::builder().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        let id = Uuid::new_v4();
        let (events_tx, events) = mpsc::channel(64);
        let answer = sfu
            .join(room, id, offer.to_sdp_string(), events_tx)
            .await
            .expect("join");
        rtc.sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&answer).expect("answer"),
            )
            .expect("accept answer");
        let received = Received::default();
        let speaker = Arc::new(Mutex::new(None));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let run = Run {
            sfu: sfu.clone(),
            id,
            tag,
            rtc,
            socket,
            local,
            audio,
            video,
            level,
            received: Arc::clone(&received),
            speaker: Arc::clone(&speaker),
        };
        tokio::spawn(run.run(events, stopped));
        Client {
            id,
            received,
            speaker,
            stop,
        }
    }

    fn speaker(&self) -> Option<Option<Uuid>> {
        *self.speaker.lock().expect("lock")
    }

    fn count(&self, tag: u8, kind: MediaKind) -> u32 {
        let received = self.received.lock().expect("lock");
        received.get(&(tag, kind)).copied().unwrap_or(0)
    }
}

struct Run {
    sfu: Sfu,
    id: Uuid,
    tag: u8,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    audio: Mid,
    video: Mid,
    level: i8,
    received: Received,
    speaker: Arc<Mutex<Option<Option<Uuid>>>>,
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
        loop {
            let wake = self.drain(&mut connected);
            tokio::select! {
                _ = &mut stopped => return,
                event = events.recv() => match event {
                    Some(PeerEvent::Offer(sdp)) => {
                        let offer = SdpOffer::from_sdp_string(&sdp).expect("SFU offer");
                        let answer = self.rtc.sdp_api().accept_offer(offer).expect("accept");
                        self.drain(&mut connected);
                        self.sfu
                            .answer(self.id, answer.to_sdp_string())
                            .await
                            .expect("answer the SFU");
                    }
                    Some(PeerEvent::ActiveSpeaker(peer)) => {
                        *self.speaker.lock().expect("lock") = Some(peer);
                    }
                    Some(_) => {}
                    None => return,
                },
                got = self.socket.recv_from(&mut buffer) => {
                    let Ok((len, from)) = got else { continue };
                    let Ok(contents) = buffer[..len].try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source: from,
                        destination: self.local,
                        contents,
                    });
                    self.rtc.handle_input(input).expect("input");
                }
                _ = ticks.tick(), if connected => {
                    sent += 1;
                    self.send(MediaKind::Audio, sent);
                    self.drain(&mut connected);
                    self.send(MediaKind::Video, sent);
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).expect("timeout");
                }
            }
        }
    }

    fn send(&mut self, kind: MediaKind, n: u32) {
        let (mid, codec, rate, step) = match kind {
            MediaKind::Audio => (self.audio, Codec::Opus, Frequency::FORTY_EIGHT_KHZ, 960),
            MediaKind::Video => (self.video, Codec::Vp8, Frequency::NINETY_KHZ, 1800),
        };
        let mut writer = self.rtc.writer(mid).expect("writer");
        if kind == MediaKind::Audio {
            writer = writer.audio_level(self.level, self.level > -50);
        }
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .expect("codec negotiated")
            .pt();
        let time = MediaTime::new(u64::from(n) * step, rate);
        writer
            .write(pt, Instant::now(), time, frame(self.tag, kind, n))
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

async fn sfu() -> Sfu {
    Sfu::start(SfuConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        public_ip: None,
    })
    .await
    .expect("start the SFU")
}

/// Waits (up to 20 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_peers_receive_each_others_audio_and_video_and_a_leaver_stops() {
    let sfu = sfu().await;
    let room = Uuid::new_v4();
    let clients = [
        Client::join(&sfu, room, 1).await,
        Client::join(&sfu, room, 2).await,
        Client::join(&sfu, room, 3).await,
    ];
    // Another room's peer sees none of it.
    let outsider = Client::join(&sfu, Uuid::new_v4(), 9).await;
    let everyone = |clients: &[Client]| {
        clients.iter().enumerate().all(|(i, client)| {
            (1..=3u8).filter(|&tag| tag != i as u8 + 1).all(|tag| {
                client.count(tag, MediaKind::Audio) >= 20
                    && client.count(tag, MediaKind::Video) >= 20
            })
        })
    };
    eventually(
        "every peer gets 20 audio and 20 video frames from each other",
        || everyone(&clients),
    )
    .await;
    for tag in 1..=3 {
        assert_eq!(outsider.count(tag, MediaKind::Video), 0, "rooms are apart");
    }

    // The third leaves: the first two stop receiving from it, and still get each other.
    let [first, second, third] = clients;
    sfu.leave(third.id).await.expect("leave");
    let _ = third.stop.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = (
        first.count(3, MediaKind::Video),
        second.count(3, MediaKind::Video),
    );
    let from_second = first.count(2, MediaKind::Audio);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        (
            first.count(3, MediaKind::Video),
            second.count(3, MediaKind::Video)
        ),
        before,
        "nothing more from the one who left"
    );
    assert!(
        first.count(2, MediaKind::Audio) > from_second + 10,
        "the others go on"
    );
    assert_eq!(sfu.leave(third.id).await, Ok(()), "leaving twice is fine");
    drop((first.stop, second.stop, outsider.stop));
}

#[tokio::test]
async fn malformed_signaling_is_refused_without_harm() {
    let sfu = sfu().await;
    let (events, _keep) = mpsc::channel(4);
    let refused = sfu
        .join(
            Uuid::new_v4(),
            Uuid::new_v4(),
            "v=0\r\nnot sdp".into(),
            events,
        )
        .await;
    assert!(
        matches!(refused, Err(SfuError::InvalidSdp(_))),
        "{refused:?}"
    );
    assert_eq!(
        sfu.answer(Uuid::new_v4(), "v=0".into()).await,
        Err(SfuError::UnknownPeer)
    );
    // The SFU still works.
    let room = Uuid::new_v4();
    let a = Client::join(&sfu, room, 1).await;
    let b = Client::join(&sfu, room, 2).await;
    eventually("media flows after the bad requests", || {
        a.count(2, MediaKind::Audio) > 5 && b.count(1, MediaKind::Audio) > 5
    })
    .await;
    assert_eq!(
        sfu.answer(a.id, "v=0\r\nbroken".into())
            .await
            .map_err(|e| matches!(e, SfuError::InvalidSdp(_) | SfuError::NoPendingOffer)),
        Err(true)
    );
}

/// A peer that vanishes (its process gone: no more packets, no goodbye) is dropped once
/// its connectivity checks stop (ICE consent), and the others stop getting its tracks.
#[tokio::test]
async fn a_peer_that_stops_answering_is_dropped() {
    let sfu = sfu().await;
    let room = Uuid::new_v4();
    let stays = Client::join(&sfu, room, 1).await;
    let vanishes = Client::join(&sfu, room, 2).await;
    eventually("media flows", || stays.count(2, MediaKind::Video) > 5).await;
    let id = vanishes.id;
    drop(vanishes.stop); // Its task ends: silence.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match sfu.answer(id, "v=0".into()).await {
            Err(SfuError::UnknownPeer) => break,
            _ => {
                assert!(Instant::now() < deadline, "the silent peer is still there");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    drop(stays.stop);
}

/// The loud one is announced as the speaker; muting them stops their audio at the SFU
/// (their video goes on) and the floor falls silent; unmuting brings the audio back.
#[tokio::test]
async fn the_loudest_is_the_speaker_and_muting_is_enforced_by_the_sfu() {
    let sfu = sfu().await;
    let room = Uuid::new_v4();
    let loud = Client::join_at(&sfu, room, 1, -10).await;
    let quiet = Client::join(&sfu, room, 2).await;
    let other = Client::join(&sfu, room, 3).await;
    eventually("the loud one is the speaker, for everyone", || {
        [&loud, &quiet, &other]
            .iter()
            .all(|c| c.speaker() == Some(Some(loud.id)))
    })
    .await;

    sfu.set_muted(loud.id, MediaKind::Audio, true)
        .await
        .expect("mute");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audio = quiet.count(1, MediaKind::Audio);
    let video = quiet.count(1, MediaKind::Video);
    eventually("nobody speaks once the loud one is muted", || {
        quiet.speaker() == Some(None)
    })
    .await;
    assert_eq!(
        quiet.count(1, MediaKind::Audio),
        audio,
        "no audio while muted"
    );
    assert!(
        quiet.count(1, MediaKind::Video) > video + 10,
        "video goes on"
    );

    sfu.set_muted(loud.id, MediaKind::Audio, false)
        .await
        .expect("unmute");
    eventually("audio again", || {
        quiet.count(1, MediaKind::Audio) > audio + 10
    })
    .await;
    assert_eq!(
        sfu.set_muted(Uuid::new_v4(), MediaKind::Audio, true).await,
        Err(SfuError::UnknownPeer)
    );
    drop((loud.stop, quiet.stop, other.stop));
}
