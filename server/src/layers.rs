//! The one ordered middleware stack, outermost first. Each layer says why it sits where
//! it does.

use std::{any::Any, time::Duration};

use http::{HeaderName, HeaderValue, Method, Response, header::AUTHORIZATION};
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};
use tower_http::{
    catch_panic::{CatchPanicLayer, ResponseForPanic},
    cors::{AllowHeaders, AllowOrigin, CorsLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    trace::{GrpcMakeClassifier, TraceLayer},
};

/// Headers a browser must be allowed to read for gRPC-web errors to reach the SDK.
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// Requests one connection may have in flight before new ones are shed.
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 256;

type Layers = Stack<
    tonic_web::GrpcWebLayer,
    Stack<
        CorsLayer,
        Stack<
            CatchPanicLayer<GrpcInternalOnPanic>,
            Stack<TraceLayer<GrpcMakeClassifier>, Stack<SetSensitiveRequestHeadersLayer, Identity>>,
        >,
    >,
>;

/// A server builder with the stack applied; services are added by the caller.
pub fn server_builder(request_timeout: Duration) -> Server<Layers> {
    Server::builder()
        // gRPC-web arrives over HTTP/1.1; native gRPC over HTTP/2 on the same port.
        .accept_http1(true)
        // Pings keep NAT/proxy mappings of idle event streams alive and detect dead peers.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Bounds the time to produce a response. A server stream returns its response at
        // once and then streams the body, so only unary work is bounded here.
        .timeout(request_timeout)
        // Bound the work one connection can queue; past that, refuse at once with
        // RESOURCE_EXHAUSTED instead of queueing without limit.
        .concurrency_limit_per_connection(MAX_IN_FLIGHT_PER_CONNECTION)
        .load_shed(true)
        // First, mark credentials sensitive so no later layer (or log) prints them.
        .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
        // Then one span per request, classified by grpc-status rather than HTTP status.
        .layer(TraceLayer::new_for_grpc())
        // A handler that panics becomes an INTERNAL error for that call, not a dropped
        // connection for everyone on it.
        .layer(CatchPanicLayer::custom(GrpcInternalOnPanic))
        // CORS before gRPC-web, so preflight OPTIONS requests are answered before anything
        // else looks at them. Tokens travel in a header, not cookies, so any origin may call.
        .layer(cors())
        // Then translate gRPC-web to gRPC, so every service below speaks plain gRPC.
        .layer(tonic_web::GrpcWebLayer::new())
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
