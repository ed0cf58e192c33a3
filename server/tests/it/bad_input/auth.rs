//! `AuthService`: the signed-out RPCs on a bare client, the rest as alice.

use secureconnect_sdk::proto::auth::v1::*;
use tonic::Code;

use super::{NOT_AN_ID, UNKNOWN_ID, invalid};
use crate::common::*;

fn reg(email: &str, password: &str, username: &str) -> RegisterRequest {
    RegisterRequest {
        email: email.into(),
        password: password.into(),
        username: username.into(),
        ..Default::default()
    }
}

/// Alice's session outlived the bad requests: it can still sign out.
async fn assert_still_signed_in(alice: &TestUser) {
    alice
        .client
        .auth()
        .logout(LogoutRequest {})
        .await
        .expect("logout still works after all that");
}

#[tokio::test]
async fn register() {
    let server = TestServer::start().await;
    let auth = server.client().await.auth();
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
    server.shutdown().await;
}

#[tokio::test]
async fn login() {
    let server = TestServer::start().await;
    let auth = server.client().await.auth();
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
    server.shutdown().await;
}

#[tokio::test]
async fn refresh_token() {
    let server = TestServer::start().await;
    let auth = server.client().await.auth();
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
    server.shutdown().await;
}

#[tokio::test]
async fn request_password_reset() {
    let server = TestServer::start().await;
    let auth = server.client().await.auth();
    invalid(
        "reset request: bad email",
        auth.clone()
            .request_password_reset(RequestPasswordResetRequest {
                email: "nope".into(),
            })
            .await,
        "email",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn reset_password() {
    let server = TestServer::start().await;
    let auth = server.client().await.auth();
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
    server.shutdown().await;
}

#[tokio::test]
async fn confirm_email_change() {
    let server = TestServer::start().await;
    let auth = server.client().await.auth();
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
    server.shutdown().await;
}

#[tokio::test]
async fn request_email_change() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
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
    server.shutdown().await;
}

#[tokio::test]
async fn list_sessions() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mine = alice.client.auth();
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
    server.shutdown().await;
}

#[tokio::test]
async fn revoke_session() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mine = alice.client.auth();
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
    assert_still_signed_in(&alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn change_password() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mine = alice.client.auth();
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
    assert_still_signed_in(&alice).await;
    server.shutdown().await;
}
