//! Rust SDK for SecureConnect: typed clients for every service over one HTTP/2 channel,
//! with the access token attached to each call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), secureconnect_sdk::Error> {
//! use secureconnect_sdk::{
//!     Client,
//!     proto::{auth::v1::LoginRequest, user::v1::GetCurrentUserRequest},
//! };
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! let login = client.auth().login(LoginRequest {
//!     email: "ann@example.com".into(),
//!     password: "correct horse battery".into(),
//!     ..Default::default()
//! }).await?.into_inner();
//! client.set_access_token(login.tokens.map(|t| t.access_token));
//! let me = client.users().get_current_user(GetCurrentUserRequest {}).await?;
//! # Ok(()) }
//! ```

// Unit tests may unwrap and panic: the house rule (workspace lints) is for request paths.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::sync::{Arc, PoisonError, RwLock};

mod errors;

pub use errors::error_reason;
use proto::{
    auth::v1::auth_service_client::AuthServiceClient,
    conversation::v1::conversation_service_client::ConversationServiceClient,
    event::v1::event_service_client::EventServiceClient,
    message::v1::message_service_client::MessageServiceClient,
    presence::v1::presence_service_client::PresenceServiceClient,
    user::v1::user_service_client::UserServiceClient,
};
pub use secureconnect_proto as proto;
use tonic::{
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// Errors of the SDK itself (RPC errors are `tonic::Status`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error(transparent)]
    Rpc(#[from] tonic::Status),
}

/// Attaches `authorization: Bearer <token>` when a token is set.
#[derive(Clone, Default)]
pub struct BearerAuth {
    token: Arc<RwLock<Option<String>>>,
}

impl Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let token = self
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(token) = token {
            let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                tonic::Status::invalid_argument("access token is not a valid header value")
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// The transport every service client of a [`Client`] uses.
pub type Svc = InterceptedService<Channel, BearerAuth>;

/// A connection to a SecureConnect server. Cheap to clone; clones share the token.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    auth: BearerAuth,
}

impl Client {
    /// Connects to `endpoint`, e.g. `http://127.0.0.1:50051`.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        let channel = Endpoint::from_shared(endpoint.into())?.connect().await?;
        Ok(Self::from_channel(channel))
    }

    /// Wraps an existing channel (custom TLS, timeouts, load balancing…).
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            channel,
            auth: BearerAuth::default(),
        }
    }

    /// Sets (or clears) the access token sent with every call.
    pub fn set_access_token(&self, token: Option<String>) {
        *self
            .auth
            .token
            .write()
            .unwrap_or_else(PoisonError::into_inner) = token;
    }

    /// The current access token, if any.
    pub fn access_token(&self) -> Option<String> {
        self.auth
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn auth(&self) -> AuthServiceClient<Svc> {
        AuthServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn users(&self) -> UserServiceClient<Svc> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn conversations(&self) -> ConversationServiceClient<Svc> {
        ConversationServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn messages(&self) -> MessageServiceClient<Svc> {
        MessageServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn events(&self) -> EventServiceClient<Svc> {
        EventServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn presence(&self) -> PresenceServiceClient<Svc> {
        PresenceServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
}
