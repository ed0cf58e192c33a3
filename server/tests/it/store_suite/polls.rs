//! `PollStore`: polls for members only, votes by the poll's rules, anonymous polls that keep
//! no picks, and counters that equal a recount after a storm of concurrent votes.

use std::sync::Arc;

use chrono::Utc;
use secureconnect_server::{
    domain::{
        Change, Event,
        poll::{PollRecord, PollSettings, PollState},
    },
    error::{Error, Reason},
    store::{NewPoll, RequestKey, RequestKind},
};
use uuid::Uuid;

use super::{Stores, fixtures::*};

fn poll_in(conversation: Uuid, creator: Uuid, settings: PollSettings) -> NewPoll {
    NewPoll {
        conversation_id: conversation,
        creator,
        question: "Lunch?".into(),
        options: vec!["Pizza".into(), "Sushi".into(), "Salad".into()],
        settings,
    }
}

/// A fresh request id of `user` for creating a poll.
fn poll_request(user: Uuid) -> RequestKey {
    request(
        user,
        RequestKind::Message,
        &Uuid::new_v4().to_string(),
        "poll",
    )
}

/// A poll by `creator` in `conversation`, asked now.
async fn create(
    stores: &Stores,
    conversation: Uuid,
    creator: Uuid,
    settings: PollSettings,
) -> PollRecord {
    stores
        .polls
        .create_poll(
            poll_in(conversation, creator, settings),
            poll_request(creator),
            Utc::now(),
        )
        .await
        .expect("create")
        .value
}

fn option(poll: &PollRecord, i: usize) -> String {
    poll.options[i].id.to_string()
}

fn reason_of<T: std::fmt::Debug>(result: &Result<T, Error>) -> Option<Reason> {
    match result {
        Err(Error::FailedPrecondition { reason, .. }) => Some(*reason),
        _ => None,
    }
}

pub async fn polls_are_for_members_only(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let outsider = user(stores, "outsider").await;
    let refused = stores
        .polls
        .create_poll(
            poll_in(conversation, outsider, PollSettings::default()),
            poll_request(outsider),
            Utc::now(),
        )
        .await;
    assert!(matches!(refused, Err(Error::NotFound(_))), "{refused:?}");
    let poll = create(stores, conversation, a, PollSettings::default()).await;
    let texts: Vec<&str> = poll.options.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(texts, ["Pizza", "Sushi", "Salad"]);
    assert!(poll.tally.counts.iter().all(|(_, n)| *n == 0));
    let by_outsider = stores
        .polls
        .cast_vote(poll.id, outsider, &[option(&poll, 0)], Utc::now())
        .await;
    assert!(
        matches!(by_outsider, Err(Error::NotFound(_))),
        "{by_outsider:?}"
    );
    stores
        .polls
        .cast_vote(poll.id, b, &[option(&poll, 1)], Utc::now())
        .await
        .expect("a member votes");
    // Removed from the group, b can no longer change anything.
    stores
        .chat
        .remove_member(conversation, a, b, Utc::now())
        .await
        .expect("remove");
    let after_removal = stores.polls.retract_vote(poll.id, b).await;
    assert!(
        matches!(after_removal, Err(Error::NotFound(_))),
        "{after_removal:?}"
    );
}

pub async fn votes_follow_the_poll_rules(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let poll = create(stores, conversation, a, PollSettings::default()).await;
    let two = stores
        .polls
        .cast_vote(
            poll.id,
            b,
            &[option(&poll, 0), option(&poll, 1)],
            Utc::now(),
        )
        .await;
    assert!(
        matches!(two, Err(Error::InvalidArgument(_))),
        "single choice: {two:?}"
    );
    let unknown = stores
        .polls
        .cast_vote(poll.id, b, &[Uuid::now_v7().to_string()], Utc::now())
        .await;
    assert!(
        matches!(unknown, Err(Error::InvalidArgument(_))),
        "{unknown:?}"
    );
    let voted = stores
        .polls
        .cast_vote(poll.id, b, &[option(&poll, 0)], Utc::now())
        .await
        .expect("vote");
    assert_eq!(voted.tally.counts[0].1, 1);
    assert_eq!(voted.tally.total_voters, 1);
    // The same vote again changes nothing; another one is refused (no changes allowed).
    let again = stores
        .polls
        .cast_vote(poll.id, b, &[option(&poll, 0)], Utc::now())
        .await;
    assert_eq!(reason_of(&again), Some(Reason::VoteFinal), "{again:?}");
    let changed = stores
        .polls
        .cast_vote(poll.id, b, &[option(&poll, 1)], Utc::now())
        .await;
    assert_eq!(reason_of(&changed), Some(Reason::VoteFinal));
    let retracted = stores.polls.retract_vote(poll.id, b).await;
    assert_eq!(reason_of(&retracted), Some(Reason::VoteFinal));
    let kept = stores
        .polls
        .poll(poll.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(kept.tally, voted.tally, "refusals changed nothing");
}

pub async fn anonymous_polls_keep_no_picks(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let anonymous = PollSettings {
        anonymous: true,
        ..Default::default()
    };
    let poll = create(stores, conversation, a, anonymous).await;
    for (voter, pick) in [(a, 2), (b, 2)] {
        stores
            .polls
            .cast_vote(poll.id, voter, &[option(&poll, pick)], Utc::now())
            .await
            .expect("vote");
    }
    let counted = stores
        .polls
        .poll(poll.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(counted.tally.counts[2].1, 2);
    assert_eq!(counted.tally.total_voters, 2);
    let votes = stores.polls.votes(poll.id).await.expect("votes");
    assert_eq!(votes.len(), 2, "who voted is kept, to stop double votes");
    assert!(
        votes.iter().all(|v| v.picks.is_empty()),
        "what they picked is not: {votes:?}"
    );
    assert!(
        votes.iter().all(|v| v.time == poll.create_time),
        "nor when they voted: {votes:?}"
    );
    let twice = stores
        .polls
        .cast_vote(poll.id, b, &[option(&poll, 0)], Utc::now())
        .await;
    assert_eq!(reason_of(&twice), Some(Reason::VoteFinal));
}

/// 200 members cast, change and retract 1,000 votes at once on a multiple-choice poll,
/// each member's five at the same moment: the counters equal a recount of the stored
/// votes, and each member is counted once.
pub async fn concurrent_votes_end_in_exact_tallies(stores: &Stores) {
    let (a, _, conversation) = group(stores).await;
    let mut voters = Vec::new();
    for i in 0..200 {
        voters.push(user(stores, &format!("voter{i}")).await);
    }
    stores
        .chat
        .add_members(conversation, a, &voters, Utc::now())
        .await
        .expect("add voters");
    let settings = PollSettings {
        multiple_choice: true,
        max_selections: Some(2),
        allow_vote_changes: true,
        ..Default::default()
    };
    let poll = create(stores, conversation, a, settings).await;
    let poll = Arc::new(poll);
    // At most 50 in flight (about what a server's connection pool lets through at once;
    // more would only queue for connections), launched in voter order so each member's
    // five race each other.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = Vec::new();
    // Each voter's five operations all at once (as from five devices): votes that change
    // and now and then a retraction — 1,000 in all, racing on the same vote rows.
    for (n, voter) in voters.iter().copied().enumerate() {
        for steps in (0..5).map(|step| step..step + 1) {
            let polls = Arc::clone(&stores.polls);
            let poll = Arc::clone(&poll);
            let in_flight = Arc::clone(&in_flight);
            tasks.push(tokio::spawn(async move {
                let _slot = in_flight.acquire_owned().await.expect("semaphore");
                for step in steps {
                    let result = if (n + step) % 4 == 3 {
                        polls.retract_vote(poll.id, voter).await
                    } else {
                        let first = option(&poll, (n + step) % 3);
                        let picks = if step % 2 == 0 {
                            vec![first]
                        } else {
                            vec![first, option(&poll, (n + step + 1) % 3)]
                        };
                        polls.cast_vote(poll.id, voter, &picks, Utc::now()).await
                    };
                    match result {
                        Ok(_) => {}
                        // The other device's vote may land between: then this one is a change.
                        Err(err) => panic!("vote: {err:?}"),
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("task");
    }
    let counted = stores
        .polls
        .poll(poll.id)
        .await
        .expect("read")
        .expect("exists");
    let votes = stores.polls.votes(poll.id).await.expect("votes");
    let mut recount = vec![0u32; 3];
    for vote in &votes {
        for pick in &vote.picks {
            let i = poll
                .options
                .iter()
                .position(|o| o.id == *pick)
                .expect("an option");
            recount[i] += 1;
        }
    }
    let counters: Vec<u32> = counted.tally.counts.iter().map(|(_, n)| *n).collect();
    assert_eq!(counters, recount, "counters equal the recount");
    assert_eq!(
        counted.tally.total_voters as usize,
        votes.len(),
        "each voter once"
    );
    assert!(!votes.is_empty());
}

pub async fn options_are_added_by_whom_the_poll_allows(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let creator_only = create(stores, conversation, a, PollSettings::default()).await;
    let by_member = stores
        .polls
        .add_option(creator_only.id, b, "Tacos", Utc::now())
        .await;
    assert!(
        matches!(
            by_member,
            Err(Error::PermissionDenied {
                reason: Reason::InsufficientRole,
                ..
            })
        ),
        "{by_member:?}"
    );
    let added = stores
        .polls
        .add_option(creator_only.id, a, "  Tacos ", Utc::now())
        .await
        .expect("the creator adds")
        .value;
    assert_eq!(added.options.last().map(|o| o.text.as_str()), Some("Tacos"));
    let duplicate = stores
        .polls
        .add_option(creator_only.id, a, "pizza", Utc::now())
        .await;
    assert!(
        matches!(duplicate, Err(Error::InvalidArgument(_))),
        "{duplicate:?}"
    );
    let open_to_all = create(
        stores,
        conversation,
        a,
        PollSettings {
            members_can_add_options: true,
            ..Default::default()
        },
    )
    .await;
    let by_b = stores
        .polls
        .add_option(open_to_all.id, b, "Curry", Utc::now())
        .await
        .expect("any member adds")
        .value;
    assert_eq!(by_b.options.len(), 4);
    assert_eq!(by_b.options[3].added_by, b);
}

pub async fn polls_are_listed_newest_first_page_by_page(stores: &Stores) {
    let (a, _, conversation) = group(stores).await;
    let mut created = Vec::new();
    for _ in 0..5 {
        let poll = create(stores, conversation, a, PollSettings::default()).await;
        created.push(poll.id);
    }
    created.reverse();
    let first = stores
        .polls
        .polls(conversation, None, None, 3)
        .await
        .expect("page 1");
    let last = first.last().map(|p| (p.create_time, p.id));
    let second = stores
        .polls
        .polls(conversation, None, last, 3)
        .await
        .expect("page 2");
    let listed: Vec<Uuid> = first.iter().chain(&second).map(|p| p.id).collect();
    assert_eq!(listed, created);
    let closed = stores
        .polls
        .polls(conversation, Some(false), None, 10)
        .await
        .expect("closed ones");
    assert!(closed.is_empty());
}

/// Polls due to close are closed by exactly one of several nodes racing to close them, and
/// polls not yet due stay open.
pub async fn due_polls_close_exactly_once(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let now = Utc::now();
    let mut due = Vec::new();
    for i in 0..6 {
        let settings = PollSettings {
            close_time: Some(now + chrono::Duration::milliseconds(10 + i)),
            ..Default::default()
        };
        let poll = stores
            .polls
            .create_poll(poll_in(conversation, a, settings), poll_request(a), now)
            .await
            .expect("create")
            .value;
        due.push(poll.id);
    }
    let later = stores
        .polls
        .create_poll(
            poll_in(
                conversation,
                a,
                PollSettings {
                    close_time: Some(now + chrono::Duration::hours(1)),
                    ..Default::default()
                },
            ),
            poll_request(a),
            now,
        )
        .await
        .expect("create")
        .value;
    let at = now + chrono::Duration::seconds(1);
    // Four "nodes" at once.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let polls = Arc::clone(&stores.polls);
            tokio::spawn(async move { polls.close_due(at, 100).await.expect("close due") })
        })
        .collect();
    let mut closed = Vec::new();
    for racer in racers {
        closed.extend(racer.await.expect("racer").into_iter().map(|p| p.value.id));
    }
    closed.sort();
    due.sort();
    assert_eq!(closed, due, "each due poll closed once, by one racer");
    // Each close is one timeline event, in every member's feed.
    let feed = stores.chat.feed(b, 0, 1000).await.expect("feed");
    let mut announced: Vec<Uuid> = feed
        .iter()
        .filter_map(|item| match &*item.event {
            Event::Conversation {
                change: Change::PollClosed { poll_id, .. },
                ..
            } => Some(*poll_id),
            _ => None,
        })
        .collect();
    announced.sort();
    assert_eq!(announced, due, "one PollClosed event per poll");
    let after = stores
        .polls
        .poll(due[0])
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(after.state, PollState::Closed);
    assert_eq!(
        after.closed_time.map(|t| t.timestamp()),
        Some(at.timestamp())
    );
    let still = stores
        .polls
        .poll(later.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(still.state, PollState::Open);
    // A closed poll takes no votes.
    let late = stores
        .polls
        .cast_vote(due[0], b, &[option(&after, 0)], Utc::now())
        .await;
    assert_eq!(reason_of(&late), Some(Reason::PollClosed));
    assert!(
        stores
            .polls
            .close_due(at, 100)
            .await
            .expect("again")
            .is_empty()
    );
}
