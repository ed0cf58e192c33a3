//! `PollService`, as alice in a group with bob: malformed requests name their field, and
//! ids that name nothing are `NOT_FOUND`. Nothing is created or counted by a bad request.

use secureconnect_sdk::proto::poll::v1::*;
use tonic::Code;

use super::{NOT_AN_ID, UNKNOWN_ID, invalid};
use crate::common::*;

/// A server, alice, and a poll of hers in a group with bob.
async fn with_poll() -> (TestServer, TestUser, String, Poll) {
    let server = TestServer::start().await;
    let (alice, [_bob], group) = server.group(2).await.into_parts();
    let poll = alice
        .client
        .create_poll(
            &group.conversation_id,
            "Lunch?",
            ["Pizza", "Sushi", "Salad"],
            PollSettings {
                multiple_choice: true,
                max_selections: 2,
                ..Default::default()
            },
        )
        .await
        .expect("poll");
    (server, alice, group.conversation_id, poll)
}

/// The poll is as created: no bad request counted a vote or added an option.
async fn assert_untouched(alice: &TestUser, poll: &Poll) {
    let now = alice
        .client
        .polls()
        .get_poll(GetPollRequest {
            poll_id: poll.poll_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .poll
        .expect("poll");
    assert_eq!(now.options.len(), 3);
    assert_eq!(now.results.map(|r| r.total_voters), Some(0));
}

#[tokio::test]
async fn create_poll() {
    let (server, alice, conversation_id, _) = with_poll().await;
    let polls = alice.client.polls();
    let request = |f: &dyn Fn(&mut CreatePollRequest)| {
        let mut r = CreatePollRequest {
            conversation_id: conversation_id.clone(),
            question: "Where?".into(),
            options: vec!["Here".into(), "There".into()],
            settings: None,
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        f(&mut r);
        r
    };
    let cases: Vec<(&str, CreatePollRequest, &str)> = vec![
        (
            "no conversation",
            request(&|r| r.conversation_id.clear()),
            "conversation_id",
        ),
        (
            "bad conversation",
            request(&|r| r.conversation_id = NOT_AN_ID.into()),
            "conversation_id",
        ),
        (
            "no question",
            request(&|r| r.question = "  ".into()),
            "question",
        ),
        (
            "long question",
            request(&|r| r.question = "q".repeat(501)),
            "question",
        ),
        ("one option", request(&|r| r.options.truncate(1)), "options"),
        (
            "21 options",
            request(&|r| r.options = (0..21).map(|i| i.to_string()).collect()),
            "options",
        ),
        (
            "empty option",
            request(&|r| r.options[1] = " ".into()),
            "options[1]",
        ),
        (
            "long option",
            request(&|r| r.options[1] = "o".repeat(201)),
            "options[1]",
        ),
        (
            "duplicate option",
            request(&|r| r.options[1] = " HERE ".into()),
            "options[1]",
        ),
        (
            "no request id",
            request(&|r| r.request_id.clear()),
            "request_id",
        ),
        (
            "max_selections above the options",
            request(&|r| {
                r.settings = Some(PollSettings {
                    multiple_choice: true,
                    max_selections: 3,
                    ..Default::default()
                })
            }),
            "settings.max_selections",
        ),
        (
            "anonymous with changes",
            request(&|r| {
                r.settings = Some(PollSettings {
                    anonymous: true,
                    allow_vote_changes: true,
                    ..Default::default()
                })
            }),
            "settings.allow_vote_changes",
        ),
        (
            "close time in the past",
            request(&|r| {
                r.settings = Some(PollSettings {
                    close_time: Some(prost_types::Timestamp {
                        seconds: 1_000,
                        nanos: 0,
                    }),
                    ..Default::default()
                })
            }),
            "settings.close_time",
        ),
    ];
    for (what, r, field) in cases {
        invalid(what, polls.clone().create_poll(r).await, field);
    }
    let unknown = polls
        .clone()
        .create_poll(request(&|r| r.conversation_id = UNKNOWN_ID.into()))
        .await;
    assert_code(unknown, Code::NotFound);
    let listed = polls
        .clone()
        .list_polls(ListPollsRequest {
            conversation_id,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.polls.len(), 1, "no bad request created a poll");
    server.shutdown().await;
}

#[tokio::test]
async fn poll_ids() {
    let (server, alice, _, poll) = with_poll().await;
    let polls = alice.client.polls();
    for (id, code) in [
        ("", Code::InvalidArgument),
        (NOT_AN_ID, Code::InvalidArgument),
        (UNKNOWN_ID, Code::NotFound),
    ] {
        let poll_id = id.to_owned();
        let get = polls
            .clone()
            .get_poll(GetPollRequest {
                poll_id: poll_id.clone(),
            })
            .await;
        assert_code(get, code);
        let retract = polls
            .clone()
            .retract_vote(RetractVoteRequest {
                poll_id: poll_id.clone(),
            })
            .await;
        assert_code(retract, code);
        let close = polls
            .clone()
            .close_poll(ClosePollRequest {
                poll_id: poll_id.clone(),
            })
            .await;
        assert_code(close, code);
        let delete = polls
            .clone()
            .delete_poll(DeletePollRequest {
                poll_id: poll_id.clone(),
            })
            .await;
        assert_code(delete, code);
        let add = polls
            .clone()
            .add_poll_option(AddPollOptionRequest {
                poll_id: poll_id.clone(),
                text: "x".into(),
            })
            .await;
        assert_code(add, code);
        let voters = polls
            .clone()
            .list_poll_voters(ListPollVotersRequest {
                poll_id,
                ..Default::default()
            })
            .await;
        assert_code(voters, code);
    }
    assert_untouched(&alice, &poll).await;
    server.shutdown().await;
}

#[tokio::test]
async fn cast_vote() {
    let (server, alice, _, poll) = with_poll().await;
    let polls = alice.client.polls();
    let option = |i: usize| poll.options[i].option_id.clone();
    let cast = |option_ids: Vec<String>| CastVoteRequest {
        poll_id: poll.poll_id.clone(),
        option_ids,
    };
    let cases = [
        ("nothing picked", cast(vec![]), "option_ids"),
        (
            "too many picks",
            cast(vec![option(0), option(1), option(2)]),
            "option_ids",
        ),
        (
            "a duplicate",
            cast(vec![option(0), option(0)]),
            "option_ids[1]",
        ),
        (
            "an unknown option",
            cast(vec![UNKNOWN_ID.into()]),
            "option_ids[0]",
        ),
        (
            "a malformed option",
            cast(vec![NOT_AN_ID.into()]),
            "option_ids[0]",
        ),
    ];
    for (what, r, field) in cases {
        invalid(what, polls.clone().cast_vote(r).await, field);
    }
    // A thousand bad ids: the error lists a readable few and says how many more.
    let flood = cast(vec![NOT_AN_ID.to_owned(); 1000]);
    let status = polls.clone().cast_vote(flood).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    assert!(
        (2..=32).contains(&fields.len()),
        "{} violations listed",
        fields.len()
    );
    assert_untouched(&alice, &poll).await;
    server.shutdown().await;
}

#[tokio::test]
async fn add_poll_option_and_list_voters() {
    let (server, alice, conversation_id, poll) = with_poll().await;
    let polls = alice.client.polls();
    let add = |text: &str| AddPollOptionRequest {
        poll_id: poll.poll_id.clone(),
        text: text.into(),
    };
    invalid(
        "empty option",
        polls.clone().add_poll_option(add(" ")).await,
        "text",
    );
    invalid(
        "long option",
        polls.clone().add_poll_option(add(&"o".repeat(201))).await,
        "text",
    );
    invalid(
        "existing option",
        polls.clone().add_poll_option(add("pizza")).await,
        "text",
    );
    let voters = |f: &dyn Fn(&mut ListPollVotersRequest)| {
        let mut r = ListPollVotersRequest {
            poll_id: poll.poll_id.clone(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    invalid(
        "bad option filter",
        polls
            .clone()
            .list_poll_voters(voters(&|r| r.option_id = NOT_AN_ID.into()))
            .await,
        "option_id",
    );
    invalid(
        "foreign option filter",
        polls
            .clone()
            .list_poll_voters(voters(&|r| r.option_id = UNKNOWN_ID.into()))
            .await,
        "option_id",
    );
    invalid(
        "page size",
        polls
            .clone()
            .list_poll_voters(voters(&|r| r.page_size = 501))
            .await,
        "page_size",
    );
    invalid(
        "page token",
        polls
            .clone()
            .list_poll_voters(voters(&|r| r.page_token = "junk".into()))
            .await,
        "page_token",
    );
    let list = |f: &dyn Fn(&mut ListPollsRequest)| {
        let mut r = ListPollsRequest {
            conversation_id: conversation_id.clone(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    invalid(
        "list: no conversation",
        polls
            .clone()
            .list_polls(list(&|r| r.conversation_id.clear()))
            .await,
        "conversation_id",
    );
    invalid(
        "list: page size",
        polls.clone().list_polls(list(&|r| r.page_size = -1)).await,
        "page_size",
    );
    invalid(
        "list: page token",
        polls
            .clone()
            .list_polls(list(&|r| r.page_token = "junk".into()))
            .await,
        "page_token",
    );
    assert_untouched(&alice, &poll).await;
    server.shutdown().await;
}
