//! The transport surface: gRPC-web over HTTP/1.1 with CORS for browsers, health, and
//! reflection for grpcurl — all on the one port.

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// Sends one raw HTTP/1.1 request and returns the whole response (the server closes).
async fn http1(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(request).await.expect("write");
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut response),
    );
    read.await.expect("response within 10 s").expect("read");
    response
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn grpc_web_over_http1_gets_a_proper_response() {
    let server = TestServer::start().await;
    // One gRPC-web data frame: flag 0, length 0 (an empty HealthCheckRequest).
    let body = [0u8, 0, 0, 0, 0];
    let mut request = format!(
        "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: {}\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nOrigin: http://app.example\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let response = http1(server.addr(), &request).await;
    let text = String::from_utf8_lossy(&response).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        text.contains("content-type: application/grpc-web+proto"),
        "{text}"
    );
    assert!(text.contains("access-control-allow-origin: *"), "{text}");
    assert!(text.contains("access-control-expose-headers"), "{text}");
    // The trailer frame (flag 0x80) carries grpc-status 0; the data frame carries SERVING (1).
    assert!(find(&response, b"grpc-status:0"), "{text}");
    assert!(
        find(&response, &[0u8, 0, 0, 0, 2, 8, 1]),
        "serving status frame missing: {response:?}"
    );

    // A browser error is readable too: an unauthenticated call reports its status.
    let mut request = format!(
        "POST /secureconnect.user.v1.UserService/GetCurrentUser HTTP/1.1\r\nHost: {}\r\nContent-Type: application/grpc-web+proto\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        server.addr()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let response = String::from_utf8_lossy(&http1(server.addr(), &request).await).to_lowercase();
    assert!(
        response.contains("grpc-status: 16") || response.contains("grpc-status:16"),
        "{response}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_allows_browsers() {
    let server = TestServer::start().await;
    let request = format!(
        "OPTIONS /secureconnect.message.v1.MessageService/SendMessage HTTP/1.1\r\nHost: {}\r\nOrigin: http://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web,authorization\r\nConnection: close\r\n\r\n",
        server.addr()
    );
    let response =
        String::from_utf8_lossy(&http1(server.addr(), request.as_bytes()).await).to_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(
        response.contains("access-control-allow-origin: *"),
        "{response}"
    );
    assert!(
        response.contains("access-control-allow-methods"),
        "{response}"
    );
    assert!(response.contains("authorization"), "{response}");
    server.shutdown().await;
}

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_every_service() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status, i32::from(ServingStatus::Serving));

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(Ok(response)) = responses.next().await else {
        panic!("no reflection response")
    };
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "secureconnect.auth.v1.AuthService",
        "secureconnect.user.v1.UserService",
        "secureconnect.conversation.v1.ConversationService",
        "secureconnect.message.v1.MessageService",
        "secureconnect.event.v1.EventService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn reflection_describes_the_error_details_clients_decode() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    // What grpcurl asks to print the details of an error.
    for symbol in [
        "google.rpc.BadRequest",
        "google.rpc.ErrorInfo",
        "google.rpc.RetryInfo",
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        };
        let mut responses = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection")
            .into_inner();
        let Some(Ok(response)) = responses.next().await else {
            panic!("no reflection response")
        };
        assert!(
            matches!(
                response.message_response,
                Some(MessageResponse::FileDescriptorResponse(ref files)) if !files.file_descriptor_proto.is_empty()
            ),
            "{symbol}: {response:?}"
        );
    }
    server.shutdown().await;
}

/// A health client on its own connection, to see whether one call's failure takes the
/// connection (and every other call on it) down.
async fn health_client(server: &TestServer) -> HealthClient<tonic::transport::Channel> {
    let channel = server.channel().await;
    HealthClient::new(channel)
}

fn health_request(pad_bytes: usize) -> tonic::Request<HealthCheckRequest> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if pad_bytes > 0 {
        let pad = "x".repeat(pad_bytes).parse().expect("ascii metadata");
        request.metadata_mut().insert("x-pad", pad);
    }
    request
}

#[tokio::test]
async fn oversized_metadata_gets_resource_exhausted_naming_the_limit_and_spares_the_connection() {
    let server = TestServer::start().await;
    let mut client = health_client(&server).await;
    // Over the 16 KiB default, within what HTTP/2 accepts: a gRPC status, not HTTP 431.
    let status = assert_code(
        client.check(health_request(20 * 1024)).await,
        tonic::Code::ResourceExhausted,
    );
    assert_eq!(reason(&status), "REQUEST_TOO_LARGE");
    assert!(
        status
            .message()
            .contains("16384 bytes (limits.max_header_bytes)"),
        "{status:?}"
    );
    // The same connection keeps serving.
    let ok = client.check(health_request(1024)).await.expect("next call");
    assert_eq!(ok.into_inner().status, ServingStatus::Serving as i32);
    server.shutdown().await;
}

#[tokio::test]
async fn an_oversized_message_gets_resource_exhausted_naming_the_setting() {
    let server = TestServer::start_with(|c| c.limits.max_request_bytes = 64 * 1024).await;
    let client = server.client().await;
    let request = secureconnect_sdk::proto::auth::v1::RegisterRequest {
        email: "big@example.com".into(),
        password: "correct horse battery".into(),
        username: "big".into(),
        display_name: "x".repeat(100 * 1024),
        ..Default::default()
    };
    let status = assert_code(
        client.auth().register(request).await,
        tonic::Code::ResourceExhausted,
    );
    assert_eq!(reason(&status), "REQUEST_TOO_LARGE");
    assert!(
        status
            .message()
            .contains("the limit is 65536 bytes (limits.max_request_bytes)"),
        "{status:?}"
    );
    // Under the limit the same client is served (here: a validation error, as it should).
    let small = secureconnect_sdk::proto::auth::v1::RegisterRequest {
        display_name: "x".repeat(1024),
        ..Default::default()
    };
    assert_code(
        client.auth().register(small).await,
        tonic::Code::InvalidArgument,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_event_service_method_is_unimplemented_and_named() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = "/secureconnect.event.v1.EventService/Publish";
    let answer: Result<tonic::Response<HealthCheckRequest>, _> = grpc
        .unary(
            health_request(0),
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let status = assert_code(answer, tonic::Code::Unimplemented);
    assert!(status.message().contains(path), "{status:?}");
    // The one method the service has still answers (no token: UNAUTHENTICATED).
    let client = server.client().await;
    let stream = client
        .events()
        .subscribe(secureconnect_sdk::proto::event::v1::SubscribeRequest::default())
        .await;
    assert_code(stream, tonic::Code::Unauthenticated);
    server.shutdown().await;
}
