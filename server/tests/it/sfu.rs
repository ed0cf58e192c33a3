//! The SFU with real WebRTC peers (`sfu_client`: str0m clients on loopback UDP): each of
//! three receives the other two's audio and video byte for byte; a peer that leaves stops
//! reaching the others, who are offered its tracks' end; a silent one is dropped; muting is
//! enforced by the SFU, and the loudest voice is announced as the active speaker; a peer's
//! second stream (a screen share) reaches the others as a stream of its own; a subscriber
//! on a bad link gets a lower simulcast layer by its bandwidth estimate.

use std::time::{Duration, Instant};

use secureconnect_server::sfu::{Quality, Sfu, SfuConfig, SfuError};
use str0m::media::MediaKind;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::sfu_client::{Client, Publish};

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
        sfu.answer(Uuid::new_v4(), 1, "v=0".into()).await,
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
    // Garbage at the media port, shaped like each protocol it carries (STUN 0-3, DTLS
    // 20-63, RTP/RTCP 128-191) and not: the call goes on.
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..3000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 1 + (seed % 1200) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|j| (seed >> (j % 56)) as u8).collect();
        bytes[0] = [0u8, 1, 22, 23, 128, 144, 200, 255][(i % 8) as usize];
        let _ = attacker.send_to(&bytes, sfu.media_addr()).await;
    }
    let before = a.count(2, MediaKind::Audio);
    eventually("media still flows after the garbage", || {
        a.count(2, MediaKind::Audio) > before + 20
    })
    .await;
    // An answer to an offer that is not waiting (answered, or never made) is refused
    // before its SDP is even read.
    let refused = sfu.answer(a.id, 99, "v=0\r\nbroken".into()).await;
    assert!(
        matches!(
            refused,
            Err(SfuError::StaleOffer | SfuError::NoPendingOffer)
        ),
        "{refused:?}"
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
        match sfu.answer(id, 1, "v=0".into()).await {
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
    let loud = Client::join_with(
        &sfu,
        room,
        1,
        Publish {
            level: -10,
            ..Publish::default()
        },
    )
    .await;
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

/// An SFU with a room whose first peer (tag 1) publishes video in three simulcast layers.
async fn simulcast_room() -> (Sfu, Uuid, Client) {
    let sfu = sfu().await;
    let room = Uuid::new_v4();
    let layered = Publish {
        simulcast: true,
        ..Publish::default()
    };
    let publisher = Client::join_with(&sfu, room, 1, layered).await;
    (sfu, room, publisher)
}

/// A publisher sends three simulcast layers: each subscriber gets only the layer its
/// quality asks for, and moves to another when its quality changes.
#[tokio::test]
async fn each_subscriber_gets_the_simulcast_layer_it_asks_for() {
    let (sfu, room, publisher) = simulcast_room().await;
    let high = Client::join(&sfu, room, 2).await;
    let low = Client::join(&sfu, room, 3).await;
    sfu.set_quality(low.id, Quality::Low)
        .await
        .expect("quality");
    // Layer tags: 11 is `l`, 12 `m`, 13 `h`.
    eventually("each gets its layer", || {
        high.count(13, MediaKind::Video) > 20 && low.count(11, MediaKind::Video) > 20
    })
    .await;
    assert_eq!(
        high.count(11, MediaKind::Video) + high.count(12, MediaKind::Video),
        0
    );
    assert_eq!(
        low.count(12, MediaKind::Video) + low.count(13, MediaKind::Video),
        0
    );

    sfu.set_quality(low.id, Quality::High)
        .await
        .expect("quality");
    eventually("the low one moves up", || {
        low.count(13, MediaKind::Video) > 20
    })
    .await;
    let stopped = low.count(11, MediaKind::Video);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        low.count(11, MediaKind::Video),
        stopped,
        "the old layer stops"
    );
    drop((publisher.stop, high.stop, low.stop));
}

/// A peer that joins with audio only and starts its camera later offers again: the SFU
/// answers, and the others are offered the new track and receive it.
#[tokio::test]
async fn a_peer_adds_video_later_by_offering_again() {
    let sfu = sfu().await;
    let room = Uuid::new_v4();
    let camera_later = Publish {
        video: false,
        video_after: Some(Duration::from_millis(800)),
        ..Publish::default()
    };
    let late = Client::join_with(&sfu, room, 1, camera_later).await;
    let watcher = Client::join(&sfu, room, 2).await;
    eventually("audio first", || watcher.count(1, MediaKind::Audio) > 10).await;
    assert_eq!(watcher.count(1, MediaKind::Video), 0, "no camera yet");
    eventually("then video", || watcher.count(1, MediaKind::Video) > 20).await;
    assert!(
        late.count(2, MediaKind::Video) > 20,
        "and it still receives"
    );
    drop((late.stop, watcher.stop));
}

#[tokio::test]
async fn a_peers_second_stream_reaches_the_others_as_a_stream_of_its_own() {
    let sfu = sfu().await;
    let room = Uuid::new_v4();
    let sharing = Publish {
        screen: true,
        ..Publish::default()
    };
    let presenter = Client::join_with(&sfu, room, 1, sharing).await;
    let viewer = Client::join(&sfu, room, 2).await;
    let expected: std::collections::BTreeSet<String> =
        [presenter.id.to_string(), format!("{}.1", presenter.id)].into();
    eventually(
        "the viewer is offered the camera's and the screen's streams",
        || *viewer.streams.lock().expect("lock") == expected,
    )
    .await;
    eventually("and the presenter only the viewer's one", || {
        *presenter.streams.lock().expect("lock") == [viewer.id.to_string()].into()
    })
    .await;
    eventually("camera video flows as before", || {
        viewer.count(1, MediaKind::Video) >= 10 && viewer.count(1, MediaKind::Audio) >= 10
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_on_a_bad_link_is_moved_to_a_lower_layer_by_its_bandwidth_estimate() {
    let (sfu, room, publisher) = simulcast_room().await;
    let good = Client::join(&sfu, room, 2).await;
    let lossy = Publish {
        lossy: true,
        ..Publish::default()
    };
    let bad = Client::join_with(&sfu, room, 3, lossy).await;
    // Both asked for the top layer (tag 13). The bad link's loss brings its estimate, and
    // so its layer, down; the good link's estimate leaves room for the top one.
    let video = |client: &Client| [11, 12, 13].map(|tag| client.count(tag, MediaKind::Video));
    eventually("the bad link is moved to the lowest layer", || {
        video(&bad)[0] > 20
    })
    .await;
    eventually("the good link is on the top layer", || video(&good)[2] > 20).await;
    let (good_then, bad_then) = (video(&good), video(&bad));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (good_now, bad_now) = (video(&good), video(&bad));
    assert!(
        good_now[2] > good_then[2] + 50,
        "good: top layer flows {good_then:?} → {good_now:?}"
    );
    assert_eq!(good_now[..2], good_then[..2], "good: nothing else");
    assert!(
        bad_now[0] > bad_then[0] + 25,
        "bad: lowest layer flows {bad_then:?} → {bad_now:?}"
    );
    assert_eq!(bad_now[2], bad_then[2], "bad: not the top layer");
    drop((publisher.stop, good.stop, bad.stop));
}
