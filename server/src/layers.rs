//! The one ordered middleware stack, outermost first. Each layer says why it sits where
//! it does.

use std::time::Duration;

use http::{HeaderName, Method};
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// Headers a browser must be allowed to read for gRPC-web errors to reach the SDK.
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

type Layers = Stack<tonic_web::GrpcWebLayer, Stack<CorsLayer, Identity>>;

/// A server builder with the stack applied; services are added by the caller.
pub fn server_builder() -> Server<Layers> {
    Server::builder()
        // gRPC-web arrives over HTTP/1.1; native gRPC over HTTP/2 on the same port.
        .accept_http1(true)
        // Pings keep NAT/proxy mappings of idle event streams alive and detect dead peers.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Bound the work one connection can queue.
        .concurrency_limit_per_connection(256)
        // CORS first, so preflight OPTIONS requests are answered before anything else
        // looks at them. Tokens travel in a header, not cookies, so any origin may call.
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
