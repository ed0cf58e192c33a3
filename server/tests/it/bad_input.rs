//! Bad input, RPC by RPC: every malformed request gets `INVALID_ARGUMENT` naming the
//! field (or the documented code), and nothing panics or changes.

use crate::common::*;
use secureconnect_sdk::proto::{
    auth::v1::*,
    conversation::v1::*,
    event::v1::SubscribeRequest,
    message::v1::*,
    presence::v1::{GetPresenceRequest, SetTypingRequest},
    user::v1::*,
};
use tonic::{Code, Status};

/// Asserts `INVALID_ARGUMENT` with a violation on `field`.
fn invalid<T: std::fmt::Debug>(what: &str, result: Result<T, Status>, field: &str) {
    let status = match result {
        Ok(v) => panic!("{what}: expected INVALID_ARGUMENT on {field}, got Ok({v:?})"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let fields = violated_fields(&status);
    assert!(
        fields.iter().any(|f| f == field),
        "{what}: expected a violation on {field}, got {fields:?}"
    );
}

const NOT_AN_ID: &str = "not-a-uuid";
const UNKNOWN_ID: &str = "01890000-0000-7000-8000-000000000000";

#[tokio::test]
async fn auth_service_rejects_bad_input() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let auth = server.client().await.auth();
    let reg = |email: &str, password: &str, username: &str| RegisterRequest {
        email: email.into(),
        password: password.into(),
        username: username.into(),
        ..Default::default()
    };
    invalid(
        "register: no email",
        auth.clone().register(reg("", "long-password", "ann")).await,
        "email",
    );
    invalid(
        "register: bad email",
        auth.clone()
            .register(reg("ann", "long-password", "ann"))
            .await,
        "email",
    );
    invalid(
        "register: short password",
        auth.clone().register(reg("a@b.co", "short", "ann")).await,
        "password",
    );
    invalid(
        "register: bad username",
        auth.clone()
            .register(reg("a@b.co", "long-password", "Ann!"))
            .await,
        "username",
    );
    let long_name = RegisterRequest {
        display_name: "x".repeat(65),
        ..reg("a@b.co", "long-password", "ann")
    };
    invalid(
        "register: long display name",
        auth.clone().register(long_name).await,
        "display_name",
    );
    let control = RegisterRequest {
        display_name: "bell\u{7}".into(),
        ..reg("a@b.co", "long-password", "ann")
    };
    invalid(
        "register: control characters",
        auth.clone().register(control).await,
        "display_name",
    );
    let device = RegisterRequest {
        device: Some(DeviceInfo {
            name: "d".repeat(129),
            platform: String::new(),
        }),
        ..reg("a@b.co", "long-password", "ann")
    };
    invalid(
        "register: long device name",
        auth.clone().register(device).await,
        "device.name",
    );

    invalid(
        "login: no email",
        auth.clone()
            .login(LoginRequest {
                password: "x".into(),
                ..Default::default()
            })
            .await,
        "email",
    );
    invalid(
        "login: no password",
        auth.clone()
            .login(LoginRequest {
                email: "a@b.co".into(),
                ..Default::default()
            })
            .await,
        "password",
    );
    invalid(
        "refresh: empty",
        auth.clone()
            .refresh_token(RefreshTokenRequest::default())
            .await,
        "refresh_token",
    );
    assert_code(
        auth.clone()
            .refresh_token(RefreshTokenRequest {
                refresh_token: "bogus".into(),
            })
            .await,
        Code::Unauthenticated,
    );

    invalid(
        "reset request: bad email",
        auth.clone()
            .request_password_reset(RequestPasswordResetRequest {
                email: "nope".into(),
            })
            .await,
        "email",
    );
    invalid(
        "reset: no code",
        auth.clone()
            .reset_password(ResetPasswordRequest {
                reset_code: String::new(),
                new_password: "long-enough-1".into(),
            })
            .await,
        "reset_code",
    );
    invalid(
        "reset: unknown code",
        auth.clone()
            .reset_password(ResetPasswordRequest {
                reset_code: "made-up".into(),
                new_password: "long-enough-1".into(),
            })
            .await,
        "reset_code",
    );
    invalid(
        "confirm email: no code",
        auth.clone()
            .confirm_email_change(ConfirmEmailChangeRequest::default())
            .await,
        "confirmation_code",
    );
    invalid(
        "confirm email: unknown code",
        auth.clone()
            .confirm_email_change(ConfirmEmailChangeRequest {
                confirmation_code: "made-up".into(),
            })
            .await,
        "confirmation_code",
    );

    let mine = alice.client.auth();
    invalid(
        "email change: bad address",
        mine.clone()
            .request_email_change(RequestEmailChangeRequest {
                new_email: "x@".into(),
                password: alice.password.clone(),
            })
            .await,
        "new_email",
    );
    invalid(
        "email change: no password",
        mine.clone()
            .request_email_change(RequestEmailChangeRequest {
                new_email: "x@y.io".into(),
                password: String::new(),
            })
            .await,
        "password",
    );
    invalid(
        "list sessions: page size",
        mine.clone()
            .list_sessions(ListSessionsRequest {
                page_size: 101,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "list sessions: token",
        mine.clone()
            .list_sessions(ListSessionsRequest {
                page_token: "%%".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    invalid(
        "revoke: no id",
        mine.clone()
            .revoke_session(RevokeSessionRequest::default())
            .await,
        "session_id",
    );
    invalid(
        "revoke: bad id",
        mine.clone()
            .revoke_session(RevokeSessionRequest {
                session_id: NOT_AN_ID.into(),
            })
            .await,
        "session_id",
    );
    assert_code(
        mine.clone()
            .revoke_session(RevokeSessionRequest {
                session_id: UNKNOWN_ID.into(),
            })
            .await,
        Code::NotFound,
    );
    invalid(
        "change password: short",
        mine.clone()
            .change_password(ChangePasswordRequest {
                current_password: alice.password.clone(),
                new_password: "short".into(),
            })
            .await,
        "new_password",
    );
    invalid(
        "change password: no current",
        mine.clone()
            .change_password(ChangePasswordRequest {
                new_password: "long-enough-1".into(),
                ..Default::default()
            })
            .await,
        "current_password",
    );
    mine.clone()
        .logout(LogoutRequest {})
        .await
        .expect("logout still works after all that");
    server.shutdown().await;
}

#[tokio::test]
async fn user_service_rejects_bad_input() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let users = alice.client.users();
    let mask = |paths: &[&str]| {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    };
    invalid(
        "update: no mask",
        users
            .clone()
            .update_current_user(UpdateCurrentUserRequest::default())
            .await,
        "update_mask",
    );
    invalid(
        "update: unknown path",
        users
            .clone()
            .update_current_user(UpdateCurrentUserRequest {
                user: None,
                update_mask: mask(&["email"]),
            })
            .await,
        "update_mask",
    );
    let bad_name = User {
        display_name: " ".into(),
        ..Default::default()
    };
    invalid(
        "update: blank name",
        users
            .clone()
            .update_current_user(UpdateCurrentUserRequest {
                user: Some(bad_name),
                update_mask: mask(&["display_name"]),
            })
            .await,
        "user.display_name",
    );
    let bad_url = User {
        avatar_url: "javascript:alert(1)".into(),
        ..Default::default()
    };
    invalid(
        "update: bad url",
        users
            .clone()
            .update_current_user(UpdateCurrentUserRequest {
                user: Some(bad_url),
                update_mask: mask(&["avatar_url"]),
            })
            .await,
        "user.avatar_url",
    );
    invalid(
        "get user: bad id",
        users
            .clone()
            .get_user(GetUserRequest {
                user_id: NOT_AN_ID.into(),
            })
            .await,
        "user_id",
    );
    assert_code(
        users
            .clone()
            .get_user(GetUserRequest {
                user_id: UNKNOWN_ID.into(),
            })
            .await,
        Code::NotFound,
    );
    invalid(
        "search: empty",
        users
            .clone()
            .search_users(SearchUsersRequest::default())
            .await,
        "query",
    );
    invalid(
        "search: page size",
        users
            .clone()
            .search_users(SearchUsersRequest {
                query: "a".into(),
                page_size: -1,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "block: self",
        users
            .clone()
            .block_user(BlockUserRequest {
                user_id: alice.id.clone(),
            })
            .await,
        "user_id",
    );
    invalid(
        "block: bad id",
        users
            .clone()
            .block_user(BlockUserRequest {
                user_id: NOT_AN_ID.into(),
            })
            .await,
        "user_id",
    );
    assert_code(
        users
            .clone()
            .block_user(BlockUserRequest {
                user_id: UNKNOWN_ID.into(),
            })
            .await,
        Code::NotFound,
    );
    invalid(
        "unblock: none",
        users
            .clone()
            .unblock_user(UnblockUserRequest::default())
            .await,
        "user_id",
    );
    invalid(
        "blocked: page size",
        users
            .clone()
            .list_blocked_users(ListBlockedUsersRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await,
        "page_size",
    );

    invalid(
        "delete account: no password",
        users
            .clone()
            .delete_current_user(DeleteCurrentUserRequest::default())
            .await,
        "password",
    );
    invalid(
        "contact: self",
        users
            .clone()
            .send_contact_request(SendContactRequestRequest {
                user_id: alice.id.clone(),
                message: String::new(),
            })
            .await,
        "user_id",
    );
    invalid(
        "contact: bad id",
        users
            .clone()
            .send_contact_request(SendContactRequestRequest {
                user_id: NOT_AN_ID.into(),
                message: String::new(),
            })
            .await,
        "user_id",
    );
    invalid(
        "contact: long note",
        users
            .clone()
            .send_contact_request(SendContactRequestRequest {
                user_id: UNKNOWN_ID.into(),
                message: "n".repeat(257),
            })
            .await,
        "message",
    );
    assert_code(
        users
            .clone()
            .send_contact_request(SendContactRequestRequest {
                user_id: UNKNOWN_ID.into(),
                message: String::new(),
            })
            .await,
        Code::NotFound,
    );
    invalid(
        "respond: bad id",
        users
            .clone()
            .respond_contact_request(RespondContactRequestRequest {
                user_id: NOT_AN_ID.into(),
                accept: true,
            })
            .await,
        "user_id",
    );
    assert_code(
        users
            .clone()
            .respond_contact_request(RespondContactRequestRequest {
                user_id: UNKNOWN_ID.into(),
                accept: true,
            })
            .await,
        Code::NotFound,
    );
    invalid(
        "contact requests: page size",
        users
            .clone()
            .list_contact_requests(ListContactRequestsRequest {
                page_size: 101,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "contacts: token",
        users
            .clone()
            .list_contacts(ListContactsRequest {
                page_token: "??".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    invalid(
        "remove contact: none",
        users
            .clone()
            .remove_contact(RemoveContactRequest::default())
            .await,
        "user_id",
    );

    // The profile is unchanged by all of the above.
    let me = users
        .clone()
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(
        (me.display_name.as_str(), me.avatar_url.as_str()),
        ("alice display", "")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn conversation_service_rejects_bad_input() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let group = alice.group_with("g", &[&bob]).await;
    let direct = alice.direct_with(&bob).await;
    let convs = alice.client.conversations();
    let create =
        |kind: ConversationType, members: Vec<String>, title: &str| CreateConversationRequest {
            r#type: kind.into(),
            member_user_ids: members,
            title: title.into(),
            ..Default::default()
        };
    invalid(
        "create: no type",
        convs
            .clone()
            .create_conversation(create(
                ConversationType::Unspecified,
                vec![bob.id.clone()],
                "",
            ))
            .await,
        "type",
    );
    invalid(
        "create: direct without peer",
        convs
            .clone()
            .create_conversation(create(ConversationType::Direct, vec![], ""))
            .await,
        "member_user_ids",
    );
    invalid(
        "create: direct with title",
        convs
            .clone()
            .create_conversation(create(ConversationType::Direct, vec![bob.id.clone()], "t"))
            .await,
        "title",
    );
    invalid(
        "create: group without title",
        convs
            .clone()
            .create_conversation(create(ConversationType::Group, vec![], ""))
            .await,
        "title",
    );
    invalid(
        "create: bad member id",
        convs
            .clone()
            .create_conversation(create(ConversationType::Group, vec![NOT_AN_ID.into()], "t"))
            .await,
        "member_user_ids[0]",
    );
    invalid(
        "create: unknown member",
        convs
            .clone()
            .create_conversation(create(
                ConversationType::Group,
                vec![UNKNOWN_ID.into()],
                "t",
            ))
            .await,
        "member_user_ids[0]",
    );
    let long_request = CreateConversationRequest {
        request_id: "r".repeat(65),
        ..create(ConversationType::Group, vec![], "t")
    };
    invalid(
        "create: long request id",
        convs.clone().create_conversation(long_request).await,
        "request_id",
    );

    invalid(
        "get: bad id",
        convs
            .clone()
            .get_conversation(GetConversationRequest {
                conversation_id: NOT_AN_ID.into(),
            })
            .await,
        "conversation_id",
    );
    assert_code(
        convs
            .clone()
            .get_conversation(GetConversationRequest {
                conversation_id: UNKNOWN_ID.into(),
            })
            .await,
        Code::NotFound,
    );
    invalid(
        "list: page size",
        convs
            .clone()
            .list_conversations(ListConversationsRequest {
                page_size: 101,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "list: token",
        convs
            .clone()
            .list_conversations(ListConversationsRequest {
                page_token: "nope".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );

    let update = |title: &str, paths: &[&str]| UpdateConversationRequest {
        conversation: Some(Conversation {
            conversation_id: group.conversation_id.clone(),
            title: title.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    invalid(
        "update: no mask",
        convs.clone().update_conversation(update("x", &[])).await,
        "update_mask",
    );
    invalid(
        "update: bad path",
        convs
            .clone()
            .update_conversation(update("x", &["settings"]))
            .await,
        "update_mask",
    );
    invalid(
        "update: long title",
        convs
            .clone()
            .update_conversation(update(&"t".repeat(129), &["title"]))
            .await,
        "conversation.title",
    );
    let direct_update = UpdateConversationRequest {
        conversation: Some(Conversation {
            conversation_id: direct.conversation_id.clone(),
            title: "x".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["title".into()],
        }),
    };
    invalid(
        "update: direct",
        convs.clone().update_conversation(direct_update).await,
        "conversation_id",
    );

    let gid = group.conversation_id.clone();
    invalid(
        "add: none",
        convs
            .clone()
            .add_members(AddMembersRequest {
                conversation_id: gid.clone(),
                user_ids: vec![],
            })
            .await,
        "user_ids",
    );
    invalid(
        "add: bad id",
        convs
            .clone()
            .add_members(AddMembersRequest {
                conversation_id: gid.clone(),
                user_ids: vec![NOT_AN_ID.into()],
            })
            .await,
        "user_ids[0]",
    );
    invalid(
        "add: unknown",
        convs
            .clone()
            .add_members(AddMembersRequest {
                conversation_id: gid.clone(),
                user_ids: vec![UNKNOWN_ID.into()],
            })
            .await,
        "user_ids[0]",
    );
    invalid(
        "add: too many",
        convs
            .clone()
            .add_members(AddMembersRequest {
                conversation_id: gid.clone(),
                user_ids: vec![UNKNOWN_ID.into(); 257],
            })
            .await,
        "user_ids",
    );
    invalid(
        "remove: self",
        convs
            .clone()
            .remove_member(RemoveMemberRequest {
                conversation_id: gid.clone(),
                user_id: alice.id.clone(),
            })
            .await,
        "user_id",
    );
    invalid(
        "remove: bad id",
        convs
            .clone()
            .remove_member(RemoveMemberRequest {
                conversation_id: gid.clone(),
                user_id: NOT_AN_ID.into(),
            })
            .await,
        "user_id",
    );
    assert_code(
        convs
            .clone()
            .remove_member(RemoveMemberRequest {
                conversation_id: gid.clone(),
                user_id: UNKNOWN_ID.into(),
            })
            .await,
        Code::NotFound,
    );
    invalid(
        "leave: bad id",
        convs
            .clone()
            .leave_conversation(LeaveConversationRequest {
                conversation_id: NOT_AN_ID.into(),
            })
            .await,
        "conversation_id",
    );
    invalid(
        "leave: direct",
        convs
            .clone()
            .leave_conversation(LeaveConversationRequest {
                conversation_id: direct.conversation_id.clone(),
            })
            .await,
        "conversation_id",
    );
    invalid(
        "role: none",
        convs
            .clone()
            .update_member_role(UpdateMemberRoleRequest {
                conversation_id: gid.clone(),
                user_id: bob.id.clone(),
                role: 0,
            })
            .await,
        "role",
    );
    invalid(
        "role: unknown value",
        convs
            .clone()
            .update_member_role(UpdateMemberRoleRequest {
                conversation_id: gid.clone(),
                user_id: bob.id.clone(),
                role: 42,
            })
            .await,
        "role",
    );
    invalid(
        "members: page size",
        convs
            .clone()
            .list_members(ListMembersRequest {
                conversation_id: gid.clone(),
                page_size: 501,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "members: bad id",
        convs
            .clone()
            .list_members(ListMembersRequest {
                conversation_id: NOT_AN_ID.into(),
                ..Default::default()
            })
            .await,
        "conversation_id",
    );
    invalid(
        "read: zero",
        convs
            .clone()
            .mark_conversation_read(MarkConversationReadRequest {
                conversation_id: gid.clone(),
                seq: 0,
            })
            .await,
        "seq",
    );

    // Nothing changed.
    let after = convs
        .clone()
        .get_conversation(GetConversationRequest {
            conversation_id: gid,
        })
        .await
        .expect("get")
        .into_inner()
        .conversation
        .expect("c");
    assert_eq!(
        (after.title.as_str(), after.member_count, after.last_seq),
        ("g", 2, 1)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn message_service_rejects_bad_input() {
    let server = TestServer::start_with(|c| c.limits.max_text_bytes = 100).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let chat = alice.direct_with(&bob).await;
    let id = chat.conversation_id.clone();
    let messages = alice.client.messages();
    let send = |content: Option<MessageContent>, request_id: &str| SendMessageRequest {
        conversation_id: id.clone(),
        content,
        request_id: request_id.into(),
        ..Default::default()
    };
    invalid(
        "send: no content",
        messages.clone().send_message(send(None, "r")).await,
        "content",
    );
    invalid(
        "send: empty oneof",
        messages
            .clone()
            .send_message(send(Some(MessageContent { body: None }), "r"))
            .await,
        "content",
    );
    invalid(
        "send: blank text",
        messages
            .clone()
            .send_message(send(Some(text_content("  \n")), "r"))
            .await,
        "content.text",
    );
    invalid(
        "send: oversized",
        messages
            .clone()
            .send_message(send(Some(text_content(&"x".repeat(101))), "r"))
            .await,
        "content.text",
    );
    invalid(
        "send: no request id",
        messages
            .clone()
            .send_message(send(Some(text_content("hi")), ""))
            .await,
        "request_id",
    );
    let empty_payload = Some(MessageContent {
        body: Some(message_content::Body::EncryptedPayload(vec![])),
    });
    invalid(
        "send: empty payload",
        messages
            .clone()
            .send_message(send(empty_payload, "r"))
            .await,
        "content.encrypted_payload",
    );
    let mut with_meta = send(Some(text_content("hi")), "r");
    with_meta.metadata = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
    invalid(
        "send: too much metadata",
        messages.clone().send_message(with_meta).await,
        "metadata",
    );
    let mut reply = send(Some(text_content("hi")), "r");
    reply.reply_to_message_id = UNKNOWN_ID.into();
    invalid(
        "send: reply to unknown",
        messages.clone().send_message(reply).await,
        "reply_to_message_id",
    );
    let mut no_conv = send(Some(text_content("hi")), "r");
    no_conv.conversation_id = NOT_AN_ID.into();
    invalid(
        "send: bad conversation",
        messages.clone().send_message(no_conv).await,
        "conversation_id",
    );

    let sent = alice.send(&id, "the only message").await;
    invalid(
        "get: bad id",
        messages
            .clone()
            .get_message(GetMessageRequest {
                conversation_id: id.clone(),
                message_id: NOT_AN_ID.into(),
            })
            .await,
        "message_id",
    );
    assert_code(
        messages
            .clone()
            .get_message(GetMessageRequest {
                conversation_id: id.clone(),
                message_id: UNKNOWN_ID.into(),
            })
            .await,
        Code::NotFound,
    );
    invalid(
        "list: page size",
        messages
            .clone()
            .list_messages(ListMessagesRequest {
                conversation_id: id.clone(),
                page_size: 201,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "list: token",
        messages
            .clone()
            .list_messages(ListMessagesRequest {
                conversation_id: id.clone(),
                page_token: "zzz".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    invalid(
        "edit: no content",
        messages
            .clone()
            .edit_message(EditMessageRequest {
                conversation_id: id.clone(),
                message_id: sent.message_id.clone(),
                content: None,
            })
            .await,
        "content",
    );
    invalid(
        "edit: oversized",
        messages
            .clone()
            .edit_message(EditMessageRequest {
                conversation_id: id.clone(),
                message_id: sent.message_id.clone(),
                content: Some(text_content(&"y".repeat(101))),
            })
            .await,
        "content.text",
    );
    invalid(
        "delete: bad id",
        messages
            .clone()
            .delete_message(DeleteMessageRequest {
                conversation_id: id.clone(),
                message_id: NOT_AN_ID.into(),
            })
            .await,
        "message_id",
    );

    // Invalid UTF-8 in a string field, sent as raw bytes on the wire. The decoder names
    // the oneof that holds `text`.
    invalid(
        "send: invalid utf-8",
        raw_send_with_invalid_utf8(&server, &alice, &id).await,
        "content.body",
    );

    let listed = messages
        .clone()
        .list_messages(ListMessagesRequest {
            conversation_id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .messages;
    assert_eq!(listed.len(), 1, "no bad request stored anything");
    assert_eq!(text_of(&listed[0]), Some("the only message"));
    server.shutdown().await;
}

#[tokio::test]
async fn event_service_rejects_bad_input() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let result = alice
        .client
        .events()
        .subscribe(SubscribeRequest {
            cursor: "1:-1".into(),
        })
        .await;
    invalid("subscribe: negative cursor", result.map(|_| ()), "cursor");
    server.shutdown().await;
}

#[tokio::test]
async fn presence_service_rejects_bad_input() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let typing = |conversation_id: &str| {
        let (client, conversation_id) = (alice.client.clone(), conversation_id.to_owned());
        async move {
            client
                .presence()
                .set_typing(SetTypingRequest {
                    conversation_id,
                    typing: true,
                })
                .await
        }
    };
    invalid(
        "set typing: no conversation",
        typing("").await,
        "conversation_id",
    );
    invalid(
        "set typing: malformed conversation",
        typing("not-an-id").await,
        "conversation_id",
    );
    let presence = |user_ids: Vec<String>| {
        let client = alice.client.clone();
        async move {
            client
                .presence()
                .get_presence(GetPresenceRequest { user_ids })
                .await
        }
    };
    invalid(
        "get presence: no ids",
        presence(Vec::new()).await,
        "user_ids",
    );
    let many = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    invalid("get presence: 101 ids", presence(many).await, "user_ids");
    invalid(
        "get presence: a malformed id",
        presence(vec![alice.id.clone(), "nope".into()]).await,
        "user_ids[1]",
    );
    server.shutdown().await;
}

/// `SendMessageRequest` with `content.text` typed as bytes, to put non-UTF-8 on the wire.
#[derive(Clone, PartialEq, prost::Message)]
struct RawSendMessageRequest {
    #[prost(string, tag = "1")]
    conversation_id: String,
    #[prost(message, optional, tag = "2")]
    content: Option<RawContent>,
    #[prost(string, tag = "5")]
    request_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawContent {
    #[prost(bytes = "vec", tag = "1")]
    text: Vec<u8>,
}

async fn raw_send_with_invalid_utf8(
    server: &TestServer,
    user: &TestUser,
    conversation_id: &str,
) -> Result<SendMessageResponse, Status> {
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(RawSendMessageRequest {
        conversation_id: conversation_id.into(),
        content: Some(RawContent {
            text: vec![0x66, 0x6f, 0xff, 0xfe],
        }),
        request_id: "raw".into(),
    });
    let token = format!("Bearer {}", user.client.access_token().expect("token"));
    request
        .metadata_mut()
        .insert("authorization", token.parse().expect("header"));
    let path = http::uri::PathAndQuery::from_static(
        "/secureconnect.message.v1.MessageService/SendMessage",
    );
    let codec = tonic_prost::ProstCodec::<RawSendMessageRequest, SendMessageResponse>::default();
    grpc.unary(request, path, codec)
        .await
        .map(|r| r.into_inner())
}
