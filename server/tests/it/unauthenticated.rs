//! Every RPC of the contract, read from the server's own descriptors (so a new RPC is
//! covered the day it lands), called with no token and with a forged one: each answers
//! `UNAUTHENTICATED`, except the few that are public by design (signing up and in, password
//! reset, share links), which must not answer it for want of a token.

use prost::Message as _;
use prost_types::FileDescriptorSet;
use tonic::{Code, Request, codegen::http::uri::PathAndQuery, transport::Channel};

use crate::common::*;

/// RPCs anyone may call: they carry their own proof (a password, a one-time code, a link).
const PUBLIC: &[&str] = &[
    "/secureconnect.auth.v1.AuthService/Register",
    "/secureconnect.auth.v1.AuthService/Login",
    "/secureconnect.auth.v1.AuthService/RefreshToken",
    "/secureconnect.auth.v1.AuthService/RequestPasswordReset",
    "/secureconnect.auth.v1.AuthService/ResetPassword",
    "/secureconnect.auth.v1.AuthService/ConfirmEmailChange",
    "/secureconnect.drive.v1.DriveService/GetShareLinkFile",
    "/secureconnect.drive.v1.DriveService/DownloadShareLink",
];

/// Every method of every served SecureConnect service, as (path, client streaming,
/// server streaming).
fn methods() -> Vec<(String, bool, bool)> {
    let set = FileDescriptorSet::decode(secureconnect_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut methods = Vec::new();
    for file in set.file {
        let package = file.package().to_owned();
        // Internal formats: never served.
        if !package.starts_with("secureconnect.") || package.starts_with("secureconnect.storage") {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                let path = format!("/{package}.{}/{}", service.name(), method.name());
                methods.push((path, method.client_streaming(), method.server_streaming()));
            }
        }
    }
    methods
}

/// `request` with `token` as its bearer, if any.
fn bearer<T>(mut request: Request<T>, token: Option<&str>) -> Request<T> {
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("header");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Calls `path` with an empty request (every field unset), `token` as the bearer if any.
async fn call(
    channel: Channel,
    path: &str,
    client_streaming: bool,
    server_streaming: bool,
    token: Option<&str>,
) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::try_from(path.to_owned()).expect("path");
    let with_token = |request| bearer(request, token);
    let result = match (client_streaming, server_streaming) {
        (false, false) => grpc
            .unary(with_token(Request::new(())), path, codec)
            .await
            .map(|_| ()),
        (false, true) => match grpc
            .server_streaming(with_token(Request::new(())), path, codec)
            .await
        {
            Ok(stream) => stream.into_inner().message().await.map(|_| ()),
            Err(status) => Err(status),
        },
        (true, false) => {
            let requests = futures::stream::iter([()]);
            grpc.client_streaming(bearer(Request::new(requests), token), path, codec)
                .await
                .map(|_| ())
        }
        (true, true) => {
            let requests = futures::stream::iter([()]);
            match grpc
                .streaming(bearer(Request::new(requests), token), path, codec)
                .await
            {
                Ok(stream) => stream.into_inner().message().await.map(|_| ()),
                Err(status) => Err(status),
            }
        }
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn every_rpc_but_the_public_ones_refuses_a_caller_without_a_valid_token() {
    let server = TestServer::start().await;
    let channel = Channel::from_shared(server.endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let methods = methods();
    assert!(
        methods
            .iter()
            .any(|(path, ..)| path.ends_with("CallService/SendSignal")),
        "the descriptors list the call service"
    );
    for public in PUBLIC {
        assert!(
            methods.iter().any(|(path, ..)| path == public),
            "{public} is not in the contract any more"
        );
    }
    let forged = "EoYBChsIABABGhUKE3NlY3VyZWNvbm5lY3QuaW8";
    for (path, client_streaming, server_streaming) in &methods {
        for token in [None, Some(forged)] {
            let code = call(
                channel.clone(),
                path,
                *client_streaming,
                *server_streaming,
                token,
            )
            .await;
            if PUBLIC.contains(&path.as_str()) {
                assert_ne!(code, Code::Unauthenticated, "{path} is public");
            } else {
                assert_eq!(code, Code::Unauthenticated, "{path} with token {token:?}");
            }
        }
    }
}
