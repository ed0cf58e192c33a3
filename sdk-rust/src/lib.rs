//! Rust SDK for SecureConnect: typed clients for every service over one HTTP/2 channel,
//! a session that stays signed in (tokens attached, refreshed before they expire and
//! once more if the server refuses one, rotated refresh tokens handed to your
//! [`TokenStore`]), and errors that say what went wrong ([`Error`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), secureconnect_sdk::Error> {
//! use secureconnect_sdk::{Client, proto::user::v1::GetCurrentUserRequest};
//!
//! let client = Client::builder("http://127.0.0.1:50051")
//!     .user_agent("my-app/1.0")
//!     .connect()
//!     .await?;
//! client.login("ann@example.com", "correct horse battery").await?;
//! let me = client.users().get_current_user(GetCurrentUserRequest {}).await?;
//! println!("signed in as {}", me.into_inner().user.map(|u| u.username).unwrap_or_default());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
// Unit tests may unwrap and panic: the house rule (workspace lints) is for request paths.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::{sync::Arc, time::SystemTime};

mod builder;
mod calls;
mod drive;
mod error;
mod events;
mod helpers;
mod polls;
mod session;
mod transport;

pub use builder::ClientBuilder;
pub use drive::UPLOAD_CHUNK_BYTES;
pub use error::{ERROR_DOMAIN, Error, FieldViolation, RpcError, TokenStoreError, error_reason};
pub use events::StreamEvent;
pub use polls::PollView;
use proto::{
    auth::v1::{
        LoginRequest, LogoutRequest, RegisterRequest, auth_service_client::AuthServiceClient,
    },
    call::v1::call_service_client::CallServiceClient,
    conversation::v1::conversation_service_client::ConversationServiceClient,
    drive::v1::drive_service_client::DriveServiceClient,
    event::v1::event_service_client::EventServiceClient,
    message::v1::message_service_client::MessageServiceClient,
    poll::v1::poll_service_client::PollServiceClient,
    presence::v1::presence_service_client::PresenceServiceClient,
    user::v1::user_service_client::UserServiceClient,
};
/// The generated messages and clients of every service.
pub use secureconnect_proto as proto;
pub use session::{MemoryTokenStore, Session, TokenStore};
use tonic::transport::Channel;
pub use transport::Authenticated;
use transport::SessionState;

/// A connection to a SecureConnect server and the session on it. Cheap to clone; clones
/// share the connection and the session.
#[derive(Clone)]
pub struct Client {
    transport: Authenticated,
    state: Arc<SessionState>,
}

impl Client {
    /// Settings beyond the address: TLS roots, timeouts, user agent, token store.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// Connects to `url` (e.g. `http://127.0.0.1:50051`) with the default settings.
    pub async fn connect(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).connect().await
    }

    /// Wraps an existing channel (custom load balancing…); the session lives in memory.
    pub fn from_channel(channel: Channel) -> Self {
        Self::assemble(channel, Arc::new(MemoryTokenStore::default()), None)
    }

    pub(crate) fn assemble(
        channel: Channel,
        store: Arc<dyn TokenStore>,
        session: Option<Session>,
    ) -> Self {
        let state = Arc::new(SessionState::new(store, session, channel.clone()));
        Self {
            transport: Authenticated::new(channel, Arc::clone(&state)),
            state,
        }
    }

    /// Creates an account and signs in as it; the session goes to the token store.
    pub async fn register(&self, request: RegisterRequest) -> Result<Session, Error> {
        let answer = self.auth().register(request).await?.into_inner();
        let tokens = answer.tokens.ok_or(Error::NotSignedIn)?;
        self.start(Session::from_tokens(answer.user_id, tokens))
    }

    /// Signs in; the session goes to the token store.
    pub async fn login(
        &self,
        email: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<Session, Error> {
        let request = LoginRequest {
            email: email.into(),
            password: password.into(),
            device: None,
        };
        self.login_with(request).await
    }

    /// [`Self::login`] with every field of the request (device name and platform).
    pub async fn login_with(&self, request: LoginRequest) -> Result<Session, Error> {
        let answer = self.auth().login(request).await?.into_inner();
        let tokens = answer.tokens.ok_or(Error::NotSignedIn)?;
        self.start(Session::from_tokens(answer.user_id, tokens))
    }

    /// Ends the session on the server and forgets it here.
    pub async fn logout(&self) -> Result<(), Error> {
        if self.state.current().is_none() {
            return Err(Error::NotSignedIn);
        }
        self.auth().logout(LogoutRequest {}).await?;
        self.state.replace(None).map_err(Error::TokenStore)
    }

    fn start(&self, session: Session) -> Result<Session, Error> {
        self.state
            .replace(Some(session.clone()))
            .map_err(Error::TokenStore)?;
        Ok(session)
    }

    /// The current session, if signed in.
    pub fn session(&self) -> Option<Session> {
        self.state.current()
    }

    /// Uses an access token obtained elsewhere (an attenuated bot token, a test), or
    /// none. Such a token is not refreshed, nor given to the token store.
    pub fn set_access_token(&self, token: Option<String>) {
        self.state.set_unstored(token.map(|access_token| {
            Session {
                user_id: String::new(),
                session_id: String::new(),
                access_token,
                // Its expiry is the server's business: never refresh it ahead of time.
                access_token_expire_time: SystemTime::now()
                    .checked_add(std::time::Duration::from_secs(100 * 365 * 86_400))
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                refresh_token: String::new(),
                refresh_token_expire_time: SystemTime::UNIX_EPOCH,
            }
        }));
    }

    /// The access token sent with calls now, if any.
    pub fn access_token(&self) -> Option<String> {
        self.state.current().map(|session| session.access_token)
    }

    /// Sign-in, sessions, passwords and email changes.
    pub fn auth(&self) -> AuthServiceClient<Authenticated> {
        AuthServiceClient::new(self.transport.clone())
    }

    /// Profiles, search, blocks and contacts.
    pub fn users(&self) -> UserServiceClient<Authenticated> {
        UserServiceClient::new(self.transport.clone())
    }

    /// Direct and group conversations and their members.
    pub fn conversations(&self) -> ConversationServiceClient<Authenticated> {
        ConversationServiceClient::new(self.transport.clone())
    }

    /// Sending, reading, editing and deleting messages.
    pub fn messages(&self) -> MessageServiceClient<Authenticated> {
        MessageServiceClient::new(self.transport.clone())
    }

    /// The user's drive: uploads, downloads, folders, trash and quota.
    pub fn drive(&self) -> DriveServiceClient<Authenticated> {
        DriveServiceClient::new(self.transport.clone())
    }

    /// Polls in conversations: create, vote, close (see [`PollView`] for a poll kept
    /// current from the event stream).
    pub fn polls(&self) -> PollServiceClient<Authenticated> {
        PollServiceClient::new(self.transport.clone())
    }

    /// Calls in conversations: start, join, leave, and the signaling of their media (see
    /// [`Client::start_call`] and the steps in the `calls` module's helpers).
    pub fn calls(&self) -> CallServiceClient<Authenticated> {
        CallServiceClient::new(self.transport.clone())
    }

    /// The raw event stream (see [`Client::event_stream`] for the resuming one).
    pub fn events(&self) -> EventServiceClient<Authenticated> {
        EventServiceClient::new(self.transport.clone())
    }

    /// Who is online and who is typing.
    pub fn presence(&self) -> PresenceServiceClient<Authenticated> {
        PresenceServiceClient::new(self.transport.clone())
    }
}
