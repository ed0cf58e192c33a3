//! The Rust SDK over TLS (rustls): a server whose certificate comes from a private CA is
//! reached when the client trusts that CA, and refused with the public web roots alone.

use secureconnect_sdk::{Client, Error, proto::auth::v1::LoginRequest};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{
    Code,
    transport::{Identity, Server, ServerTlsConfig},
};

const CA: &str = include_str!("fixtures/tls/ca.pem");
const CERT: &str = include_str!("fixtures/tls/server.pem");
const KEY: &str = include_str!("fixtures/tls/server.key");

/// A TLS gRPC server with only the health service: any SecureConnect call gets a gRPC
/// status (UNIMPLEMENTED), which proves the TLS session was set up.
async fn tls_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (_, health) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(CERT, KEY)))
        .expect("tls config")
        .add_service(health);
    let task = tokio::spawn(async move {
        let _ = server
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    (format!("https://localhost:{port}"), task)
}

fn login() -> LoginRequest {
    LoginRequest {
        email: "ann@example.com".into(),
        password: "correct horse".into(),
        device: None,
    }
}

#[tokio::test]
async fn tls_with_a_private_ca_works_when_the_client_trusts_it() {
    let (url, server) = tls_server().await;
    let client = Client::builder(url.clone())
        .tls_root_certificate(CA)
        .connect()
        .await
        .expect("TLS handshake with the trusted CA");
    let answer = client.login_with(login()).await;
    let error = answer.expect_err("no auth service on this server");
    assert_eq!(error.code(), Code::Unimplemented, "{error:?}");

    // The same server with only the public roots: the handshake fails.
    let untrusted = Client::builder(url).connect().await;
    assert!(
        matches!(untrusted, Err(Error::Connect(_))),
        "{:?}",
        untrusted.err()
    );
    server.abort();
}
