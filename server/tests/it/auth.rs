//! Accounts and sessions: sign-up, sign-in, refresh rotation with reuse detection,
//! sign-out, session revocation, password change, throttling.

use crate::common::*;
use secureconnect_sdk::proto::{
    auth::v1::{
        ChangePasswordRequest, ListSessionsRequest, LoginRequest, LogoutRequest,
        RefreshTokenRequest, RegisterRequest, RevokeSessionRequest,
    },
    user::v1::{GetCurrentUserRequest, GetUserRequest, SearchUsersRequest},
};
use tonic::Code;

async fn login(
    server: &TestServer,
    email: &str,
    password: &str,
) -> Result<secureconnect_sdk::proto::auth::v1::LoginResponse, tonic::Status> {
    let client = server.client().await;
    Ok(client
        .auth()
        .login(LoginRequest {
            email: email.into(),
            password: password.into(),
            device: None,
        })
        .await?
        .into_inner())
}

#[tokio::test]
async fn register_login_and_read_own_profile() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let me = alice
        .client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(me.user_id, alice.id);
    assert_eq!(me.email, "alice@example.com");

    // Email is case-insensitive at sign-in.
    let again = login(&server, "ALICE@example.com", &alice.password)
        .await
        .expect("login");
    assert_eq!(again.user_id, alice.id);

    // Others see the profile without the email.
    let bob = server.register("bob").await;
    let seen = bob
        .client
        .users()
        .get_user(GetUserRequest {
            user_id: alice.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(seen.username, "alice");
    assert!(seen.email.is_empty());
    let found = bob
        .client
        .users()
        .search_users(SearchUsersRequest {
            query: "ALI".into(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(
        found
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_indistinguishable() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let wrong = assert_code(
        login(&server, &alice.email, "not-the-password").await,
        Code::Unauthenticated,
    );
    let unknown = assert_code(
        login(&server, "nobody@example.com", "whatever-pass").await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(reason(&wrong), reason(&unknown));
    server.shutdown().await;
}

#[tokio::test]
async fn a_taken_email_or_username_is_refused() {
    let server = TestServer::start().await;
    server.register("alice").await;
    let client = server.client().await;
    let clash = |email: &str, username: &str| RegisterRequest {
        email: email.into(),
        password: "long-enough-password".into(),
        username: username.into(),
        ..Default::default()
    };
    let email = client
        .auth()
        .register(clash("Alice@Example.com", "other"))
        .await;
    assert_eq!(
        reason(&assert_code(email, Code::AlreadyExists)),
        "EMAIL_TAKEN"
    );
    let username = client
        .auth()
        .register(clash("new@example.com", "alice"))
        .await;
    assert_eq!(
        reason(&assert_code(username, Code::AlreadyExists)),
        "USERNAME_TAKEN"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_session() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let auth = alice.client.auth();
    let first_refresh = alice.tokens.refresh_token.clone();

    let rotated = auth
        .clone()
        .refresh_token(RefreshTokenRequest {
            refresh_token: first_refresh.clone(),
        })
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .expect("tokens");
    assert_ne!(rotated.refresh_token, first_refresh);
    assert_eq!(rotated.session_id, alice.tokens.session_id);
    alice
        .client
        .set_access_token(Some(rotated.access_token.clone()));
    alice
        .client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect("new access token works");

    // Someone replays the old refresh token: the session dies, for them and for us.
    let replay = auth
        .clone()
        .refresh_token(RefreshTokenRequest {
            refresh_token: first_refresh,
        })
        .await;
    assert_eq!(
        reason(&assert_code(replay, Code::Unauthenticated)),
        "REFRESH_TOKEN_REUSED"
    );
    let after = auth
        .clone()
        .refresh_token(RefreshTokenRequest {
            refresh_token: rotated.refresh_token,
        })
        .await;
    assert_code(after, Code::Unauthenticated);
    let access = alice
        .client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await;
    assert_eq!(
        reason(&assert_code(access, Code::Unauthenticated)),
        "INVALID_TOKEN"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    alice
        .client
        .auth()
        .logout(LogoutRequest {})
        .await
        .expect("logout");
    assert_code(
        alice
            .client
            .users()
            .get_current_user(GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    let refresh = alice
        .client
        .auth()
        .refresh_token(RefreshTokenRequest {
            refresh_token: alice.tokens.refresh_token.clone(),
        })
        .await;
    assert_code(refresh, Code::Unauthenticated);
    server.shutdown().await;
}

#[tokio::test]
async fn a_lost_device_can_be_revoked_from_another() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let phone = login(&server, &alice.email, &alice.password)
        .await
        .expect("login")
        .tokens
        .expect("tokens");
    let phone_client = server.client().await;
    phone_client.set_access_token(Some(phone.access_token.clone()));

    let sessions = alice
        .client
        .auth()
        .list_sessions(ListSessionsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s.current).count(), 1);
    assert!(
        sessions
            .iter()
            .any(|s| s.current && s.session_id == alice.tokens.session_id)
    );

    alice
        .client
        .auth()
        .revoke_session(RevokeSessionRequest {
            session_id: phone.session_id.clone(),
        })
        .await
        .expect("revoke");
    assert_code(
        phone_client
            .users()
            .get_current_user(GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    alice
        .client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect("this device still works");

    // Someone else's (or an unknown) session id reveals nothing.
    let bob = server.register("bob").await;
    let foreign = bob
        .client
        .auth()
        .revoke_session(RevokeSessionRequest {
            session_id: alice.tokens.session_id.clone(),
        })
        .await;
    assert_code(foreign, Code::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn changing_the_password_signs_out_other_devices() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let other = login(&server, &alice.email, &alice.password)
        .await
        .expect("login")
        .tokens
        .expect("tokens");
    let other_client = server.client().await;
    other_client.set_access_token(Some(other.access_token));

    let wrong = alice
        .client
        .auth()
        .change_password(ChangePasswordRequest {
            current_password: "nope-nope".into(),
            new_password: "brand-new-password".into(),
        })
        .await;
    assert_code(wrong, Code::Unauthenticated);
    alice
        .client
        .auth()
        .change_password(ChangePasswordRequest {
            current_password: alice.password.clone(),
            new_password: "brand-new-password".into(),
        })
        .await
        .expect("change");

    assert_code(
        other_client
            .users()
            .get_current_user(GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    alice
        .client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect("current device stays signed in");
    assert_code(
        login(&server, &alice.email, &alice.password).await,
        Code::Unauthenticated,
    );
    login(&server, &alice.email, "brand-new-password")
        .await
        .expect("new password works");
    server.shutdown().await;
}

#[tokio::test]
async fn repeated_login_attempts_are_throttled() {
    let server = TestServer::start_with(|c| c.auth.login_attempts_per_minute = 3).await;
    let alice = server.register("alice").await;
    for _ in 0..3 {
        assert_code(
            login(&server, &alice.email, "wrong-password").await,
            Code::Unauthenticated,
        );
    }
    let limited = assert_code(
        login(&server, &alice.email, &alice.password).await,
        Code::ResourceExhausted,
    );
    assert_eq!(reason(&limited), "RATE_LIMITED");
    server.shutdown().await;
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let server = TestServer::start().await;
    let anonymous = server.client().await;
    assert_code(
        anonymous
            .users()
            .get_current_user(GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    anonymous.set_access_token(Some("forged.token".into()));
    assert_code(
        anonymous
            .users()
            .get_current_user(GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    server.shutdown().await;
}
