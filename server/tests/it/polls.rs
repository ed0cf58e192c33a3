//! Polls through the real server: a poll is a message of the timeline, tallies go live to
//! the members who may see them (coalesced), anonymous polls reveal no voter, closing and
//! deleting follow the rules, and scheduled closes fire exactly once (two nodes, and after
//! a restart). Runs on the embedded default and, in the services pass, on PostgreSQL with
//! Cassandra history.

use std::time::Duration;

use secureconnect_sdk::proto::{
    event::v1::{
        PollTally, SubscribeResponse, conversation_event::Change, subscribe_response::Event,
    },
    message::v1::{
        EditMessageRequest, ForwardMessageRequest, MessageContent, SendMessageRequest,
        message_content::Body,
    },
    poll::v1::*,
};
use tonic::{Code, Streaming};

use crate::common::*;

fn settings(visibility: ResultsVisibility) -> PollSettings {
    PollSettings {
        results_visibility: visibility.into(),
        allow_vote_changes: true,
        ..Default::default()
    }
}

async fn create(user: &TestUser, conversation_id: &str, settings: PollSettings) -> Poll {
    user.client
        .create_poll(
            conversation_id,
            "Lunch?",
            ["Pizza", "Sushi", "Salad"],
            settings,
        )
        .await
        .expect("create poll")
}

async fn vote(user: &TestUser, poll: &Poll, option: usize) -> Result<Poll, tonic::Status> {
    user.client
        .polls()
        .cast_vote(CastVoteRequest {
            poll_id: poll.poll_id.clone(),
            option_ids: vec![poll.options[option].option_id.clone()],
        })
        .await
        .map(|r| r.into_inner().poll.expect("poll"))
}

async fn get(user: &TestUser, poll: &Poll) -> Result<Poll, tonic::Status> {
    user.client
        .polls()
        .get_poll(GetPollRequest {
            poll_id: poll.poll_id.clone(),
        })
        .await
        .map(|r| r.into_inner().poll.expect("poll"))
}

/// How many voters `user` sees on the poll now (`None`: the tally is hidden from them).
async fn total_seen(user: &TestUser, poll: &Poll) -> Option<u32> {
    get(user, poll)
        .await
        .expect("get poll")
        .results
        .map(|r| r.total_voters)
}

fn poll_of(change: &Option<Change>) -> Option<&Poll> {
    match change {
        Some(Change::MessageSent(m) | Change::MessageEdited(m)) => {
            match m.content.as_ref()?.body.as_ref()? {
                Body::Poll(poll) => Some(poll),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Stream items until a conversation event satisfies `until`, returning the tallies seen
/// on the way (and the event).
async fn tallies_until(
    stream: &mut Streaming<SubscribeResponse>,
    until: impl Fn(&Option<Change>) -> bool,
) -> (Vec<PollTally>, Option<Change>) {
    let mut tallies = Vec::new();
    loop {
        match next(stream).await.event {
            Some(Event::PollTally(tally)) => tallies.push(tally),
            Some(Event::ConversationEvent(event)) if until(&event.change) => {
                return (tallies, event.change);
            }
            _ => {}
        }
    }
}

/// The next tally on the stream whose total is `voters`, skipping older ones.
async fn tally_reaching(stream: &mut Streaming<SubscribeResponse>, voters: u32) -> PollTally {
    loop {
        if let Some(Event::PollTally(tally)) = next(stream).await.event
            && tally.results.as_ref().map(|r| r.total_voters) == Some(voters)
        {
            return tally;
        }
    }
}

#[tokio::test]
async fn a_poll_is_a_message_of_the_timeline_and_not_sent_edited_or_forwarded_as_one() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let id = group.conversation_id.clone();
    let mut bobs = bob.subscribe("").await;
    until_caught_up(&mut bobs).await;
    let request = CreatePollRequest {
        conversation_id: id.clone(),
        question: "Lunch?".into(),
        options: vec!["Pizza".into(), "Sushi".into()],
        settings: Some(settings(ResultsVisibility::Always)),
        request_id: "poll-1".into(),
    };
    let poll = alice
        .client
        .polls()
        .create_poll(request.clone())
        .await
        .expect("create")
        .into_inner()
        .poll
        .expect("poll");
    // A retry returns the same poll; the timeline holds one poll message.
    let again = alice
        .client
        .polls()
        .create_poll(request)
        .await
        .expect("retry")
        .into_inner()
        .poll
        .expect("poll");
    assert_eq!(again.poll_id, poll.poll_id);
    let (_, event) = next_conversation_event(&mut bobs).await;
    let shown = poll_of(&event.change).expect("a poll message on bob's stream");
    assert_eq!(shown.poll_id, poll.poll_id);
    assert_eq!(shown.options.len(), 2, "the stream shows the whole poll");
    assert_eq!(shown.results.as_ref().map(|r| r.total_voters), Some(0));
    vote(&bob, &poll, 1).await.expect("bob votes");
    // Listed, the poll message shows the reader's current view.
    let listed = bob.list_messages(&id).await;
    let carriers: Vec<(&str, &Poll)> = listed
        .iter()
        .filter_map(|m| match m.content.as_ref()?.body.as_ref()? {
            Body::Poll(p) => Some((m.message_id.as_str(), p)),
            _ => None,
        })
        .collect();
    assert_eq!(carriers.len(), 1, "one poll message despite the retry");
    let (message_id, listed_poll) = carriers[0];
    assert_eq!(message_id, poll.message_id);
    assert_eq!(
        listed_poll.my_option_ids,
        [poll.options[1].option_id.clone()]
    );
    assert_eq!(
        listed_poll.results.as_ref().map(|r| r.total_voters),
        Some(1)
    );
    // Not sent, edited or forwarded as a message.
    let sent = alice
        .client
        .messages()
        .send_message(SendMessageRequest {
            conversation_id: id.clone(),
            content: Some(MessageContent {
                body: Some(Body::Poll(poll.clone())),
            }),
            request_id: "fake-poll".into(),
            ..Default::default()
        })
        .await;
    let status = assert_code(sent, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["content.poll"]);
    let edited = alice
        .client
        .messages()
        .edit_message(EditMessageRequest {
            conversation_id: id.clone(),
            message_id: poll.message_id.clone(),
            content: Some(text_content("not a poll")),
        })
        .await;
    assert_eq!(
        reason(&assert_code(edited, Code::FailedPrecondition)),
        "POLL_MESSAGE"
    );
    let other = alice.group_with("other", &[&bob]).await;
    let forwarded = alice
        .client
        .messages()
        .forward_message(ForwardMessageRequest {
            conversation_id: id.clone(),
            message_id: poll.message_id.clone(),
            target_conversation_id: other.conversation_id,
            request_id: "fwd".into(),
        })
        .await;
    assert_eq!(
        reason(&assert_code(forwarded, Code::FailedPrecondition)),
        "POLL_MESSAGE"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn outsiders_see_no_poll() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let outsider = server.register("mallory").await;
    let poll = create(
        &alice,
        &group.conversation_id,
        settings(ResultsVisibility::Always),
    )
    .await;
    assert_code(get(&outsider, &poll).await, Code::NotFound);
    assert_code(vote(&outsider, &poll, 0).await, Code::NotFound);
    let listed = outsider
        .client
        .polls()
        .list_polls(ListPollsRequest {
            conversation_id: group.conversation_id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(listed, Code::NotFound);
    let polls = outsider.client.polls();
    let poll_id = poll.poll_id.clone();
    let closed = polls
        .clone()
        .close_poll(ClosePollRequest {
            poll_id: poll_id.clone(),
        })
        .await;
    assert_code(closed, Code::NotFound);
    let retracted = polls
        .clone()
        .retract_vote(RetractVoteRequest {
            poll_id: poll_id.clone(),
        })
        .await;
    assert_code(retracted, Code::NotFound);
    let added = polls
        .clone()
        .add_poll_option(AddPollOptionRequest {
            poll_id: poll_id.clone(),
            text: "Mine".into(),
        })
        .await;
    assert_code(added, Code::NotFound);
    let voters = polls
        .clone()
        .list_poll_voters(ListPollVotersRequest {
            poll_id: poll_id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(voters, Code::NotFound);
    let deleted = polls
        .clone()
        .delete_poll(DeletePollRequest { poll_id })
        .await;
    assert_code(deleted, Code::NotFound);
    let created = outsider
        .client
        .create_poll(
            &group.conversation_id,
            "Mine?",
            ["a", "b"],
            PollSettings::default(),
        )
        .await;
    assert_eq!(created.expect_err("not a member").code(), Code::NotFound);
    assert_eq!(total_seen(&bob, &poll).await, Some(0));
    server.shutdown().await;
}

/// A stream resumed from before a poll replays its message with the tally as it is now,
/// and replays no tally updates.
#[tokio::test]
async fn a_resumed_stream_gets_the_current_tally_not_every_vote() {
    let server = TestServer::start().await;
    let (alice, [bob, carol, dave], group) = server.group(4).await.into_parts();
    let mut bobs = bob.subscribe("").await;
    let cursor = until_caught_up(&mut bobs).await;
    drop(bobs);
    let poll = create(
        &alice,
        &group.conversation_id,
        settings(ResultsVisibility::Always),
    )
    .await;
    for (voter, option) in [(&carol, 0), (&dave, 1), (&alice, 1)] {
        vote(voter, &poll, option).await.expect("vote");
    }
    vote(&carol, &poll, 1)
        .await
        .expect("carol changes her vote");
    let mut bobs = bob.subscribe(&cursor).await;
    let mut replayed = Vec::new();
    loop {
        let item = next(&mut bobs).await;
        match item.event {
            Some(Event::CaughtUp(_)) => break,
            Some(event) => replayed.push(event),
            None => {}
        }
    }
    assert!(
        !replayed.iter().any(|e| matches!(e, Event::PollTally(_))),
        "no tally is replayed: {replayed:?}"
    );
    let shown = replayed
        .iter()
        .find_map(|e| match e {
            Event::ConversationEvent(event) => poll_of(&event.change).cloned(),
            _ => None,
        })
        .expect("the poll message is replayed");
    let counts: Vec<u32> = shown
        .results
        .expect("results")
        .counts
        .iter()
        .map(|c| c.votes)
        .collect();
    assert_eq!(counts, [0, 3, 0], "the tally as it is now");
    server.shutdown().await;
}

/// Every member sees a public, always-visible tally move, in few updates for a burst of
/// votes, ending on the exact final state.
#[tokio::test]
async fn live_tallies_are_coalesced_and_end_on_the_final_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mut voters = Vec::new();
    for i in 0..30 {
        voters.push(server.register(&format!("voter{i}")).await);
    }
    let refs: Vec<&TestUser> = voters.iter().collect();
    let group = alice.group_with("big", &refs).await;
    let poll = create(
        &alice,
        &group.conversation_id,
        settings(ResultsVisibility::Always),
    )
    .await;
    let mut alices = alice.subscribe("").await;
    until_caught_up(&mut alices).await;
    let votes = voters
        .iter()
        .enumerate()
        .map(|(i, v)| vote(v, &poll, i % 3));
    for result in futures::future::join_all(votes).await {
        result.expect("vote");
    }
    let last = tally_reaching(&mut alices, 30).await;
    let counts: Vec<u32> = last
        .results
        .as_ref()
        .expect("results")
        .counts
        .iter()
        .map(|c| c.votes)
        .collect();
    assert_eq!(counts, [10, 10, 10]);
    // Then a burst of changed votes, counting every tally a fresh stream gets for it.
    let mut alices = alice.subscribe("").await;
    until_caught_up(&mut alices).await;
    let burst_started = std::time::Instant::now();
    let changes = voters.iter().map(|v| vote(v, &poll, 0));
    for result in futures::future::join_all(changes).await {
        result.expect("change vote");
    }
    alice.send(&group.conversation_id, "marker").await;
    // Wait past the coalescing interval so the trailing update has gone out.
    tokio::time::sleep(Duration::from_millis(600)).await;
    alice.send(&group.conversation_id, "after").await;
    let (tallies, _) = tallies_until(
        &mut alices,
        |change| matches!(change, Some(Change::MessageSent(m)) if text_of(m) == Some("after")),
    )
    .await;
    let window = burst_started.elapsed().as_secs_f64();
    let allowed = (window / 0.25).ceil() as usize + 2;
    assert!(
        !tallies.is_empty() && tallies.len() <= allowed,
        "{} tallies in {window:.2} s (at most {allowed})",
        tallies.len()
    );
    let last = tallies
        .last()
        .expect("a tally")
        .results
        .clone()
        .expect("results");
    assert_eq!(
        last.counts[0].votes, 30,
        "the last update carries the final state"
    );
    let versions: Vec<u64> = tallies
        .iter()
        .filter_map(|t| t.results.as_ref().map(|r| r.version))
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    server.shutdown().await;
}

/// Results visibility is applied per receiving member: after voting, only voters get
/// tallies; after close, nobody until the close event.
#[tokio::test]
async fn visibility_rules_apply_per_member() {
    let server = TestServer::start().await;
    let (alice, [bob, carol, dave], group) = server.group(4).await.into_parts();
    let id = group.conversation_id.clone();
    let poll = create(&alice, &id, settings(ResultsVisibility::AfterVoting)).await;
    assert!(poll.results.is_none(), "the creator has not voted");
    let mut bobs = bob.subscribe("").await;
    let mut carols = carol.subscribe("").await;
    until_caught_up(&mut bobs).await;
    until_caught_up(&mut carols).await;
    let carol_view = vote(&carol, &poll, 0).await.expect("carol votes");
    assert_eq!(carol_view.results.map(|r| r.total_voters), Some(1));
    vote(&dave, &poll, 1).await.expect("dave votes");
    tally_reaching(&mut carols, 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    alice.send(&id, "marker").await;
    let (bob_tallies, _) = tallies_until(
        &mut bobs,
        |change| matches!(change, Some(Change::MessageSent(m)) if text_of(m) == Some("marker")),
    )
    .await;
    assert!(bob_tallies.is_empty(), "bob has not voted: {bob_tallies:?}");
    assert!(get(&bob, &poll).await.expect("bob").results.is_none());
    assert!(get(&carol, &poll).await.expect("carol").results.is_some());
    // Voters cannot be listed by someone who may not see the results yet.
    let hidden = bob
        .client
        .polls()
        .list_poll_voters(ListPollVotersRequest {
            poll_id: poll.poll_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        reason(&assert_code(hidden, Code::FailedPrecondition)),
        "RESULTS_HIDDEN"
    );
    let voters = carol
        .client
        .polls()
        .list_poll_voters(ListPollVotersRequest {
            poll_id: poll.poll_id.clone(),
            ..Default::default()
        })
        .await
        .expect("carol lists voters")
        .into_inner()
        .voters;
    let ids: Vec<&str> = voters.iter().map(|v| v.user_id.as_str()).collect();
    assert_eq!(ids, [carol.id.as_str(), dave.id.as_str()]);

    // After close: nobody sees the tally before the close, everybody after.
    let secret = create(&alice, &id, settings(ResultsVisibility::AfterClose)).await;
    let carol_view = vote(&carol, &secret, 2).await.expect("vote");
    assert!(carol_view.results.is_none());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let closed = alice
        .client
        .polls()
        .close_poll(ClosePollRequest {
            poll_id: secret.poll_id.clone(),
        })
        .await
        .expect("close")
        .into_inner()
        .poll
        .expect("poll");
    assert_eq!(closed.state, PollState::Closed as i32);
    let (carol_tallies, change) = tallies_until(
        &mut carols,
        |change| matches!(change, Some(Change::PollClosed(c)) if c.poll_id == secret.poll_id),
    )
    .await;
    assert!(
        carol_tallies.iter().all(|t| t.poll_id != secret.poll_id),
        "no tally of an after-close poll before its close"
    );
    let Some(Change::PollClosed(closed_event)) = change else {
        unreachable!()
    };
    assert_eq!(closed_event.results.map(|r| r.total_voters), Some(1));
    assert_eq!(total_seen(&bob, &secret).await, Some(1));
    server.shutdown().await;
}

/// An anonymous poll's voters appear in no response, event or error: every payload about
/// it is searched for their ids.
#[tokio::test]
async fn anonymous_polls_reveal_no_voter() {
    let server = TestServer::start().await;
    let (alice, [bob, carol], group) = server.group(3).await.into_parts();
    let id = group.conversation_id.clone();
    let mut alices = alice.subscribe("").await;
    until_caught_up(&mut alices).await;
    let poll = create(
        &alice,
        &id,
        PollSettings {
            anonymous: true,
            ..Default::default()
        },
    )
    .await;
    let mut captured: Vec<String> = Vec::new();
    let bob_view = vote(&bob, &poll, 0).await.expect("bob votes");
    assert!(bob_view.voted && bob_view.my_option_ids.is_empty());
    captured.push(format!("{bob_view:?}"));
    captured.push(format!(
        "{:?}",
        vote(&carol, &poll, 1).await.expect("carol votes")
    ));
    let again = vote(&bob, &poll, 1).await;
    assert_eq!(
        reason(&assert_code(again, Code::FailedPrecondition)),
        "VOTE_FINAL"
    );
    // The owner and creator learns the counts and nothing else.
    captured.push(format!("{:?}", get(&alice, &poll).await.expect("get")));
    let listed = alice
        .client
        .polls()
        .list_polls(ListPollsRequest {
            conversation_id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("list");
    captured.push(format!("{listed:?}"));
    let voters = alice
        .client
        .polls()
        .list_poll_voters(ListPollVotersRequest {
            poll_id: poll.poll_id.clone(),
            ..Default::default()
        })
        .await;
    let status = assert_code(voters, Code::FailedPrecondition);
    assert_eq!(reason(&status), "ANONYMOUS_POLL");
    captured.push(format!("{status:?}"));
    for option in &poll.options {
        let filtered = alice
            .client
            .polls()
            .list_poll_voters(ListPollVotersRequest {
                poll_id: poll.poll_id.clone(),
                option_id: option.option_id.clone(),
                ..Default::default()
            })
            .await;
        captured.push(format!("{filtered:?}"));
    }
    captured.push(format!("{:?}", alice.list_messages(&id).await));
    alice
        .client
        .polls()
        .close_poll(ClosePollRequest {
            poll_id: poll.poll_id.clone(),
        })
        .await
        .expect("close");
    // Everything alice's stream carried about the poll, from creation to close.
    loop {
        let item = next(&mut alices).await;
        let is_close = matches!(
            &item.event,
            Some(Event::ConversationEvent(e)) if matches!(&e.change, Some(Change::PollClosed(_)))
        );
        if matches!(
            &item.event,
            Some(Event::PollTally(_)) | Some(Event::ConversationEvent(_))
        ) {
            captured.push(format!("{item:?}"));
        }
        if is_close {
            break;
        }
    }
    let final_view = get(&alice, &poll).await.expect("get");
    let counts: Vec<u32> = final_view
        .results
        .expect("results")
        .counts
        .iter()
        .map(|c| c.votes)
        .collect();
    assert_eq!(counts, [1, 1, 0], "the counts are right");
    for payload in &captured {
        for voter in [&bob.id, &carol.id] {
            assert!(!payload.contains(voter.as_str()), "a voter id in {payload}");
        }
    }
    assert!(
        captured.len() >= 10,
        "payloads were captured: {}",
        captured.len()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn closing_and_deleting_follow_the_rules() {
    let server = TestServer::start().await;
    let (alice, [bob, carol], group) = server.group(3).await.into_parts();
    let id = group.conversation_id.clone();
    let poll = create(&bob, &id, settings(ResultsVisibility::Always)).await;
    vote(&carol, &poll, 0).await.expect("vote");
    let close = |user: &TestUser| {
        let (client, poll_id) = (user.client.clone(), poll.poll_id.clone());
        async move {
            client
                .polls()
                .close_poll(ClosePollRequest { poll_id })
                .await
        }
    };
    // Carol neither created it nor administers the group.
    assert_code(close(&carol).await, Code::PermissionDenied);
    let mut carols = carol.subscribe("").await;
    until_caught_up(&mut carols).await;
    // The group's owner may close anyone's poll; twice changes nothing.
    close(&alice).await.expect("owner closes");
    close(&alice).await.expect("closing twice");
    let (_, event) = next_conversation_event(&mut carols).await;
    let Some(Change::PollClosed(closed)) = event.change else {
        panic!("expected poll_closed, got {event:?}")
    };
    assert_eq!(closed.results.map(|r| r.counts[0].votes), Some(1));
    let late = vote(&bob, &poll, 1).await;
    assert_eq!(
        reason(&assert_code(late, Code::FailedPrecondition)),
        "POLL_CLOSED"
    );
    let added = bob
        .client
        .polls()
        .add_poll_option(AddPollOptionRequest {
            poll_id: poll.poll_id.clone(),
            text: "Tacos".into(),
        })
        .await;
    assert_eq!(
        reason(&assert_code(added, Code::FailedPrecondition)),
        "POLL_CLOSED"
    );
    // Deleting: the creator (or an admin); carol may not.
    let delete = |user: &TestUser| {
        let (client, poll_id) = (user.client.clone(), poll.poll_id.clone());
        async move {
            client
                .polls()
                .delete_poll(DeletePollRequest { poll_id })
                .await
        }
    };
    assert_code(delete(&carol).await, Code::PermissionDenied);
    delete(&bob).await.expect("the creator deletes");
    let (_, event) = next_conversation_event(&mut carols).await;
    let Some(Change::MessageDeleted(tombstone)) = event.change else {
        panic!("expected the poll message's tombstone, got {event:?}")
    };
    assert_eq!(tombstone.message_id, poll.message_id);
    assert!(tombstone.content.is_none());
    let gone = get(&carol, &poll)
        .await
        .expect("a deleted poll reads as deleted");
    assert_eq!(gone.state, PollState::Deleted as i32);
    assert!(gone.options.is_empty() && gone.results.is_none());
    server.shutdown().await;
}

/// Members may add options when the poll allows it; the poll message is edited, so the
/// stream carries the new option.
#[tokio::test]
async fn added_options_reach_the_timeline() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let poll = create(
        &alice,
        &group.conversation_id,
        PollSettings {
            members_can_add_options: true,
            ..Default::default()
        },
    )
    .await;
    let mut alices = alice.subscribe("").await;
    until_caught_up(&mut alices).await;
    bob.client
        .polls()
        .add_poll_option(AddPollOptionRequest {
            poll_id: poll.poll_id.clone(),
            text: "Tacos".into(),
        })
        .await
        .expect("bob adds");
    let (_, event) = next_conversation_event(&mut alices).await;
    assert!(
        matches!(event.change, Some(Change::MessageEdited(_))),
        "{event:?}"
    );
    let edited = poll_of(&event.change).expect("the poll");
    let texts: Vec<&str> = edited.options.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(texts, ["Pizza", "Sushi", "Salad", "Tacos"]);
    assert_eq!(edited.options[3].added_by_user_id, bob.id);
    server.shutdown().await;
}

/// A poll whose close time comes while the server is down closes as soon as it is back,
/// with one `poll_closed` event.
#[tokio::test]
async fn a_poll_due_while_the_server_was_down_closes_at_start_up() {
    let mut server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let close_time = std::time::SystemTime::now() + Duration::from_secs(2);
    let poll = create(
        &alice,
        &group.conversation_id,
        PollSettings {
            close_time: Some(close_time.into()),
            ..Default::default()
        },
    )
    .await;
    let mut bobs = bob.subscribe("").await;
    let cursor = until_caught_up(&mut bobs).await;
    drop(bobs);
    server.restart_after(Duration::from_secs(3)).await;
    let mut bobs = bob.subscribe(&cursor).await;
    let (_, event) = next_conversation_event(&mut bobs).await;
    let Some(Change::PollClosed(closed)) = event.change else {
        panic!("expected poll_closed, got {event:?}")
    };
    assert_eq!(closed.poll_id, poll.poll_id);
    let read = get(&bob, &poll).await.expect("get");
    assert_eq!(read.state, PollState::Closed as i32);
    server.shutdown().await;
}

/// Two nodes sharing one fresh PostgreSQL database and one signing key (kept in `keys`),
/// and the suite's Redis when `redis` (one deployment: one key prefix).
async fn two_nodes(keys: &tempfile::TempDir, redis: bool) -> Vec<TestServer> {
    let database = fresh_database().await;
    assert!(!database.is_empty(), "needs SC_TEST_POSTGRES_URL");
    let key = keys.path().join("root-key.pem").display().to_string();
    let redis_url = std::env::var("SC_TEST_REDIS_URL").ok().filter(|_| redis);
    assert!(!redis || redis_url.is_some(), "needs SC_TEST_REDIS_URL");
    let prefix = format!("p{}", uuid::Uuid::new_v4().simple());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let (database, key, redis_url, prefix) = (
            database.clone(),
            key.clone(),
            redis_url.clone(),
            prefix.clone(),
        );
        nodes.push(
            TestServer::start_with(move |c| {
                c.database.url = Some(database.into());
                c.auth.root_key_file = Some(key.into());
                c.redis.url = redis_url.map(Into::into);
                c.redis.key_prefix = prefix;
            })
            .await,
        );
    }
    nodes
}

/// Two nodes on one database, each closing due polls once a second: every poll closes
/// exactly once, with exactly one `poll_closed` event.
#[tokio::test]
#[ignore = "needs PostgreSQL; run by deploy/local/test.sh"]
async fn scheduled_closes_fire_exactly_once_with_two_nodes() {
    let keys = tempfile::tempdir().expect("dir");
    // No Redis: the closes meet in the database alone.
    let nodes = two_nodes(&keys, false).await;
    let (alice, bob) = nodes[0].pair().await;
    let group = alice.group_with("polls", &[&bob]).await;
    let mut bobs = bob.subscribe("").await;
    let cursor = until_caught_up(&mut bobs).await;
    drop(bobs);
    let close_time = std::time::SystemTime::now() + Duration::from_millis(1500);
    let mut polls = Vec::new();
    for _ in 0..5 {
        let poll = create(
            &alice,
            &group.conversation_id,
            PollSettings {
                close_time: Some(close_time.into()),
                ..Default::default()
            },
        )
        .await;
        polls.push(poll.poll_id);
    }
    // Both nodes' closers run several rounds past the close time.
    tokio::time::sleep(Duration::from_secs(4)).await;
    alice.send(&group.conversation_id, "marker").await;
    // Replayed from before the polls, through the second node.
    let bob_there = nodes[1].client().await;
    bob_there.set_access_token(bob.client.access_token());
    let mut stream = bob_there
        .events()
        .subscribe(secureconnect_sdk::proto::event::v1::SubscribeRequest { cursor })
        .await
        .expect("subscribe")
        .into_inner();
    let mut closed = Vec::new();
    loop {
        let (_, event) = next_conversation_event(&mut stream).await;
        match event.change {
            Some(Change::PollClosed(c)) => closed.push(c.poll_id),
            Some(Change::MessageSent(m)) if text_of(&m) == Some("marker") => break,
            _ => {}
        }
    }
    closed.sort();
    polls.sort();
    assert_eq!(closed, polls, "each poll closed exactly once");
    for node in nodes {
        node.shutdown().await;
    }
}

/// Votes arriving through two nodes at once: the members' streams still get a few tally
/// updates per second in all (the nodes share one allowance per poll through Redis), and
/// the last one carries the final state.
#[tokio::test]
#[ignore = "needs PostgreSQL and Redis; run by deploy/local/test.sh"]
async fn tallies_stay_coalesced_across_nodes() {
    let keys = tempfile::tempdir().expect("dir");
    let nodes = two_nodes(&keys, true).await;
    let alice = nodes[0].register("alice").await;
    let mut voters = Vec::new();
    for i in 0..30 {
        voters.push(nodes[i % 2].register(&format!("voter{i}")).await);
    }
    let refs: Vec<&TestUser> = voters.iter().collect();
    let group = alice.group_with("cluster poll", &refs).await;
    let poll = create(
        &alice,
        &group.conversation_id,
        settings(ResultsVisibility::Always),
    )
    .await;
    let mut alices = alice.subscribe("").await;
    until_caught_up(&mut alices).await;
    let started = std::time::Instant::now();
    // Changes through both nodes for about three seconds, so each would send its full
    // share of updates if the nodes did not share the allowance.
    for round in 0..12 {
        let votes = voters.iter().map(|v| vote(v, &poll, (round + 1) % 3));
        for result in futures::future::join_all(votes).await {
            result.expect("vote");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    alice.send(&group.conversation_id, "after").await;
    let (tallies, _) = tallies_until(
        &mut alices,
        |change| matches!(change, Some(Change::MessageSent(m)) if text_of(m) == Some("after")),
    )
    .await;
    let window = started.elapsed().as_secs_f64();
    let allowed = (window / 0.25).ceil() as usize + 3;
    assert!(
        !tallies.is_empty() && tallies.len() <= allowed,
        "{} tallies in {window:.2} s from two nodes (at most {allowed})",
        tallies.len()
    );
    let last = tallies
        .iter()
        .filter_map(|t| t.results.as_ref())
        .max_by_key(|r| r.version)
        .expect("results");
    let counts: Vec<u32> = last.counts.iter().map(|c| c.votes).collect();
    assert_eq!(
        counts,
        [30, 0, 0],
        "the newest update carries the final state"
    );
    for node in nodes {
        node.shutdown().await;
    }
}
