//! `UserService`, as alice.

use secureconnect_sdk::proto::user::v1::*;
use tonic::Code;

use super::{NOT_AN_ID, UNKNOWN_ID, invalid, mask};
use crate::common::*;

/// Alice's profile is as she registered it.
async fn assert_profile_unchanged(alice: &TestUser) {
    let me = alice
        .client
        .users()
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
}

#[tokio::test]
async fn update_current_user() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let users = alice.client.users();
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
    assert_profile_unchanged(&alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn delete_current_user() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    invalid(
        "delete account: no password",
        alice
            .client
            .users()
            .delete_current_user(DeleteCurrentUserRequest::default())
            .await,
        "password",
    );
    assert_profile_unchanged(&alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn get_user() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let users = alice.client.users();
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
    server.shutdown().await;
}

#[tokio::test]
async fn search_users() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let users = alice.client.users();
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
    server.shutdown().await;
}

#[tokio::test]
async fn block_user() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let users = alice.client.users();
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
    server.shutdown().await;
}

#[tokio::test]
async fn unblock_user() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    invalid(
        "unblock: none",
        alice
            .client
            .users()
            .unblock_user(UnblockUserRequest::default())
            .await,
        "user_id",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn list_blocked_users() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    invalid(
        "blocked: page size",
        alice
            .client
            .users()
            .list_blocked_users(ListBlockedUsersRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn send_contact_request() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let users = alice.client.users();
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
    server.shutdown().await;
}

#[tokio::test]
async fn respond_contact_request() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let users = alice.client.users();
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
    server.shutdown().await;
}

#[tokio::test]
async fn list_contact_requests() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    invalid(
        "contact requests: page size",
        alice
            .client
            .users()
            .list_contact_requests(ListContactRequestsRequest {
                page_size: 101,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn list_contacts() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    invalid(
        "contacts: token",
        alice
            .client
            .users()
            .list_contacts(ListContactsRequest {
                page_token: "??".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn remove_contact() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    invalid(
        "remove contact: none",
        alice
            .client
            .users()
            .remove_contact(RemoveContactRequest::default())
            .await,
        "user_id",
    );
    server.shutdown().await;
}
