//! Request ids (AIP-155) and authorization at the moment of the write: a retry gets the
//! original result whatever changed since, a reused id for a different request is refused,
//! and a member removed (or an admin demoted) while writing cannot slip a change in after.

use crate::common::*;
use secureconnect_sdk::proto::{
    conversation::v1::{
        ConversationType, CreateConversationRequest, LeaveConversationRequest, RemoveMemberRequest,
    },
    event::v1::conversation_event::Change,
    message::v1::{ForwardMessageRequest, ListDirection, ListMessagesRequest},
};
use tonic::Code;

#[tokio::test]
async fn a_request_id_reused_for_other_content_or_another_conversation_is_refused() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let carol = server.register("carol").await;
    let with_bob = alice.direct_with(&bob).await;
    let with_carol = alice.direct_with(&carol).await;
    let first = alice
        .try_send(&with_bob.conversation_id, "hello", "req-1")
        .await
        .expect("first use");
    for (conversation, text) in [
        (&with_bob.conversation_id, "something else"),
        (&with_carol.conversation_id, "hello"),
    ] {
        let refused = assert_code(
            alice.try_send(conversation, text, "req-1").await,
            Code::AlreadyExists,
        );
        assert_eq!(reason(&refused), "REQUEST_ID_REUSED");
    }
    assert!(
        alice
            .list_messages(&with_carol.conversation_id)
            .await
            .is_empty()
    );
    assert_eq!(
        alice.list_messages(&with_bob.conversation_id).await,
        vec![first.clone()]
    );
    // A forward is a different request too.
    let forward = alice
        .client
        .messages()
        .forward_message(ForwardMessageRequest {
            conversation_id: with_bob.conversation_id.clone(),
            message_id: first.message_id.clone(),
            target_conversation_id: with_carol.conversation_id.clone(),
            request_id: "req-1".into(),
        })
        .await;
    assert_eq!(
        reason(&assert_code(forward, Code::AlreadyExists)),
        "REQUEST_ID_REUSED"
    );
    // The identical request is still a retry.
    let retry = alice
        .try_send(&with_bob.conversation_id, "hello", "req-1")
        .await
        .expect("retry");
    assert_eq!(retry, first);
    server.shutdown().await;
}

#[tokio::test]
async fn a_retry_of_a_committed_send_succeeds_while_rate_limited_or_after_leaving() {
    let server = TestServer::start_with(|c| c.limits.messages_per_second = 1).await;
    let (_alice, [bob], group) = server.group(2).await.into_parts();
    start_of_next_second().await;
    let sent = bob
        .try_send(&group.conversation_id, "once", "b-1")
        .await
        .expect("send");
    // Out of allowance for this second, yet the retry is answered.
    let retry = bob
        .try_send(&group.conversation_id, "once", "b-1")
        .await
        .expect("retry while rate limited");
    assert_eq!(retry, sent);
    let fresh = bob.try_send(&group.conversation_id, "twice", "b-2").await;
    assert_eq!(
        reason(&assert_code(fresh, Code::ResourceExhausted)),
        "RATE_LIMITED"
    );

    bob.client
        .conversations()
        .leave_conversation(LeaveConversationRequest {
            conversation_id: group.conversation_id.clone(),
        })
        .await
        .expect("leave");
    let retry = bob
        .try_send(&group.conversation_id, "once", "b-1")
        .await
        .expect("retry after leaving");
    assert_eq!(retry, sent);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let new_send = bob.try_send(&group.conversation_id, "again", "b-3").await;
    assert_code(new_send, Code::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn a_conversation_request_id_reused_for_another_group_is_refused() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let create = |title: &str| CreateConversationRequest {
        r#type: ConversationType::Group.into(),
        member_user_ids: vec![bob.id.clone()],
        title: title.into(),
        request_id: "g-1".into(),
        ..Default::default()
    };
    alice
        .client
        .conversations()
        .create_conversation(create("first"))
        .await
        .expect("create");
    let refused = alice
        .client
        .conversations()
        .create_conversation(create("second"))
        .await;
    assert_eq!(
        reason(&assert_code(refused, Code::AlreadyExists)),
        "REQUEST_ID_REUSED"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_member_removed_while_sending_never_posts_after_the_removal() {
    let server = TestServer::start_with(|c| c.limits.messages_per_second = 10_000).await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let mut stream = alice.subscribe("").await;
    until_caught_up(&mut stream).await;
    // Bob sends from several tasks at once until the removal stops him.
    let accepted_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|task| {
            let client = bob.client.clone();
            let conversation = group.conversation_id.clone();
            let accepted_so_far = std::sync::Arc::clone(&accepted_so_far);
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                for i in 0.. {
                    let sent = client
                        .messages()
                        .send_message(secureconnect_sdk::proto::message::v1::SendMessageRequest {
                            conversation_id: conversation.clone(),
                            content: Some(text_content("racing")),
                            request_id: format!("t{task}-{i}"),
                            ..Default::default()
                        })
                        .await;
                    match sent {
                        Ok(response) => {
                            accepted.extend(response.into_inner().message);
                            accepted_so_far.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(status) => {
                            assert_eq!(status.code(), Code::NotFound, "{status:?}");
                            return accepted;
                        }
                    }
                }
                accepted
            })
        })
        .collect();
    // Remove him while the sends are in full flow (however fast the backends are).
    while accepted_so_far.load(std::sync::atomic::Ordering::Relaxed) < 16 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    alice
        .client
        .conversations()
        .remove_member(RemoveMemberRequest {
            conversation_id: group.conversation_id.clone(),
            user_id: bob.id.clone(),
        })
        .await
        .expect("remove");
    let mut accepted = Vec::new();
    for sender in senders {
        accepted.extend(sender.await.expect("sender"));
    }
    let removal_seq = loop {
        let (_, event) = next_conversation_event(&mut stream).await;
        if matches!(event.change, Some(Change::MemberRemoved(_))) {
            break event.seq;
        }
    };
    assert!(
        !accepted.is_empty(),
        "bob got some sends in before the removal"
    );
    let late: Vec<u64> = accepted
        .iter()
        .map(|m| m.seq)
        .filter(|seq| *seq > removal_seq)
        .collect();
    assert!(
        late.is_empty(),
        "accepted after the removal (seq {removal_seq}): {late:?}"
    );
    // And the timeline agrees: nothing of bob's after his removal.
    let page = alice
        .client
        .messages()
        .list_messages(ListMessagesRequest {
            conversation_id: group.conversation_id.clone(),
            direction: ListDirection::Forward.into(),
            page_size: 200,
            anchor_seq: removal_seq,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(page.messages.is_empty(), "{:?}", page.messages);
    server.shutdown().await;
}

/// Bob, an admin, renames the group from several tasks at once while Alice demotes him:
/// every rename the server accepted sits before the demotion in the timeline.
#[tokio::test]
async fn an_admin_demoted_while_editing_never_edits_after_the_demotion() {
    use secureconnect_sdk::proto::conversation::v1::{
        Conversation, MemberRole, UpdateConversationRequest, UpdateMemberRoleRequest,
    };
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let set_role = |role: MemberRole| UpdateMemberRoleRequest {
        conversation_id: group.conversation_id.clone(),
        user_id: bob.id.clone(),
        role: role.into(),
    };
    alice
        .client
        .conversations()
        .update_member_role(set_role(MemberRole::Admin))
        .await
        .expect("promote");
    let mut stream = alice.subscribe("").await;
    until_caught_up(&mut stream).await;

    let accepted_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let editors: Vec<_> = (0..8)
        .map(|task| {
            let client = bob.client.clone();
            let conversation_id = group.conversation_id.clone();
            let accepted_so_far = std::sync::Arc::clone(&accepted_so_far);
            tokio::spawn(async move {
                let mut accepted = 0usize;
                for i in 0.. {
                    let renamed = client
                        .conversations()
                        .update_conversation(UpdateConversationRequest {
                            conversation: Some(Conversation {
                                conversation_id: conversation_id.clone(),
                                title: format!("t{task}-{i}"),
                                ..Default::default()
                            }),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec!["title".into()],
                            }),
                        })
                        .await;
                    match renamed {
                        Ok(_) => {
                            accepted += 1;
                            accepted_so_far.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(status) => {
                            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
                            return accepted;
                        }
                    }
                }
                accepted
            })
        })
        .collect();
    while accepted_so_far.load(std::sync::atomic::Ordering::Relaxed) < 16 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    alice
        .client
        .conversations()
        .update_member_role(set_role(MemberRole::Member))
        .await
        .expect("demote");
    let mut accepted = 0;
    for editor in editors {
        accepted += editor.await.expect("editor");
    }
    // Read the timeline until the demotion and every accepted rename are in.
    let (mut renames_before, mut renames_after, mut demotion_seen) = (0, 0, false);
    while !demotion_seen || renames_before + renames_after < accepted {
        let (_, event) = next_conversation_event(&mut stream).await;
        match event.change {
            Some(Change::MemberRoleUpdated(_)) => demotion_seen = true,
            Some(Change::ConversationUpdated(_)) if demotion_seen => renames_after += 1,
            Some(Change::ConversationUpdated(_)) => renames_before += 1,
            _ => {}
        }
    }
    assert!(renames_before > 0, "bob renamed before the demotion");
    assert_eq!(renames_after, 0, "renames accepted after the demotion");
    server.shutdown().await;
}
