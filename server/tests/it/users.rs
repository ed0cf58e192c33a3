//! Contacts and account deletion.

use crate::common::*;
use secureconnect_sdk::proto::{
    auth::v1::{LoginRequest, RegisterRequest},
    conversation::v1::{GetConversationRequest, MemberRole},
    event::v1::{
        conversation_event::Change, subscribe_response::Event, user_event::Change as UserChange,
    },
    user::v1::*,
};
use tonic::Code;

/// The next user event on the stream, skipping everything else.
async fn next_user_event(
    stream: &mut tonic::Streaming<secureconnect_sdk::proto::event::v1::SubscribeResponse>,
) -> UserChange {
    loop {
        if let Some(Event::UserEvent(event)) = next(stream).await.event {
            return event.change.expect("change");
        }
    }
}

fn request(user_id: &str) -> SendContactRequestRequest {
    SendContactRequestRequest {
        user_id: user_id.into(),
        message: "hi, it's me".into(),
    }
}

#[tokio::test]
async fn a_contact_request_is_announced_accepted_and_removable() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let mut alice_stream = alice.subscribe("").await;
    let mut bob_stream = bob.subscribe("").await;
    until_caught_up(&mut alice_stream).await;
    until_caught_up(&mut bob_stream).await;

    let sent = alice
        .client
        .users()
        .send_contact_request(request(&bob.id))
        .await
        .expect("request")
        .into_inner();
    assert!(sent.contact.is_none());
    let UserChange::ContactRequestReceived(received) = next_user_event(&mut bob_stream).await
    else {
        panic!("expected a contact request")
    };
    let from = received.from_user.expect("from");
    assert_eq!(
        (from.user_id.as_str(), received.message.as_str()),
        (alice.id.as_str(), "hi, it's me")
    );
    assert!(from.email.is_empty(), "emails never travel to others");
    // Asking twice is harmless.
    alice
        .client
        .users()
        .send_contact_request(request(&bob.id))
        .await
        .expect("repeat");

    let incoming = bob
        .client
        .users()
        .list_contact_requests(ListContactRequestsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .requests;
    assert_eq!(incoming.len(), 1);
    let outgoing = alice
        .client
        .users()
        .list_contact_requests(ListContactRequestsRequest {
            direction: ContactRequestDirection::Outgoing.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .requests;
    assert_eq!(outgoing.len(), 1);

    let accepted = bob
        .client
        .users()
        .respond_contact_request(RespondContactRequestRequest {
            user_id: alice.id.clone(),
            accept: true,
        })
        .await
        .expect("accept")
        .into_inner()
        .contact
        .expect("contact");
    assert_eq!(accepted.user.expect("user").user_id, alice.id);
    let UserChange::ContactAdded(for_alice) = next_user_event(&mut alice_stream).await else {
        panic!("expected contact_added")
    };
    assert_eq!(
        for_alice.user.expect("user").user_id,
        bob.id,
        "alice sees bob"
    );
    let UserChange::ContactAdded(for_bob) = next_user_event(&mut bob_stream).await else {
        panic!("expected contact_added")
    };
    assert_eq!(
        for_bob.user.expect("user").user_id,
        alice.id,
        "bob sees alice"
    );

    for (user, other) in [(&alice, &bob), (&bob, &alice)] {
        let contacts = user
            .client
            .users()
            .list_contacts(ListContactsRequest::default())
            .await
            .expect("list")
            .into_inner()
            .contacts;
        assert_eq!(contacts.len(), 1);
        assert_eq!(
            contacts[0].user.as_ref().map(|u| u.user_id.clone()),
            Some(other.id.clone())
        );
    }
    let again = alice
        .client
        .users()
        .send_contact_request(request(&bob.id))
        .await;
    assert_eq!(
        reason(&assert_code(again, Code::AlreadyExists)),
        "ALREADY_CONTACTS"
    );

    bob.client
        .users()
        .remove_contact(RemoveContactRequest {
            user_id: alice.id.clone(),
        })
        .await
        .expect("remove");
    let UserChange::ContactRemoved(removed) = next_user_event(&mut alice_stream).await else {
        panic!("expected contact_removed")
    };
    assert_eq!(removed.user_id, bob.id);
    let contacts = alice
        .client
        .users()
        .list_contacts(ListContactsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .contacts;
    assert!(contacts.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn mutual_requests_connect_at_once_and_declines_leave_nothing() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let carol = server.register("carol").await;
    alice
        .client
        .users()
        .send_contact_request(request(&bob.id))
        .await
        .expect("a→b");
    let mutual = bob
        .client
        .users()
        .send_contact_request(request(&alice.id))
        .await
        .expect("b→a")
        .into_inner();
    assert_eq!(
        mutual.contact.and_then(|c| c.user).map(|u| u.user_id),
        Some(alice.id.clone())
    );

    carol
        .client
        .users()
        .send_contact_request(request(&alice.id))
        .await
        .expect("c→a");
    let declined = alice
        .client
        .users()
        .respond_contact_request(RespondContactRequestRequest {
            user_id: carol.id.clone(),
            accept: false,
        })
        .await
        .expect("decline")
        .into_inner();
    assert!(declined.contact.is_none());
    let incoming = alice
        .client
        .users()
        .list_contact_requests(ListContactRequestsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .requests;
    assert!(incoming.is_empty());
    let answer_again = alice
        .client
        .users()
        .respond_contact_request(RespondContactRequestRequest {
            user_id: carol.id.clone(),
            accept: true,
        })
        .await;
    assert_code(answer_again, Code::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn blocking_ends_a_contact_and_stops_requests() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    alice
        .client
        .users()
        .send_contact_request(request(&bob.id))
        .await
        .expect("a→b");
    bob.client
        .users()
        .send_contact_request(request(&alice.id))
        .await
        .expect("b→a");
    bob.client
        .users()
        .block_user(BlockUserRequest {
            user_id: alice.id.clone(),
        })
        .await
        .expect("block");
    let contacts = alice
        .client
        .users()
        .list_contacts(ListContactsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .contacts;
    assert!(contacts.is_empty());
    let ask = alice
        .client
        .users()
        .send_contact_request(request(&bob.id))
        .await;
    assert_eq!(reason(&assert_code(ask, Code::PermissionDenied)), "BLOCKED");
    server.shutdown().await;
}

#[tokio::test]
async fn deleting_an_account_signs_out_leaves_groups_and_frees_the_email() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    alice.send(&group.conversation_id, "I was here").await;
    let mut bob_stream = bob.subscribe("").await;
    until_caught_up(&mut bob_stream).await;

    let wrong = alice
        .client
        .users()
        .delete_current_user(DeleteCurrentUserRequest {
            password: "not-it-at-all".into(),
        })
        .await;
    assert_code(wrong, Code::Unauthenticated);
    alice
        .client
        .users()
        .delete_current_user(DeleteCurrentUserRequest {
            password: alice.password.clone(),
        })
        .await
        .expect("delete");

    // Bob inherits the group, then sees alice leave.
    let (_, promoted) = next_conversation_event(&mut bob_stream).await;
    let Some(Change::MemberRoleUpdated(update)) = promoted.change else {
        panic!("{promoted:?}")
    };
    let member = update.member.expect("member");
    assert_eq!(
        (member.user_id.as_str(), member.role),
        (bob.id.as_str(), i32::from(MemberRole::Owner))
    );
    let (_, left) = next_conversation_event(&mut bob_stream).await;
    assert!(
        matches!(left.change, Some(Change::MemberRemoved(ref r)) if r.user_id == alice.id && r.left)
    );

    assert_code(
        alice
            .client
            .users()
            .get_current_user(GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    assert_code(
        bob.client
            .users()
            .get_user(GetUserRequest {
                user_id: alice.id.clone(),
            })
            .await,
        Code::NotFound,
    );
    let login = server
        .client()
        .await
        .auth()
        .login(LoginRequest {
            email: alice.email.clone(),
            password: alice.password.clone(),
            device: None,
        })
        .await;
    assert_code(login, Code::Unauthenticated);
    let group_now = bob
        .client
        .conversations()
        .get_conversation(GetConversationRequest {
            conversation_id: group.conversation_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .conversation
        .expect("c");
    assert_eq!(
        (group_now.member_count, group_now.role),
        (1, i32::from(MemberRole::Owner))
    );
    // What she wrote stays, attributed to her old id.
    let history = bob.list_messages(&group.conversation_id).await;
    let authors: Vec<&str> = history.iter().map(|m| m.sender_user_id.as_str()).collect();
    assert_eq!(authors, [alice.id.as_str()]);
    // The email and username are free again.
    server
        .client()
        .await
        .auth()
        .register(RegisterRequest {
            email: alice.email.clone(),
            password: "a-new-beginning".into(),
            username: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("re-register");
    server.shutdown().await;
}
