//! The Rust SDK's session against a real server: sign-in stored through the app's token
//! store, access tokens refreshed before they expire and once when refused, rotations
//! persisted, a session ended elsewhere signing the client out, store failures reported,
//! and server errors decoded into `secureconnect_sdk::Error`.

use std::sync::{Arc, Mutex};

use secureconnect_sdk::{
    Client, Error, Session, TokenStore, TokenStoreError,
    proto::{
        auth::v1::{LoginRequest, RegisterRequest, RevokeSessionRequest},
        message::v1::SendMessageRequest,
        user::v1::GetCurrentUserRequest,
    },
};
use tonic::Code;

use crate::common::*;

/// A token store the test can look into, and make fail.
#[derive(Clone, Default)]
struct Recorder {
    session: Arc<Mutex<Option<Session>>>,
    saves: Arc<Mutex<usize>>,
    broken: Arc<Mutex<bool>>,
}

impl Recorder {
    fn stored(&self) -> Option<Session> {
        self.session.lock().expect("lock").clone()
    }

    fn saves(&self) -> usize {
        *self.saves.lock().expect("lock")
    }

    fn break_it(&self) {
        *self.broken.lock().expect("lock") = true;
    }

    fn check(&self) -> Result<(), TokenStoreError> {
        if *self.broken.lock().expect("lock") {
            return Err("disk full".into());
        }
        Ok(())
    }
}

impl TokenStore for Recorder {
    fn load(&self) -> Result<Option<Session>, TokenStoreError> {
        self.check()?;
        Ok(self.stored())
    }

    fn save(&self, session: &Session) -> Result<(), TokenStoreError> {
        self.check()?;
        *self.saves.lock().expect("lock") += 1;
        *self.session.lock().expect("lock") = Some(session.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), TokenStoreError> {
        self.check()?;
        *self.session.lock().expect("lock") = None;
        Ok(())
    }
}

fn ann() -> RegisterRequest {
    RegisterRequest {
        email: "ann@example.com".into(),
        password: "correct horse".into(),
        username: "ann".into(),
        ..Default::default()
    }
}

async fn client_with(server: &TestServer, store: &Recorder) -> Client {
    Client::builder(server.endpoint.clone())
        .user_agent("sdk-test/1.0")
        .token_store(store.clone())
        .connect()
        .await
        .expect("connect")
}

async fn whoami(client: &Client) -> Result<String, Error> {
    let me = client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await?;
    Ok(me.into_inner().user.map(|u| u.username).unwrap_or_default())
}

#[tokio::test]
async fn a_session_survives_a_restart_of_the_app_through_its_token_store() {
    let server = TestServer::start().await;
    let store = Recorder::default();
    let first = client_with(&server, &store).await;
    let session = first.register(ann()).await.expect("register");
    assert_eq!(store.stored(), Some(session.clone()), "sign-in is stored");
    assert!(
        !format!("{session:?}").contains(&session.access_token),
        "tokens never printed"
    );

    // The app restarts: a new client loads the session and is signed in.
    let second = client_with(&server, &store).await;
    assert_eq!(whoami(&second).await.expect("signed in"), "ann");

    second.logout().await.expect("logout");
    assert_eq!(store.stored(), None, "sign-out clears the store");
    assert!(matches!(second.logout().await, Err(Error::NotSignedIn)));
    let refused = whoami(&first)
        .await
        .expect_err("the session is over on the server");
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn access_tokens_are_refreshed_before_they_expire_and_rotations_are_stored() {
    // Tokens that live 5 s are always within the SDK's refresh margin: every call
    // refreshes first, so each call rotates the refresh token once.
    let server = TestServer::start_with(|c| c.auth.access_token_ttl_secs = 5).await;
    let store = Recorder::default();
    let client = client_with(&server, &store).await;
    let first = client.register(ann()).await.expect("register");
    for _ in 0..3 {
        assert_eq!(whoami(&client).await.expect("call"), "ann");
    }
    let now = store.stored().expect("stored");
    assert_ne!(now.refresh_token, first.refresh_token, "rotated");
    assert_eq!(now.session_id, first.session_id, "same session");
    assert_eq!(store.saves(), 4, "the sign-in and each of three rotations");
    // Concurrent calls share one refresh (two would spend one refresh token twice, which
    // the server treats as theft and answers by ending the session).
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { whoami(&client).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("join").expect("call"), "ann");
    }
    assert!(client.session().is_some(), "still signed in");
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once_and_the_call_sent_again() {
    let server = TestServer::start().await;
    let store = Recorder::default();
    let signing_in = client_with(&server, &store).await;
    let session = signing_in.register(ann()).await.expect("register");
    // What the app stored has an access token the server does not accept (revoked
    // early, signed by an old key…) but a good refresh token.
    store
        .save(&Session {
            access_token: format!("{}x", session.access_token),
            ..session.clone()
        })
        .expect("save");
    let client = client_with(&server, &store).await;
    assert_eq!(
        whoami(&client).await.expect("retried with a fresh token"),
        "ann"
    );
    let renewed = store.stored().expect("stored");
    assert_ne!(
        renewed.refresh_token, session.refresh_token,
        "rotated and stored"
    );
    // A server-streaming call goes through the same transport.
    let stream = client
        .events()
        .subscribe(secureconnect_sdk::proto::event::v1::SubscribeRequest::default())
        .await;
    assert!(stream.is_ok(), "{stream:?}");
}

#[tokio::test]
async fn a_session_ended_elsewhere_signs_the_client_out() {
    let server = TestServer::start_with(|c| c.auth.access_token_ttl_secs = 5).await;
    let store = Recorder::default();
    let phone = client_with(&server, &store).await;
    let session = phone.register(ann()).await.expect("register");
    let laptop = server.client().await;
    laptop
        .login_with(LoginRequest {
            email: "ann@example.com".into(),
            password: "correct horse".into(),
            device: None,
        })
        .await
        .expect("login");
    laptop
        .auth()
        .revoke_session(RevokeSessionRequest {
            session_id: session.session_id.clone(),
        })
        .await
        .expect("revoke the phone's session");
    let refused = whoami(&phone).await.expect_err("signed out");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(phone.session().is_none());
    assert_eq!(store.stored(), None, "the store forgets the ended session");
    assert_eq!(whoami(&laptop).await.expect("the laptop is fine"), "ann");
}

#[tokio::test]
async fn token_store_failures_are_reported_not_swallowed() {
    let server = TestServer::start_with(|c| c.auth.access_token_ttl_secs = 5).await;
    let store = Recorder::default();
    let client = client_with(&server, &store).await;
    client.register(ann()).await.expect("register");
    store.break_it();
    // The refresh before this call rotates the refresh token, and the store cannot keep
    // the new one: the app must hear of it (at its next start it would be signed out).
    let failed = whoami(&client).await.expect_err("store failure reported");
    assert!(matches!(failed, Error::TokenStore(_)), "{failed:?}");
    assert!(failed.to_string().contains("disk full"), "{failed}");
    let broken = Client::builder(server.endpoint.clone())
        .token_store(store.clone())
        .connect()
        .await;
    assert!(matches!(broken, Err(Error::TokenStore(_))));
}

#[tokio::test]
async fn server_errors_arrive_decoded() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client.register(ann()).await.expect("register");
    let bad = client
        .messages()
        .send_message(SendMessageRequest {
            conversation_id: "nope".into(),
            ..Default::default()
        })
        .await
        .map_err(Error::from)
        .expect_err("bad input");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields: Vec<&str> = bad
        .field_violations()
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert!(fields.contains(&"conversation_id"), "{fields:?}");
    let taken = client.register(ann()).await.expect_err("email taken");
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(
        taken.reason(),
        Some(secureconnect_sdk::proto::types::v1::ErrorReason::EmailTaken)
    );
}
