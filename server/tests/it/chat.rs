//! Conversations and messages between real users over real sockets.

use crate::common::*;
use secureconnect_sdk::proto::{
    conversation::v1::{
        AddMembersRequest, ConversationType, CreateConversationRequest, DeleteConversationRequest,
        GetConversationRequest, LeaveConversationRequest, ListConversationsRequest,
        ListMembersRequest, MarkConversationReadRequest, MemberRole, UpdateConversationRequest,
        UpdateMemberRoleRequest,
    },
    event::v1::{conversation_event::Change, subscribe_response::Event},
    message::v1::{
        DeleteMessageRequest, EditMessageRequest, ForwardMessageRequest, GetMessageRequest,
        ListDirection, ListMessagesRequest, MessageContent, SendMessageRequest,
        message_content::Body,
    },
    user::v1::BlockUserRequest,
};
use tonic::Code;

#[tokio::test]
async fn two_users_chat_in_a_direct_conversation_that_is_never_duplicated() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;

    let first = alice.direct_with(&bob).await;
    let again = alice.direct_with(&bob).await;
    let from_bob = bob.direct_with(&alice).await;
    assert_eq!(first.conversation_id, again.conversation_id);
    assert_eq!(first.conversation_id, from_bob.conversation_id);
    assert_eq!(first.peer_user_id, bob.id);
    assert_eq!(from_bob.peer_user_id, alice.id);

    let sent = alice.send(&first.conversation_id, "hi bob").await;
    let listed = bob
        .client
        .conversations()
        .list_conversations(ListConversationsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .conversations;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].unread_count, 1);
    assert_eq!(
        listed[0]
            .last_message
            .as_ref()
            .map(|m| m.message_id.clone()),
        Some(sent.message_id.clone())
    );

    let read = bob
        .client
        .conversations()
        .mark_conversation_read(MarkConversationReadRequest {
            conversation_id: first.conversation_id.clone(),
            seq: sent.seq,
        })
        .await
        .expect("mark read")
        .into_inner();
    assert_eq!(read.read_seq, sent.seq);
    let after = bob
        .client
        .conversations()
        .get_conversation(GetConversationRequest {
            conversation_id: first.conversation_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .conversation
        .expect("conversation");
    assert_eq!(after.unread_count, 0);
    assert_eq!(after.read_seq, sent.seq);
    server.shutdown().await;
}

#[tokio::test]
async fn a_non_member_sees_nothing_of_a_group() {
    let server = TestServer::start().await;
    let (alice, [_bob], group) = server.group(2).await.into_parts();
    let carol = server.register("carol").await;
    assert_eq!(group.role, i32::from(MemberRole::Owner));
    assert_eq!(group.member_count, 2);
    let secret = alice.send(&group.conversation_id, "secret plans").await;

    let mut carol_stream = carol.subscribe("").await;
    until_caught_up(&mut carol_stream).await;
    let id = group.conversation_id.clone();

    let get = carol
        .client
        .conversations()
        .get_conversation(GetConversationRequest {
            conversation_id: id.clone(),
        })
        .await;
    assert_code(get, Code::NotFound);
    let list = carol
        .client
        .messages()
        .list_messages(ListMessagesRequest {
            conversation_id: id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(list, Code::NotFound);
    let one = carol
        .client
        .messages()
        .get_message(GetMessageRequest {
            conversation_id: id.clone(),
            message_id: secret.message_id.clone(),
        })
        .await;
    assert_code(one, Code::NotFound);
    assert_code(carol.try_send(&id, "let me in", "r1").await, Code::NotFound);
    let members = carol
        .client
        .conversations()
        .list_members(ListMembersRequest {
            conversation_id: id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(members, Code::NotFound);
    let mine = carol
        .client
        .conversations()
        .list_conversations(ListConversationsRequest::default())
        .await;
    assert!(mine.expect("list").into_inner().conversations.is_empty());

    // While she was outside, more happened; the first thing her stream shows of the group
    // is being added — nothing from before.
    alice.send(&id, "more secrets").await;
    alice
        .client
        .conversations()
        .add_members(AddMembersRequest {
            conversation_id: id.clone(),
            user_ids: vec![carol.id.clone()],
        })
        .await
        .expect("add carol");
    let (_, event) = next_conversation_event(&mut carol_stream).await;
    let Some(Change::MembersAdded(added)) = event.change else {
        panic!("got {event:?}")
    };
    assert_eq!(added.members[0].user_id, carol.id);
    server.shutdown().await;
}

#[tokio::test]
async fn a_retried_send_returns_the_original_message() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let chat = alice.direct_with(&bob).await;
    let first = alice
        .try_send(&chat.conversation_id, "once", "req-1")
        .await
        .expect("send");
    let retry = alice
        .try_send(&chat.conversation_id, "once", "req-1")
        .await
        .expect("retry");
    assert_eq!(first, retry);
    let messages = alice.list_messages(&chat.conversation_id).await;
    assert_eq!(messages.len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn edits_and_deletes_reach_the_other_member_live() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let chat = alice.direct_with(&bob).await;
    let mut stream = bob.subscribe("").await;
    until_caught_up(&mut stream).await;
    let id = chat.conversation_id.clone();

    let sent = alice.send(&id, "typo").await;
    let edited = alice
        .client
        .messages()
        .edit_message(EditMessageRequest {
            conversation_id: id.clone(),
            message_id: sent.message_id.clone(),
            content: Some(text_content("fixed")),
        })
        .await
        .expect("edit")
        .into_inner()
        .message
        .expect("message");
    assert!(edited.edit_time.is_some());
    assert_eq!(edited.seq, sent.seq, "an edit keeps the message's place");

    let not_author = bob
        .client
        .messages()
        .edit_message(EditMessageRequest {
            conversation_id: id.clone(),
            message_id: sent.message_id.clone(),
            content: Some(text_content("hijack")),
        })
        .await;
    assert_eq!(
        reason(&assert_code(not_author, Code::PermissionDenied)),
        "NOT_AUTHOR"
    );
    let bob_delete = bob
        .client
        .messages()
        .delete_message(DeleteMessageRequest {
            conversation_id: id.clone(),
            message_id: sent.message_id.clone(),
        })
        .await;
    assert_code(bob_delete, Code::PermissionDenied);

    alice
        .client
        .messages()
        .delete_message(DeleteMessageRequest {
            conversation_id: id.clone(),
            message_id: sent.message_id.clone(),
        })
        .await
        .expect("delete");

    let (_, e1) = next_conversation_event(&mut stream).await;
    let (_, e2) = next_conversation_event(&mut stream).await;
    let (_, e3) = next_conversation_event(&mut stream).await;
    assert!(matches!(e1.change, Some(Change::MessageSent(ref m)) if text_of(m) == Some("typo")));
    assert!(matches!(e2.change, Some(Change::MessageEdited(ref m)) if text_of(m) == Some("fixed")));
    let Some(Change::MessageDeleted(tombstone)) = e3.change else {
        panic!("got {e3:?}")
    };
    assert!(tombstone.content.is_none() && tombstone.delete_time.is_some());
    assert!(e1.seq < e2.seq && e2.seq < e3.seq);

    // The stored message is a tombstone too, and cannot be edited back to life.
    let stored = bob
        .client
        .messages()
        .get_message(GetMessageRequest {
            conversation_id: id.clone(),
            message_id: sent.message_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .message
        .expect("message");
    assert!(stored.content.is_none());
    let revive = alice
        .client
        .messages()
        .edit_message(EditMessageRequest {
            conversation_id: id.clone(),
            message_id: sent.message_id.clone(),
            content: Some(text_content("back")),
        })
        .await;
    assert_eq!(
        reason(&assert_code(revive, Code::FailedPrecondition)),
        "MESSAGE_DELETED"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_blocked_user_can_neither_open_a_direct_conversation_nor_message() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let carol = server.register("carol").await;
    let existing = alice.direct_with(&carol).await;

    bob.client
        .users()
        .block_user(BlockUserRequest {
            user_id: alice.id.clone(),
        })
        .await
        .expect("block");
    carol
        .client
        .users()
        .block_user(BlockUserRequest {
            user_id: alice.id.clone(),
        })
        .await
        .expect("block");

    let open = alice
        .client
        .conversations()
        .create_conversation(CreateConversationRequest {
            r#type: ConversationType::Direct.into(),
            member_user_ids: vec![bob.id.clone()],
            ..Default::default()
        })
        .await;
    assert_eq!(
        reason(&assert_code(open, Code::PermissionDenied)),
        "BLOCKED"
    );
    let send = alice
        .try_send(&existing.conversation_id, "hello?", "r1")
        .await;
    assert_eq!(
        reason(&assert_code(send, Code::PermissionDenied)),
        "BLOCKED"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn end_to_end_encrypted_conversations_carry_only_ciphertext() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let group = alice.create_group("sealed", &[&bob], true).await;
    let plain = alice
        .try_send(&group.conversation_id, "plain text", "r1")
        .await;
    assert_eq!(
        reason(&assert_code(plain, Code::FailedPrecondition)),
        "ENCRYPTION_MISMATCH"
    );

    let ciphertext = vec![0u8, 159, 146, 150, 255];
    let sent = alice
        .client
        .messages()
        .send_message(SendMessageRequest {
            conversation_id: group.conversation_id.clone(),
            content: Some(MessageContent {
                body: Some(Body::EncryptedPayload(ciphertext.clone())),
            }),
            request_id: "r2".into(),
            ..Default::default()
        })
        .await
        .expect("send ciphertext")
        .into_inner()
        .message
        .expect("message");
    let got = bob
        .client
        .messages()
        .get_message(GetMessageRequest {
            conversation_id: group.conversation_id.clone(),
            message_id: sent.message_id,
        })
        .await
        .expect("get")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(
        got.content.and_then(|c| c.body),
        Some(Body::EncryptedPayload(ciphertext))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn group_roles_are_enforced() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let carol = server.register("carol").await;
    let id = group.conversation_id.clone();

    let by_member = bob
        .client
        .conversations()
        .add_members(AddMembersRequest {
            conversation_id: id.clone(),
            user_ids: vec![carol.id.clone()],
        })
        .await;
    assert_eq!(
        reason(&assert_code(by_member, Code::PermissionDenied)),
        "INSUFFICIENT_ROLE"
    );
    let rename = bob
        .client
        .conversations()
        .update_conversation(UpdateConversationRequest {
            conversation: Some(secureconnect_sdk::proto::conversation::v1::Conversation {
                conversation_id: id.clone(),
                title: "mine now".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["title".into()],
            }),
        })
        .await;
    assert_code(rename, Code::PermissionDenied);

    let leave = alice
        .client
        .conversations()
        .leave_conversation(LeaveConversationRequest {
            conversation_id: id.clone(),
        })
        .await;
    assert_eq!(
        reason(&assert_code(leave, Code::FailedPrecondition)),
        "LAST_OWNER"
    );

    alice
        .client
        .conversations()
        .update_member_role(UpdateMemberRoleRequest {
            conversation_id: id.clone(),
            user_id: bob.id.clone(),
            role: MemberRole::Admin.into(),
        })
        .await
        .expect("promote bob");
    bob.client
        .conversations()
        .add_members(AddMembersRequest {
            conversation_id: id.clone(),
            user_ids: vec![carol.id.clone()],
        })
        .await
        .expect("admin adds carol");
    let renamed = bob
        .client
        .conversations()
        .update_conversation(UpdateConversationRequest {
            conversation: Some(secureconnect_sdk::proto::conversation::v1::Conversation {
                conversation_id: id.clone(),
                title: "renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["title".into()],
            }),
        })
        .await
        .expect("admin renames")
        .into_inner()
        .conversation
        .expect("conversation");
    assert_eq!(renamed.title, "renamed");
    assert_eq!(renamed.member_count, 3);

    // Carol leaves; her stream's last event of the group is her own departure.
    let mut carol_stream = carol.subscribe("").await;
    until_caught_up(&mut carol_stream).await;
    carol
        .client
        .conversations()
        .leave_conversation(LeaveConversationRequest {
            conversation_id: id.clone(),
        })
        .await
        .expect("leave");
    let (_, event) = next_conversation_event(&mut carol_stream).await;
    let Some(Change::MemberRemoved(removed)) = event.change else {
        panic!("got {event:?}")
    };
    assert!(removed.left && removed.user_id == carol.id);
    alice.send(&id, "after carol left").await;
    assert_code(
        carol.try_send(&id, "still here?", "r9").await,
        Code::NotFound,
    );
    // Nothing more reaches her: the next item is a heartbeat or nothing at all.
    let more = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        carol_stream.message(),
    )
    .await;
    if let Ok(Ok(Some(item))) = more {
        assert!(
            matches!(item.event, Some(Event::Heartbeat(_))),
            "leaked {item:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn messages_page_backwards_and_forwards_by_seq() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let chat = alice.direct_with(&bob).await;
    for i in 0..7 {
        alice.send(&chat.conversation_id, &format!("m{i}")).await;
    }
    let page = |direction: ListDirection, token: String| {
        let client = alice.client.clone();
        let id = chat.conversation_id.clone();
        async move {
            client
                .messages()
                .list_messages(ListMessagesRequest {
                    conversation_id: id,
                    direction: direction.into(),
                    page_size: 3,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner()
        }
    };
    let mut texts = Vec::new();
    let mut token = String::new();
    loop {
        let p = page(ListDirection::Backward, token).await;
        texts.extend(
            p.messages
                .iter()
                .map(|m| text_of(m).unwrap_or_default().to_owned()),
        );
        if p.next_page_token.is_empty() {
            break;
        }
        token = p.next_page_token;
    }
    assert_eq!(texts, ["m6", "m5", "m4", "m3", "m2", "m1", "m0"]);
    let first = page(ListDirection::Forward, String::new()).await;
    let seqs: Vec<u64> = first.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [2, 3, 4]);
    let second = page(ListDirection::Forward, first.next_page_token).await;
    assert_eq!(second.messages.first().map(|m| m.seq), Some(5));
    server.shutdown().await;
}

#[tokio::test]
async fn forwarding_copies_a_message_and_credits_its_author() {
    let server = TestServer::start().await;
    let (alice, [bob], source) = server.group(2).await.into_parts();
    let carol = server.register("carol").await;
    let target = bob.direct_with(&carol).await;
    let original = alice.send(&source.conversation_id, "worth sharing").await;

    let forward = |request_id: &str| ForwardMessageRequest {
        conversation_id: source.conversation_id.clone(),
        message_id: original.message_id.clone(),
        target_conversation_id: target.conversation_id.clone(),
        request_id: request_id.into(),
    };
    let copy = bob
        .client
        .messages()
        .forward_message(forward("f1"))
        .await
        .expect("forward")
        .into_inner()
        .message
        .expect("m");
    let retry = bob
        .client
        .messages()
        .forward_message(forward("f1"))
        .await
        .expect("retry")
        .into_inner()
        .message
        .expect("m");
    assert_eq!(copy, retry, "a retried forward returns the first copy");
    assert_eq!(copy.conversation_id, target.conversation_id);
    assert_eq!(copy.sender_user_id, bob.id);
    assert_eq!(text_of(&copy), Some("worth sharing"));
    let from = copy.forwarded_from.expect("forwarded_from");
    assert_eq!(from.original_sender_user_id, alice.id);
    assert_eq!(from.original_create_time, original.create_time);

    // Carol can read the copy, but learns nothing of the source conversation.
    let seen = carol
        .client
        .messages()
        .get_message(GetMessageRequest {
            conversation_id: target.conversation_id.clone(),
            message_id: copy.message_id.clone(),
        })
        .await
        .expect("carol reads the copy");
    assert_eq!(
        text_of(&seen.into_inner().message.expect("m")),
        Some("worth sharing")
    );
    // Carol is not in the source: she cannot forward from it.
    let not_member = carol.client.messages().forward_message(forward("f2")).await;
    assert_code(not_member, Code::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn deleting_a_group_ends_it_for_every_member() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    alice.send(&group.conversation_id, "soon gone").await;
    let mut bob_stream = bob.subscribe("").await;
    until_caught_up(&mut bob_stream).await;

    let by_member = bob
        .client
        .conversations()
        .delete_conversation(DeleteConversationRequest {
            conversation_id: group.conversation_id.clone(),
        })
        .await;
    assert_code(by_member, Code::PermissionDenied);
    alice
        .client
        .conversations()
        .delete_conversation(DeleteConversationRequest {
            conversation_id: group.conversation_id.clone(),
        })
        .await
        .expect("owner deletes");

    let (_, event) = next_conversation_event(&mut bob_stream).await;
    assert!(
        matches!(event.change, Some(Change::ConversationDeleted(_))),
        "got {event:?}"
    );
    for user in [&alice, &bob] {
        let get = user
            .client
            .conversations()
            .get_conversation(GetConversationRequest {
                conversation_id: group.conversation_id.clone(),
            })
            .await;
        assert_code(get, Code::NotFound);
        let listed = user
            .client
            .conversations()
            .list_conversations(ListConversationsRequest::default())
            .await
            .expect("list");
        assert!(listed.into_inner().conversations.is_empty());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_retried_group_creation_returns_the_first_group() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let create = |request_id: &str| CreateConversationRequest {
        r#type: ConversationType::Group.into(),
        member_user_ids: vec![bob.id.clone()],
        title: "once".into(),
        request_id: request_id.into(),
        ..Default::default()
    };
    let conversations = alice.client.conversations();
    let first = conversations
        .clone()
        .create_conversation(create("g-1"))
        .await
        .expect("create")
        .into_inner();
    let retry = conversations
        .clone()
        .create_conversation(create("g-1"))
        .await
        .expect("retry")
        .into_inner();
    let other = conversations
        .clone()
        .create_conversation(create("g-2"))
        .await
        .expect("other")
        .into_inner();
    let id = |c: &secureconnect_sdk::proto::conversation::v1::CreateConversationResponse| {
        c.conversation.as_ref().map(|c| c.conversation_id.clone())
    };
    assert_eq!(id(&first), id(&retry));
    assert_ne!(id(&first), id(&other));
    // The same request id from another user is that user's own.
    let from_bob = bob
        .client
        .conversations()
        .create_conversation(create("g-1"))
        .await;
    assert_ne!(id(&from_bob.expect("bob creates").into_inner()), id(&first));
    let listed = alice
        .client
        .conversations()
        .list_conversations(ListConversationsRequest::default())
        .await
        .expect("list");
    assert_eq!(
        listed.into_inner().conversations.len(),
        2,
        "alice has g-1 and g-2"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn listing_conversations_pages_through_every_one_exactly_once() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let mut created = std::collections::BTreeSet::new();
    for i in 0..7 {
        created.insert(
            alice
                .group_with(&format!("g{i}"), &[&bob])
                .await
                .conversation_id,
        );
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = bob
            .client
            .conversations()
            .list_conversations(ListConversationsRequest {
                page_size: 3,
                page_token: token,
            })
            .await
            .expect("list")
            .into_inner();
        seen.extend(page.conversations.into_iter().map(|c| c.conversation_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen.len(),
        7,
        "no conversation skipped or repeated: {seen:?}"
    );
    assert_eq!(
        seen.into_iter().collect::<std::collections::BTreeSet<_>>(),
        created
    );
    server.shutdown().await;
}

#[tokio::test]
async fn sending_too_fast_is_refused_with_a_retry_delay_and_loses_nothing() {
    let server = TestServer::start_with(|c| c.limits.messages_per_second = 3).await;
    let (alice, bob) = server.pair().await;
    let chat = alice.direct_with(&bob).await;
    start_of_next_second().await;
    for i in 0..3 {
        alice
            .try_send(&chat.conversation_id, "burst", &format!("b{i}"))
            .await
            .expect("within the allowance");
    }
    let refused = assert_code(
        alice
            .try_send(&chat.conversation_id, "one too many", "b3")
            .await,
        Code::ResourceExhausted,
    );
    assert_eq!(reason(&refused), "RATE_LIMITED");
    let retry_after = {
        use tonic_types::StatusExt;
        refused
            .get_error_details()
            .retry_info()
            .and_then(|r| r.retry_delay)
            .expect("RetryInfo")
    };
    assert!(retry_after <= std::time::Duration::from_secs(1));
    // Bob is not affected by alice's limit.
    bob.try_send(&chat.conversation_id, "hi", "bob-1")
        .await
        .expect("bob has his own allowance");
    // After the delay, the same request goes through (the refused one stored nothing).
    tokio::time::sleep(retry_after + std::time::Duration::from_millis(50)).await;
    alice
        .try_send(&chat.conversation_id, "one too many", "b3")
        .await
        .expect("after the delay");
    let listed = alice.list_messages(&chat.conversation_id).await;
    assert_eq!(listed.len(), 5);
    server.shutdown().await;
}
