//! The transport under every service client: attaches the access token, refreshes it
//! shortly before it expires, and — once — when the server answers `UNAUTHENTICATED`
//! anyway (a token revoked early, a clock skewed), resending the same request.
//!
//! Every SecureConnect call sends exactly one request message (unary and server-streaming
//! calls only: what gRPC-web can carry), so a request body is small and can be buffered
//! and sent again.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use secureconnect_proto::auth::v1::{RefreshTokenRequest, auth_service_client::AuthServiceClient};
use tonic::{Code, body::Body, transport::Channel};
use tower::{Service, ServiceExt};

use crate::{
    Session, TokenStore,
    error::{StoreFailure, TokenStoreError},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Refresh this long before the access token expires, so a call never leaves with a
/// token that dies on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// The session shared by a client and its clones.
pub(crate) struct SessionState {
    store: Arc<dyn TokenStore>,
    current: RwLock<Option<Session>>,
    /// One refresh at a time: a rotated refresh token is single-use, so two concurrent
    /// refreshes would look like token theft to the server and end the session.
    refreshing: tokio::sync::Mutex<()>,
    /// Without this transport under it, for the refresh call itself.
    channel: Channel,
}

impl SessionState {
    pub(crate) fn new(
        store: Arc<dyn TokenStore>,
        initial: Option<Session>,
        channel: Channel,
    ) -> Self {
        Self {
            store,
            current: RwLock::new(initial),
            refreshing: tokio::sync::Mutex::new(()),
            channel,
        }
    }

    pub(crate) fn current(&self) -> Option<Session> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the session in memory, then in the store. The memory copy changes even
    /// when the store fails, so this process goes on working; the failure is returned.
    pub(crate) fn replace(&self, session: Option<Session>) -> Result<(), TokenStoreError> {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = session.clone();
        match &session {
            Some(session) => self.store.save(session),
            None => self.store.clear(),
        }
    }

    /// Sets the session in memory only (a token obtained elsewhere).
    pub(crate) fn set_unstored(&self, session: Option<Session>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = session;
    }

    /// The access token to send now, refreshed first when it is about to expire.
    async fn access_token(&self) -> Result<Option<String>, BoxError> {
        let Some(session) = self.current() else {
            return Ok(None);
        };
        if session.access_token_expire_time > SystemTime::now() + REFRESH_MARGIN {
            return Ok(Some(session.access_token));
        }
        match self.refresh(&session.access_token).await {
            Ok(fresh) => Ok(fresh),
            // Could not reach the server to refresh while the token still lives: use it.
            // (A token store failure is not that: the app must hear of it.)
            Err(err)
                if err.is::<tonic::Status>()
                    && session.access_token_expire_time > SystemTime::now() =>
            {
                Ok(Some(session.access_token))
            }
            Err(err) => Err(err),
        }
    }

    /// Exchanges the refresh token for new tokens, unless another call already replaced
    /// `stale`. `None` when there is no session any more (the server ended it).
    async fn refresh(&self, stale: &str) -> Result<Option<String>, BoxError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let Some(session) = self.current() else {
            return Ok(None);
        };
        if session.access_token != stale {
            return Ok(Some(session.access_token));
        }
        if session.refresh_token.is_empty() {
            return Ok(Some(session.access_token)); // Set by hand: nothing to refresh with.
        }
        let request = RefreshTokenRequest {
            refresh_token: session.refresh_token.clone(),
        };
        match AuthServiceClient::new(self.channel.clone())
            .refresh_token(request)
            .await
        {
            Ok(response) => {
                let tokens = response
                    .into_inner()
                    .tokens
                    .ok_or_else(|| tonic::Status::internal("RefreshToken answered no tokens"))?;
                let fresh = Session::from_tokens(session.user_id.clone(), tokens);
                let token = fresh.access_token.clone();
                self.replace(Some(fresh)).map_err(StoreFailure)?;
                Ok(Some(token))
            }
            // Expired, revoked, or reused elsewhere: the session is over.
            Err(status) if status.code() == Code::Unauthenticated => {
                self.replace(None).map_err(StoreFailure)?;
                Ok(None)
            }
            Err(status) => Err(Box::new(status)),
        }
    }
}

/// The transport every service client of a [`Client`](crate::Client) uses.
#[derive(Clone)]
pub struct Authenticated {
    inner: Channel,
    state: Arc<SessionState>,
}

impl Authenticated {
    pub(crate) fn new(inner: Channel, state: Arc<SessionState>) -> Self {
        Self { inner, state }
    }
}

impl Service<http::Request<Body>> for Authenticated {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // Call the instance that was polled ready; keep a fresh clone for the next call.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let token = state.access_token().await?;
            let first = with_token(&parts, bytes.clone(), token.as_deref())?;
            let response = inner.call(first).await?;
            let Some(sent) = token else {
                return Ok(response);
            };
            if !is_unauthenticated(&response) {
                return Ok(response);
            }
            match state.refresh(&sent).await? {
                Some(renewed) if renewed != sent => {
                    let again = with_token(&parts, bytes, Some(&renewed))?;
                    Ok(inner.ready().await?.call(again).await?)
                }
                _ => Ok(response),
            }
        })
    }
}

fn with_token(
    parts: &http::request::Parts,
    body: Bytes,
    token: Option<&str>,
) -> Result<http::Request<Body>, BoxError> {
    let mut request = http::Request::from_parts(parts.clone(), Body::new(Full::new(body)));
    if let Some(token) = token {
        let value = http::HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| tonic::Status::invalid_argument("access token is not a valid header"))?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    Ok(request)
}

/// A trailers-only answer (how servers refuse a call before running it) of
/// `UNAUTHENTICATED`.
fn is_unauthenticated(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == b"16")
}
