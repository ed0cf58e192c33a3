//! Calls end to end through the call service: three str0m participants (`sfu_client`, no
//! code of the server's) join a group call over the contract — `JoinCall`, `WatchCall`
//! for the SFU's offers and the call's changes, `SendSignal` for their SDP — and each
//! receives the others' audio and video byte for byte; muting stops a participant's audio
//! at the SFU; one who leaves, and one whose media goes silent, are out of the call and
//! the others are told.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use secureconnect_sdk::{
    Client,
    proto::call::v1::{watch_call_response::Event, *},
};
use secureconnect_server::sfu::PeerEvent;
use str0m::media::MediaKind;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    common::*,
    sfu_client::{self, Publish, Signaling},
};

/// Signaling over the contract: the SDK's `SendSignal` helpers.
pub struct ThroughCalls {
    client: Client,
    call_id: String,
}

#[async_trait]
impl Signaling for ThroughCalls {
    async fn connect(&self, offer: String) -> String {
        let reply = self.client.send_offer(&self.call_id, offer).await;
        reply.expect("offer").answer
    }

    async fn answer(&self, offer_id: u64, sdp: String) {
        self.client
            .send_answer(&self.call_id, offer_id, sdp)
            .await
            .expect("answer the SFU's offer");
    }

    async fn renegotiate(&self, offer: String) -> (String, u64) {
        let reply = self.client.send_offer(&self.call_id, offer).await;
        let reply = reply.expect("offer again");
        (reply.answer, reply.void_up_to)
    }
}

/// A participant: its media connection, and what its `WatchCall` stream said last.
pub struct Participant {
    pub media: sfu_client::Client,
    pub call: Arc<Mutex<Option<Call>>>,
    pub closing: Arc<Mutex<Option<CallClosingReason>>>,
}

impl Participant {
    /// Watches the call, then connects its media through the call service.
    pub async fn connect(user: &TestUser, call_id: &str, tag: u8) -> Participant {
        let mut stream = user.client.watch_call(call_id).await.expect("watch");
        let (events, received) = mpsc::channel(64);
        let call = Arc::new(Mutex::new(None));
        let closing = Arc::new(Mutex::new(None));
        let (seen, closed) = (Arc::clone(&call), Arc::clone(&closing));
        tokio::spawn(async move {
            while let Ok(Some(item)) = stream.message().await {
                let event = match item.event {
                    Some(Event::Call(call)) => {
                        *seen.lock().expect("lock") = Some(call);
                        continue;
                    }
                    Some(Event::Offer(offer)) => PeerEvent::Offer {
                        id: offer.offer_id,
                        sdp: offer.sdp,
                    },
                    Some(Event::MediaConnected(_)) => PeerEvent::Connected,
                    Some(Event::ActiveSpeaker(speaker)) => {
                        PeerEvent::ActiveSpeaker(Uuid::parse_str(&speaker.user_id).ok())
                    }
                    Some(Event::Closing(closing)) => {
                        *closed.lock().expect("lock") = Some(closing.reason());
                        continue;
                    }
                    None => continue,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
        });
        let signaling = ThroughCalls {
            client: user.client.clone(),
            call_id: call_id.to_owned(),
        };
        let id = Uuid::parse_str(&user.id).expect("user id");
        let media =
            sfu_client::Client::connect(id, Arc::new(signaling), received, tag, Publish::default())
                .await;
        Participant {
            media,
            call,
            closing,
        }
    }

    /// The call as the stream showed it last.
    pub fn call(&self) -> Option<Call> {
        self.call.lock().expect("lock").clone()
    }

    pub fn state_of(&self, user: &TestUser) -> Option<ParticipantState> {
        let call = self.call()?;
        let found = call.participants.iter().find(|p| p.user_id == user.id)?;
        Some(found.state())
    }
}

/// Waits (up to `seconds`) until `done` holds.
pub async fn eventually(seconds: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_participants_talk_through_the_call_service_and_leavers_are_seen() {
    let server = TestServer::start().await;
    let (alice, [bob, carol], group) = server.group(3).await.into_parts();
    let (call, _) = alice
        .client
        .start_call(&group.conversation_id, CallMedia::Video)
        .await
        .expect("start");
    for member in [&bob, &carol] {
        member
            .client
            .calls()
            .join_call(JoinCallRequest {
                call_id: call.call_id.clone(),
            })
            .await
            .expect("join");
    }
    let people = [&alice, &bob, &carol];
    let mut participants = Vec::new();
    for (i, person) in people.iter().enumerate() {
        participants.push(Participant::connect(person, &call.call_id, i as u8 + 1).await);
    }
    let [a, b, _] = &participants[..] else {
        unreachable!()
    };
    let hears = |who: &Participant, tag: u8, kind: MediaKind| who.media.count(tag, kind);
    eventually(
        20,
        "everyone gets 20 audio and video frames from each other",
        || {
            participants.iter().enumerate().all(|(i, p)| {
                (1..=3u8).filter(|&tag| tag != i as u8 + 1).all(|tag| {
                    hears(p, tag, MediaKind::Audio) >= 20 && hears(p, tag, MediaKind::Video) >= 20
                })
            })
        },
    )
    .await;
    // Every participant's tracks are named by a stream id the call shows.
    eventually(5, "the call shows three stream ids", || {
        a.call().is_some_and(|call| {
            let ids: std::collections::HashSet<_> = call
                .participants
                .iter()
                .filter(|p| !p.stream_id.is_empty())
                .map(|p| p.stream_id.clone())
                .collect();
            ids.len() == 3
        })
    })
    .await;

    // Carol mutes her microphone: the SFU stops her audio, her video goes on.
    carol
        .client
        .set_media_state(
            &call.call_id,
            MediaState {
                audio_muted: true,
                ..Default::default()
            },
        )
        .await
        .expect("mute");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (audio, video) = (hears(a, 3, MediaKind::Audio), hears(a, 3, MediaKind::Video));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        hears(a, 3, MediaKind::Audio),
        audio,
        "muted audio is not forwarded"
    );
    assert!(
        hears(a, 3, MediaKind::Video) > video + 10,
        "her video still flows"
    );
    eventually(5, "alice's stream shows carol muted", || {
        a.call().is_some_and(|call| {
            call.participants
                .iter()
                .any(|p| p.user_id == carol.id && p.media_state.is_some_and(|m| m.audio_muted))
        })
    })
    .await;

    // Bob leaves: the others are told, and his media stops.
    bob.client
        .calls()
        .leave_call(LeaveCallRequest {
            call_id: call.call_id.clone(),
        })
        .await
        .expect("leave");
    eventually(5, "alice sees bob leave", || {
        a.state_of(&bob) == Some(ParticipantState::Left)
    })
    .await;
    eventually(5, "bob's stream closes as left", || {
        *b.closing.lock().expect("lock") == Some(CallClosingReason::Left)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from_bob = hears(a, 2, MediaKind::Video);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hears(a, 2, MediaKind::Video),
        from_bob,
        "a leaver's media stops"
    );

    // Carol's client vanishes without a word: the SFU's ICE timeout takes her out of
    // the call, and alice is told.
    let Participant { media, closing, .. } = participants.remove(2);
    let _ = media.stop.send(());
    eventually(40, "alice sees carol's media lost", || {
        participants[0].state_of(&carol) == Some(ParticipantState::Left)
    })
    .await;
    assert_eq!(
        *closing.lock().expect("lock"),
        Some(CallClosingReason::MediaLost)
    );
    let now = alice
        .client
        .calls()
        .get_call(GetCallRequest {
            call_id: call.call_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .call
        .expect("call");
    assert_eq!(now.state(), CallState::Active, "alice is still in it");
}
