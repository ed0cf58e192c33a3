//! A web app served on the API's port (`web.dir`, `--web-dir`): every request that is not a
//! gRPC or gRPC-web call gets a file from the directory, and paths without a file get its
//! `index.html`, so a single-page app can own its URLs. One port, one origin: the app
//! calls the API without cross-origin requests.
//!
//! A layer in the server's stack, outside gRPC-web's translation (which refuses any other
//! HTTP/1.1 request), and present even when off, so the stack has one type.

use std::{
    convert::Infallible,
    path::Path,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{Request, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::{
    drive::Drive,
    error::{Error, Result},
    share_links,
};

/// Serves share links (`/s/<token>`, when set) and `dir` (when set) to everything but
/// gRPC.
#[derive(Clone, Default)]
pub struct StaticFilesLayer {
    files: Option<ServeDir<ServeFile>>,
    links: Option<Arc<Drive>>,
}

impl StaticFilesLayer {
    /// Off: every request goes to the API.
    pub fn off() -> Self {
        Self::default()
    }

    /// Serves `dir`, which must hold an `index.html`.
    pub fn serving(dir: &Path) -> Result<Self> {
        let index = dir.join("index.html");
        if !index.is_file() {
            return Err(Error::internal(format!(
                "web.dir {}: no index.html there (build the app first)",
                dir.display()
            )));
        }
        Ok(Self {
            files: Some(ServeDir::new(dir).fallback(ServeFile::new(index))),
            links: None,
        })
    }

    /// Also serves the drive's share links (see `crate::share_links`).
    pub fn with_share_links(mut self, drive: Arc<Drive>) -> Self {
        self.links = Some(drive);
        self
    }
}

impl<S> tower::Layer<S> for StaticFilesLayer {
    type Service = StaticFiles<S>;

    fn layer(&self, inner: S) -> StaticFiles<S> {
        StaticFiles {
            inner,
            files: self.files.clone(),
            links: self.links.clone(),
        }
    }
}

#[derive(Clone)]
pub struct StaticFiles<S> {
    inner: S,
    files: Option<ServeDir<ServeFile>>,
    links: Option<Arc<Drive>>,
}

impl<S, B> tower::Service<Request<B>> for StaticFiles<S>
where
    S: tower::Service<Request<B>, Response = Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(drive) = &self.links
            && !is_grpc(&request)
            && request.uri().path().starts_with(share_links::PREFIX)
        {
            let drive = Arc::clone(drive);
            return Box::pin(async move { Ok(share_links::serve(drive, request).await) });
        }
        match &self.files {
            Some(files) if !is_grpc(&request) => {
                let files = files.clone();
                Box::pin(async move {
                    let response: Result<_, Infallible> = files.oneshot(request).await;
                    let Ok(response) = response;
                    Ok(response.map(tonic::body::Body::new))
                })
            }
            _ => Box::pin(self.inner.call(request)),
        }
    }
}

/// gRPC and gRPC-web calls, and CORS preflights for them, go to the API.
fn is_grpc<B>(request: &Request<B>) -> bool {
    request.method() == http::Method::OPTIONS
        || request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"))
}
