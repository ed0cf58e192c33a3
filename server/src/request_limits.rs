//! Size limits on what a client sends, answered with gRPC statuses a client can act on.
//!
//! - **Metadata** (the HTTP header list) above `limits.max_header_bytes` gets
//!   `RESOURCE_EXHAUSTED` (reason `REQUEST_TOO_LARGE`) naming the limit. HTTP/2 itself is
//!   set to accept up to [`HTTP2_HEADER_LIST_FACTOR`] times that, so the common oversize
//!   case reaches this layer instead of being refused by the protocol with a bare HTTP 431
//!   (which gRPC clients can only report as `UNKNOWN`); beyond it HTTP/2 refuses the
//!   stream, and a header block far beyond it ends the connection (h2's defence against
//!   header floods).
//! - **Messages** above `limits.max_request_bytes`: tonic refuses them before reading
//!   them into memory, with `OUT_OF_RANGE`. That code means "iterated past the end" in
//!   gRPC; this layer turns it into `RESOURCE_EXHAUSTED` (reason `REQUEST_TOO_LARGE`)
//!   naming the setting. tonic says nothing more structured than its message text, so it
//!   is matched on that text; `tests/it/transport.rs` fails if a tonic upgrade changes it.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{ERROR_DOMAIN, Reason};

/// HTTP/2 accepts header lists up to this many times `limits.max_header_bytes`.
pub const HTTP2_HEADER_LIST_FACTOR: u32 = 4;

/// How tonic words a message over its decoding limit (see the module docs).
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

/// The limits, as a tower layer.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimitsLayer {
    pub max_header_bytes: usize,
    pub max_request_bytes: usize,
}

impl<S> tower::Layer<S> for RequestLimitsLayer {
    type Service = RequestLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLimits {
            inner,
            limits: *self,
        }
    }
}

/// See [`RequestLimitsLayer`].
#[derive(Debug, Clone)]
pub struct RequestLimits<S> {
    inner: S,
    limits: RequestLimitsLayer,
}

/// The size HTTP/2 counts for a header list (RFC 9113 §6.5.2: name + value + 32 each).
fn header_list_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

fn too_large(message: String) -> Status {
    let details = ErrorDetails::with_error_info(
        Reason::RequestTooLarge.as_str(),
        ERROR_DOMAIN,
        std::collections::HashMap::<String, String>::new(),
    );
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

impl<S, B, RB> tower::Service<Request<B>> for RequestLimits<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Send,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let limits = self.limits;
        let size = header_list_size(request.headers());
        if size > limits.max_header_bytes {
            let status = too_large(format!(
                "request metadata is {size} bytes; the limit is {} bytes (limits.max_header_bytes)",
                limits.max_header_bytes
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // Only a trailers-only response (status in the headers) can be tonic's
            // refusal of an oversized message; anything else passes untouched.
            let rewritten = Status::from_header_map(response.headers())
                .filter(|s| s.code() == Code::OutOfRange && s.message().starts_with(TONIC_TOO_LARGE))
                .map(|s| {
                    let found = s
                        .message()
                        .split("found ")
                        .nth(1)
                        .and_then(|rest| rest.split(' ').next())
                        .unwrap_or("more");
                    too_large(format!(
                        "request message is {found} bytes; the limit is {} bytes (limits.max_request_bytes)",
                        limits.max_request_bytes
                    ))
                });
            Ok(match rewritten {
                Some(status) => status.into_http(),
                None => response,
            })
        })
    }
}
