//! Calls through the real server, their lifecycle: a call is a message of the timeline
//! that rings the members, joining answers it, its end is a `call_ended` timeline event
//! with its duration; declines, missed rings, limits, blocks, outsiders and bad input
//! follow the contract. (Media through the SFU: `call_media`.) Runs on the embedded
//! default and, in the services pass, on PostgreSQL with Cassandra history.

use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};
use secureconnect_sdk::proto::{
    call::v1::*,
    conversation::v1::RemoveMemberRequest,
    event::v1::{SubscribeResponse, conversation_event::Change, subscribe_response::Event},
    message::v1::{EditMessageRequest, MessageContent, SendMessageRequest, message_content::Body},
    user::v1::BlockUserRequest,
};
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt;

use crate::common::*;

/// The server's status behind an SDK error.
fn status(error: secureconnect_sdk::Error) -> Status {
    match error {
        secureconnect_sdk::Error::Rpc(rpc) => rpc.status().clone(),
        other => panic!("not an answer from the server: {other}"),
    }
}

async fn start(user: &TestUser, conversation_id: &str, media: CallMedia) -> Call {
    let (call, _) = user
        .client
        .start_call(conversation_id, media)
        .await
        .expect("start call");
    call
}

async fn join(user: &TestUser, call: &Call) -> Result<JoinCallResponse, Status> {
    user.client
        .calls()
        .join_call(JoinCallRequest {
            call_id: call.call_id.clone(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn get(user: &TestUser, call: &Call) -> Result<Call, Status> {
    user.client
        .calls()
        .get_call(GetCallRequest {
            call_id: call.call_id.clone(),
        })
        .await
        .map(|r| r.into_inner().call.expect("call"))
}

fn state_of(call: &Call, user: &TestUser) -> ParticipantState {
    call.participants
        .iter()
        .find(|p| p.user_id == user.id)
        .map(|p| p.state())
        .unwrap_or_else(|| panic!("{} is not in the call", user.email))
}

/// The call a stream item carries: a call message, a call update or a call's end.
fn call_in(item: &SubscribeResponse) -> Option<(&'static str, &Call)> {
    match item.event.as_ref()? {
        Event::CallUpdated(update) => Some(("updated", update.call.as_ref()?)),
        Event::ConversationEvent(event) => match event.change.as_ref()? {
            Change::MessageSent(message) => match message.content.as_ref()?.body.as_ref()? {
                Body::Call(call) => Some(("message", call)),
                _ => None,
            },
            Change::CallEnded(ended) => Some(("ended", ended.call.as_ref()?)),
            _ => None,
        },
        _ => None,
    }
}

/// `owner` removes `member` from the group.
async fn remove(owner: &TestUser, group_id: &str, member: &TestUser) {
    owner
        .client
        .conversations()
        .remove_member(RemoveMemberRequest {
            conversation_id: group_id.to_owned(),
            user_id: member.id.clone(),
        })
        .await
        .expect("remove a member");
}

/// Reads `stream` until an item of `kind` about a call that passes `check`.
async fn until_call(
    stream: &mut Streaming<SubscribeResponse>,
    kind: &str,
    check: impl Fn(&Call) -> bool,
) -> Call {
    loop {
        let item = next(stream).await;
        if let Some((seen, call)) = call_in(&item)
            && seen == kind
            && check(call)
        {
            return call.clone();
        }
    }
}

#[tokio::test]
async fn a_call_rings_is_answered_and_ends_with_its_duration_in_the_timeline() {
    let server = TestServer::start_with(|config| {
        config.calls.stun_urls = vec!["stun:stun.example.org:3478".into()];
        config.calls.turn_urls = vec!["turn:turn.example.org:3478?transport=udp".into()];
        config.calls.turn_secret = "north".into();
    })
    .await;
    let (alice, bob) = server.pair().await;
    let carol = server.register("carol").await;
    let direct = alice.direct_with(&bob).await;
    let mut bobs = bob.subscribe("").await;
    until_caught_up(&mut bobs).await;

    let call = start(&alice, &direct.conversation_id, CallMedia::Video).await;
    assert_eq!(call.state(), CallState::Ringing);
    assert_eq!(call.media(), CallMedia::Video);
    assert_eq!(state_of(&call, &alice), ParticipantState::Joined);
    assert_eq!(state_of(&call, &bob), ParticipantState::Ringing);

    // The call's message rings bob's devices, as the call is.
    let rung = until_call(&mut bobs, "message", |c| c.call_id == call.call_id).await;
    assert_eq!(rung.state(), CallState::Ringing);
    assert_eq!(state_of(&rung, &bob), ParticipantState::Ringing);
    assert_eq!(rung.message_id, call.message_id);

    // One call at a time per conversation, and the refusal names the call to join.
    let again = alice
        .client
        .start_call(&direct.conversation_id, CallMedia::Audio)
        .await
        .map_err(status);
    let refused = assert_code(again, Code::FailedPrecondition);
    assert_eq!(reason(&refused), "CALL_IN_PROGRESS");
    let info = refused
        .get_error_details()
        .error_info()
        .cloned()
        .expect("error info");
    assert_eq!(info.metadata.get("call_id"), Some(&call.call_id));

    // Outsiders see nothing of it.
    assert_code(get(&carol, &call).await, Code::NotFound);
    assert_code(join(&carol, &call).await, Code::NotFound);

    // Bob answers, with ICE servers and TURN credentials in the coturn REST format.
    let joined = join(&bob, &call).await.expect("join");
    let answered = joined.call.expect("call");
    assert_eq!(answered.state(), CallState::Active);
    assert!(answered.answer_time.is_some());
    assert_eq!(joined.ice_servers.len(), 2);
    assert_eq!(joined.ice_servers[0].urls, ["stun:stun.example.org:3478"]);
    let turn = &joined.ice_servers[1];
    let (expiry, user) = turn.username.split_once(':').expect("expiry:user");
    assert_eq!(user, bob.id);
    let expiry: i64 = expiry.parse().expect("expiry");
    let ttl = expiry - chrono::Utc::now().timestamp();
    assert!((12 * 3600 - 60..=12 * 3600).contains(&ttl), "ttl {ttl}");
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"north").expect("key");
    mac.update(turn.username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn.credential, password);

    let update = until_call(&mut bobs, "updated", |c| {
        c.call_id == call.call_id && c.state() == CallState::Active
    })
    .await;
    assert_eq!(state_of(&update, &bob), ParticipantState::Joined);

    // Only the caller or an admin ends it for everyone: in a direct conversation both
    // are plain members, so bob may not, but hanging up ends a call between two.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ended = bob
        .client
        .calls()
        .end_call(EndCallRequest {
            call_id: call.call_id.clone(),
        })
        .await;
    assert_eq!(
        reason(&assert_code(ended, Code::PermissionDenied)),
        "INSUFFICIENT_ROLE"
    );
    let left = bob
        .client
        .calls()
        .leave_call(LeaveCallRequest {
            call_id: call.call_id.clone(),
        })
        .await
        .expect("leave")
        .into_inner()
        .call
        .expect("call");
    assert_eq!(left.state(), CallState::Ended);
    assert_eq!(left.end_reason(), CallEndReason::Completed);
    let duration = left.duration.expect("an answered call has a duration");
    assert!(duration.seconds >= 1, "{duration:?}");

    // The end is a timeline event, and the call's message now reads as ended.
    let ended = until_call(&mut bobs, "ended", |c| c.call_id == call.call_id).await;
    assert_eq!(ended.end_reason(), CallEndReason::Completed);
    assert_eq!(ended.duration, left.duration);
    let messages = alice.list_messages(&direct.conversation_id).await;
    let Some(Body::Call(in_timeline)) = messages
        .iter()
        .find(|m| m.message_id == call.message_id)
        .and_then(|m| m.content.as_ref()?.body.clone())
    else {
        panic!("the call's message is in the timeline");
    };
    assert_eq!(in_timeline.state(), CallState::Ended);
    assert_eq!(in_timeline.duration, left.duration);

    // Histories: the conversation's, and each person's.
    for (who, conversation_id) in [(&alice, direct.conversation_id.as_str()), (&bob, "")] {
        let listed = who
            .client
            .calls()
            .list_calls(ListCallsRequest {
                conversation_id: conversation_id.into(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert_eq!(listed.calls.len(), 1);
        assert_eq!(listed.calls[0].call_id, call.call_id);
        assert_eq!(listed.calls[0].state(), CallState::Ended);
    }
    let none = carol
        .client
        .calls()
        .list_calls(ListCallsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(none.calls.is_empty());
    let foreign = carol
        .client
        .calls()
        .list_calls(ListCallsRequest {
            conversation_id: direct.conversation_id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(foreign, Code::NotFound);

    // Over is over; and the conversation may have a new call now.
    assert_eq!(
        reason(&assert_code(
            join(&bob, &call).await,
            Code::FailedPrecondition
        )),
        "CALL_ENDED"
    );
    start(&alice, &direct.conversation_id, CallMedia::Audio).await;
}

#[tokio::test]
async fn declines_missed_rings_the_participant_limit_and_blocks() {
    let server = TestServer::start_with(|config| {
        config.calls.ring_timeout_secs = 5;
        config.calls.max_participants = 2;
    })
    .await;
    let (alice, [bob, carol, dave], group) = server.group(4).await.into_parts();
    let mut daves = dave.subscribe("").await;
    until_caught_up(&mut daves).await;

    // Bob declines, carol answers; dave, who would be third, is refused; his ring runs
    // out while the call goes on.
    let call = start(&alice, &group.conversation_id, CallMedia::Audio).await;
    let declined = bob
        .client
        .calls()
        .decline_call(DeclineCallRequest {
            call_id: call.call_id.clone(),
        })
        .await
        .expect("decline")
        .into_inner()
        .call
        .expect("call");
    assert_eq!(state_of(&declined, &bob), ParticipantState::Declined);
    assert_eq!(declined.state(), CallState::Ringing, "others still ring");
    join(&carol, &call).await.expect("carol answers");
    let full = assert_code(join(&dave, &call).await, Code::ResourceExhausted);
    assert_eq!(reason(&full), "CALL_FULL");
    let missed = until_call(&mut daves, "updated", |c| {
        c.call_id == call.call_id
            && c.participants
                .iter()
                .any(|p| p.user_id == dave.id && p.state() == ParticipantState::Missed)
    })
    .await;
    assert_eq!(
        missed.state(),
        CallState::Active,
        "an answered call goes on"
    );
    // The last one out ends it.
    for who in [&alice, &carol] {
        who.client
            .calls()
            .leave_call(LeaveCallRequest {
                call_id: call.call_id.clone(),
            })
            .await
            .expect("leave");
    }
    let ended = until_call(&mut daves, "ended", |c| c.call_id == call.call_id).await;
    assert_eq!(ended.end_reason(), CallEndReason::Completed);
    assert_eq!(ended.ended_by_user_id, "", "nobody ended it for everyone");

    // Nobody answers: missed, on its own, once.
    let unanswered = start(&alice, &group.conversation_id, CallMedia::Video).await;
    let ended = until_call(&mut daves, "ended", |c| c.call_id == unanswered.call_id).await;
    assert_eq!(ended.end_reason(), CallEndReason::Missed);
    assert!(ended.duration.is_none());
    for member in [&bob, &carol, &dave] {
        assert_eq!(state_of(&ended, member), ParticipantState::Missed);
    }
    let events = alice.list_messages(&group.conversation_id).await;
    assert_eq!(
        events
            .iter()
            .filter(|m| matches!(
                m.content.as_ref().and_then(|c| c.body.as_ref()),
                Some(Body::Call(_))
            ))
            .count(),
        2,
        "one message per call"
    );

    // Everyone declines: declined.
    let refused = start(&alice, &group.conversation_id, CallMedia::Audio).await;
    for member in [&bob, &carol, &dave] {
        member
            .client
            .calls()
            .decline_call(DeclineCallRequest {
                call_id: refused.call_id.clone(),
            })
            .await
            .expect("decline");
    }
    let after = get(&alice, &refused).await.expect("get");
    assert_eq!(after.end_reason(), CallEndReason::Declined);

    // Blocked users cannot call each other.
    let erin = server.register("erin").await;
    let direct = alice.direct_with(&erin).await;
    erin.client
        .users()
        .block_user(BlockUserRequest {
            user_id: alice.id.clone(),
        })
        .await
        .expect("block");
    let blocked = alice
        .client
        .start_call(&direct.conversation_id, CallMedia::Audio)
        .await
        .map_err(status);
    assert_eq!(
        reason(&assert_code(blocked, Code::PermissionDenied)),
        "BLOCKED"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_never_reaches_the_sfu() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let direct = alice.direct_with(&bob).await;
    let calls = alice.client.calls();

    let no_media = calls
        .clone()
        .start_call(StartCallRequest {
            conversation_id: direct.conversation_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(no_media, Code::InvalidArgument)),
        ["media"]
    );
    let bad_id = calls
        .clone()
        .get_call(GetCallRequest {
            call_id: "not-an-id".into(),
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(bad_id, Code::InvalidArgument)),
        ["call_id"]
    );

    let call = start(&alice, &direct.conversation_id, CallMedia::Audio).await;
    // Bob has not joined: no signaling for him.
    let early = bob
        .client
        .send_offer(&call.call_id, "v=0")
        .await
        .map_err(status);
    assert_eq!(
        reason(&assert_code(early, Code::FailedPrecondition)),
        "NOT_IN_CALL"
    );
    let watch = bob.client.watch_call(&call.call_id).await.map_err(status);
    assert_eq!(
        reason(&assert_code(watch, Code::FailedPrecondition)),
        "NOT_IN_CALL"
    );

    for garbage in ["", "v=0", "hello\r\nworld", &"a".repeat(64 * 1024 + 1)] {
        let offer = alice
            .client
            .send_offer(&call.call_id, garbage)
            .await
            .map_err(status);
        let status = assert_code(offer, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["offer"], "{garbage:.20}");
    }
    let answer = alice
        .client
        .send_answer(&call.call_id, 1, "v=0")
        .await
        .map_err(status);
    assert_eq!(
        reason(&assert_code(answer, Code::FailedPrecondition)),
        "STALE_OFFER"
    );
    let candidate = calls
        .clone()
        .send_signal(SendSignalRequest {
            call_id: call.call_id.clone(),
            signal: Some(send_signal_request::Signal::IceCandidate(
                "candidate:<script>".into(),
            )),
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(candidate, Code::InvalidArgument)),
        ["ice_candidate"]
    );
    let ok = calls
        .clone()
        .send_signal(SendSignalRequest {
            call_id: call.call_id.clone(),
            signal: Some(send_signal_request::Signal::IceCandidate(
                "candidate:1 1 udp 2122252543 192.0.2.1 54321 typ host".into(),
            )),
        })
        .await;
    ok.expect("a well-formed candidate is accepted (and not needed)");
    let nothing = calls
        .clone()
        .send_signal(SendSignalRequest {
            call_id: call.call_id.clone(),
            signal: None,
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(nothing, Code::InvalidArgument)),
        ["signal"]
    );
    let no_state = calls
        .clone()
        .update_media_state(UpdateMediaStateRequest {
            call_id: call.call_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(no_state, Code::InvalidArgument)),
        ["media_state"]
    );

    // Signaling is rate limited (100 in 10 s): a flood is refused with a retry delay.
    let mut refused = None;
    for _ in 0..120 {
        let flood = calls
            .clone()
            .send_signal(SendSignalRequest {
                call_id: call.call_id.clone(),
                signal: Some(send_signal_request::Signal::IceCandidate(String::new())),
            })
            .await;
        if let Err(status) = flood {
            refused = Some(status);
            break;
        }
    }
    let refused = refused.expect("a flood of signals is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused), "RATE_LIMITED");

    // A call message is not sent, edited or forwarded as a message.
    let forged = alice
        .client
        .messages()
        .send_message(SendMessageRequest {
            conversation_id: direct.conversation_id.clone(),
            content: Some(MessageContent {
                body: Some(Body::Call(call.clone())),
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(forged, Code::InvalidArgument)),
        ["content.call"]
    );
    let edited = alice
        .client
        .messages()
        .edit_message(EditMessageRequest {
            conversation_id: direct.conversation_id.clone(),
            message_id: call.message_id.clone(),
            content: Some(text_content("not a call")),
        })
        .await;
    assert_eq!(
        reason(&assert_code(edited, Code::FailedPrecondition)),
        "CALL_MESSAGE"
    );
    // Still ringing, untouched.
    let after = get(&bob, &call).await.expect("get");
    assert_eq!(after.state(), CallState::Ringing);
}

#[tokio::test]
async fn a_member_removed_from_the_conversation_hears_nothing_more_of_its_call() {
    let server = TestServer::start().await;
    let (alice, [bob, carol], group) = server.group(3).await.into_parts();
    let direct = alice.direct_with(&carol).await;
    let mut carols = carol.subscribe("").await;
    until_caught_up(&mut carols).await;
    // Carol is rung, then removed from the group while the call rings.
    let call = start(&alice, &group.conversation_id, CallMedia::Audio).await;
    until_call(&mut carols, "message", |c| c.call_id == call.call_id).await;
    remove(&alice, &group.conversation_id, &carol).await;
    loop {
        let item = next(&mut carols).await;
        if let Some(Event::ConversationEvent(event)) = &item.event
            && let Some(Change::MemberRemoved(_)) = &event.change
        {
            break;
        }
    }
    join(&bob, &call).await.expect("bob answers");
    // What alice sends carol afterwards comes after anything the call sent her: nothing
    // of the call may come first.
    alice
        .send(&direct.conversation_id, "after bob answered")
        .await;
    loop {
        let item = next(&mut carols).await;
        assert!(
            call_in(&item).is_none(),
            "carol heard of the call: {item:?}"
        );
        if let Some(Event::ConversationEvent(event)) = &item.event
            && let Some(Change::MessageSent(message)) = &event.change
            && text_of(message) == Some("after bob answered")
        {
            break;
        }
    }
    assert_code(get(&carol, &call).await, Code::NotFound);
}

#[tokio::test]
async fn a_call_left_hanging_by_a_crash_ends_once_its_people_do_not_come_back() {
    let mut server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let direct = alice.direct_with(&bob).await;
    let call = start(&alice, &direct.conversation_id, CallMedia::Audio).await;
    join(&bob, &call).await.expect("bob answers");
    // The node dies with the call on: its sessions are gone, its record says both are in.
    server.crash_and_restart().await;
    // After the grace a participant has to connect, the restarted node takes the call
    // over and lets go of those with no session: the call ends, answered, with a length.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let ended = loop {
        let now = get(&bob, &call).await.expect("get");
        if now.state() == CallState::Ended {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "the call never ended");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(ended.end_reason(), CallEndReason::Completed);
    assert!(ended.duration.is_some());
}

#[tokio::test]
async fn a_participant_removed_from_the_conversation_is_taken_out_of_the_call() {
    let server = TestServer::start().await;
    let (alice, [bob, carol], group) = server.group(3).await.into_parts();
    let call = start(&alice, &group.conversation_id, CallMedia::Video).await;
    join(&bob, &call).await.expect("bob joins");
    join(&carol, &call).await.expect("carol joins");
    let mut watching = carol.client.watch_call(&call.call_id).await.expect("watch");
    remove(&alice, &group.conversation_id, &carol).await;
    // Within a few seconds her stream closes, saying why, and the call goes on without her.
    let reason = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let item = watching.message().await.expect("stream").expect("an item");
            if let Some(watch_call_response::Event::Closing(closing)) = item.event {
                return closing.reason();
            }
        }
    })
    .await
    .expect("closed within 15 s");
    assert_eq!(reason, CallClosingReason::Removed);
    let now = get(&alice, &call).await.expect("get");
    assert_eq!(state_of(&now, &carol), ParticipantState::Left);
    assert_eq!(now.state(), CallState::Active, "the others go on");
    assert_code(get(&carol, &call).await, Code::NotFound);
}
