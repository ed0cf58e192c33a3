//! Concurrent sends on the embedded default share commits (group commit): each still
//! stands or fails on its own. A refused send in the middle of a group leaves no trace
//! (no message, no `seq` taken), the sends around it commit, and a retry racing its own
//! original gets the original back.

use std::collections::{HashMap, HashSet};

use crate::common::*;
use futures::future::join_all;
use secureconnect_sdk::proto::message::v1::{
    ListDirection, ListMessagesRequest, SendMessageRequest,
};
use tonic::Code;

#[tokio::test]
async fn concurrent_sends_that_share_a_commit_each_stand_or_fail_alone() {
    let server = TestServer::start_with(|c| c.limits.messages_per_second = 10_000).await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let stranger = server.register("mallory").await;
    let conversation = &group.conversation_id;

    // Every kind of outcome at once, interleaved, so groups mix them.
    let mut expected = Vec::new();
    let mut sends = Vec::new();
    for i in 0..24 {
        let (who, name) = if i % 2 == 0 {
            (&alice, "alice")
        } else {
            (&bob, "bob")
        };
        let (text, request_id, outcome) = match i % 6 {
            // Not a member: refused as if the conversation did not exist.
            3 => (
                format!("intrusion {i}"),
                format!("s-{i}"),
                Some(Code::NotFound),
            ),
            // A reply to a message that is not there.
            5 => (
                format!("reply {i}"),
                format!("r-{i}"),
                Some(Code::InvalidArgument),
            ),
            _ => (format!("{name} {i}"), format!("{name}-{i}"), None),
        };
        let sender = if i % 6 == 3 { &stranger } else { who };
        let reply_to = if i % 6 == 5 {
            uuid::Uuid::now_v7().to_string()
        } else {
            String::new()
        };
        expected.push((text.clone(), outcome));
        sends.push(async move {
            sender
                .client
                .messages()
                .send_message(SendMessageRequest {
                    conversation_id: conversation.clone(),
                    content: Some(text_content(&text)),
                    request_id,
                    reply_to_message_id: reply_to,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().message.expect("message"))
        });
    }
    // Each accepted send's retry, racing it.
    let retries = (0..24).filter(|i| i % 6 != 3 && i % 6 != 5).map(|i| {
        let (who, name) = if i % 2 == 0 {
            (&alice, "alice")
        } else {
            (&bob, "bob")
        };
        async move {
            (
                format!("{name} {i}"),
                who.try_send(conversation, &format!("{name} {i}"), &format!("{name}-{i}"))
                    .await,
            )
        }
    });
    let (results, retried) = tokio::join!(join_all(sends), join_all(retries));

    let mut accepted = HashMap::new();
    for ((text, outcome), result) in expected.into_iter().zip(results) {
        match outcome {
            None => {
                let message = result.unwrap_or_else(|e| panic!("{text}: {e:?}"));
                accepted.insert(text, message);
            }
            Some(code) => {
                assert_code(result, code);
            }
        }
    }
    for (text, retry) in retried {
        let retry = retry.unwrap_or_else(|e| panic!("retry of {text}: {e:?}"));
        assert_eq!(
            Some(&retry),
            accepted.get(&text),
            "a retry gets the original"
        );
    }

    // Exactly the accepted sends, numbered without holes: refused writes took no `seq`.
    let stored = alice
        .client
        .messages()
        .list_messages(ListMessagesRequest {
            conversation_id: conversation.clone(),
            direction: ListDirection::Forward as i32,
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .messages;
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + stored.len() as u64).collect::<Vec<_>>(),
        "dense numbering"
    );
    let stored_ids: HashSet<_> = stored.iter().map(|m| m.message_id.clone()).collect();
    let accepted_ids: HashSet<_> = accepted.values().map(|m| m.message_id.clone()).collect();
    assert_eq!(accepted_ids.len(), 16);
    assert_eq!(
        stored_ids, accepted_ids,
        "the accepted sends, and only them"
    );
    server.shutdown().await;
}
