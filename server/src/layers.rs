//! The one ordered middleware stack, outermost first. Each layer says why it sits where
//! it does.

use std::{any::Any, time::Duration};

use http::{HeaderName, HeaderValue, Method, Response, header::AUTHORIZATION};
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};
use tower_http::{
    catch_panic::{CatchPanicLayer, ResponseForPanic},
    classify::{GrpcCode, GrpcFailureClass},
    cors::{AllowHeaders, AllowOrigin, CorsLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    trace::{GrpcMakeClassifier, OnFailure, TraceLayer},
};
use tracing::{Level, Span};

use crate::{
    request_limits::{HTTP2_HEADER_LIST_FACTOR, RequestLimitsLayer},
    web::StaticFilesLayer,
};

/// Headers a browser must be allowed to read for gRPC-web errors to reach the SDK.
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// Requests one connection may have in flight before new ones are shed.
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 256;

type Layers = Stack<
    RequestLimitsLayer,
    Stack<
        tonic_web::GrpcWebLayer,
        Stack<
            StaticFilesLayer,
            Stack<
                CorsLayer,
                Stack<
                    CatchPanicLayer<GrpcInternalOnPanic>,
                    Stack<
                        TraceLayer<
                            GrpcMakeClassifier,
                            tower_http::trace::DefaultMakeSpan,
                            tower_http::trace::DefaultOnRequest,
                            tower_http::trace::DefaultOnResponse,
                            tower_http::trace::DefaultOnBodyChunk,
                            tower_http::trace::DefaultOnEos,
                            LogFailureBySide,
                        >,
                        Stack<SetSensitiveRequestHeadersLayer, Identity>,
                    >,
                >,
            >,
        >,
    >,
>;

/// A server builder with the stack applied; services are added by the caller.
pub fn server_builder(
    request_timeout: Duration,
    limits: RequestLimitsLayer,
    web: StaticFilesLayer,
) -> Server<Layers> {
    let header_list_limit = u32::try_from(limits.max_header_bytes)
        .unwrap_or(u32::MAX)
        .saturating_mul(HTTP2_HEADER_LIST_FACTOR);
    Server::builder()
        // gRPC-web arrives over HTTP/1.1; native gRPC over HTTP/2 on the same port.
        .accept_http1(true)
        // Pings keep NAT/proxy mappings of idle event streams alive and detect dead peers.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Room above our own metadata limit, so an oversized request usually gets a gRPC
        // status from `RequestLimits` rather than a protocol-level refusal.
        .http2_max_header_list_size(header_list_limit)
        // Bounds the time to produce a response. A server stream returns its response at
        // once and then streams the body, so only unary work is bounded here.
        .timeout(request_timeout)
        // Bound the work one connection can queue; past that, refuse at once with
        // RESOURCE_EXHAUSTED instead of queueing without limit.
        .concurrency_limit_per_connection(MAX_IN_FLIGHT_PER_CONNECTION)
        .load_shed(true)
        // First, mark credentials sensitive so no later layer (or log) prints them.
        .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
        // Then one span per request, classified by grpc-status rather than HTTP status;
        // a failure is logged at the level its side deserves (see `LogFailureBySide`).
        .layer(TraceLayer::new_for_grpc().on_failure(LogFailureBySide))
        // A handler that panics becomes an INTERNAL error for that call, not a dropped
        // connection for everyone on it.
        .layer(CatchPanicLayer::custom(GrpcInternalOnPanic))
        // CORS before gRPC-web, so preflight OPTIONS requests are answered before anything
        // else looks at them. Tokens travel in a header, not cookies, so any origin may call.
        .layer(cors())
        // A web app, when configured, answers everything that is not gRPC: before the
        // gRPC-web translation, which refuses other HTTP/1.1 requests.
        .layer(web)
        // Then translate gRPC-web to gRPC, so every service below speaks plain gRPC.
        .layer(tonic_web::GrpcWebLayer::new())
        // Innermost: size limits answered as gRPC statuses (plain gRPC by now, so one
        // answer serves both protocols).
        .layer(limits)
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::POST, Method::OPTIONS])
        // Mirror rather than `*`: browsers never let a wildcard cover `authorization`.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(24 * 3600))
}

/// Answers a panicked call with a trailers-only gRPC `INTERNAL` response.
#[derive(Clone, Copy)]
pub struct GrpcInternalOnPanic;

impl ResponseForPanic for GrpcInternalOnPanic {
    type ResponseBody = tonic::body::Body;

    fn response_for_panic(
        &mut self,
        panic: Box<dyn Any + Send + 'static>,
    ) -> Response<Self::ResponseBody> {
        let detail = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %detail, "request handler panicked");
        let mut response = Response::new(tonic::body::Body::empty());
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static("13"));
        headers.insert("grpc-message", HeaderValue::from_static("internal error"));
        response
    }
}

/// Logs a failed call at the level that fits whose fault it is: the client's mistakes
/// (bad input, not found, denied, rate limited…) are routine and go to `debug`; the
/// server's own faults (`INTERNAL`, `UNKNOWN`, `DATA_LOSS`, `UNAVAILABLE`, a missed
/// deadline) go to `error` (`warn` for `UNAVAILABLE`, which heals by itself). The gRPC code
/// is a field, so logs can be filtered by it.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogFailureBySide;

/// The log level for a failed call with this gRPC status code.
pub fn failure_level(code: Option<GrpcCode>) -> Level {
    match code {
        Some(GrpcCode::Internal | GrpcCode::Unknown | GrpcCode::DataLoss) | None => Level::ERROR,
        Some(GrpcCode::Unavailable | GrpcCode::DeadlineExceeded | GrpcCode::Unimplemented) => {
            Level::WARN
        }
        Some(_) => Level::DEBUG,
    }
}

impl OnFailure<GrpcFailureClass> for LogFailureBySide {
    fn on_failure(&mut self, failure: GrpcFailureClass, latency: Duration, _span: &Span) {
        let latency_ms = latency.as_secs_f64() * 1000.0;
        match failure {
            GrpcFailureClass::Status(status) => {
                let code = status.code_raw();
                let message = status.message().unwrap_or_default();
                match failure_level(status.code()) {
                    Level::ERROR => {
                        tracing::error!(grpc_code = code, latency_ms, message, "call failed")
                    }
                    Level::WARN => {
                        tracing::warn!(grpc_code = code, latency_ms, message, "call failed")
                    }
                    _ => tracing::debug!(grpc_code = code, latency_ms, message, "call failed"),
                }
            }
            // The response itself broke (a body or transport error): always our side.
            other => tracing::error!(latency_ms, failure = %other, "call failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tower_http::classify::GrpcCode;
    use tracing::Level;

    use super::failure_level;

    #[test]
    fn client_mistakes_log_at_debug_and_server_faults_at_error() {
        for code in [
            GrpcCode::InvalidArgument,
            GrpcCode::NotFound,
            GrpcCode::AlreadyExists,
            GrpcCode::PermissionDenied,
            GrpcCode::Unauthenticated,
            GrpcCode::ResourceExhausted,
            GrpcCode::FailedPrecondition,
            GrpcCode::OutOfRange,
            GrpcCode::Cancelled,
            GrpcCode::Aborted,
        ] {
            assert_eq!(failure_level(Some(code)), Level::DEBUG, "{code:?}");
        }
        for code in [GrpcCode::Internal, GrpcCode::Unknown, GrpcCode::DataLoss] {
            assert_eq!(failure_level(Some(code)), Level::ERROR, "{code:?}");
        }
        assert_eq!(failure_level(Some(GrpcCode::Unavailable)), Level::WARN);
        assert_eq!(failure_level(None), Level::ERROR);
    }
}
