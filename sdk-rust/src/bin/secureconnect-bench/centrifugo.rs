//! The part of Centrifugo v6's public gRPC contracts the benchmark uses: the
//! unidirectional stream (`centrifugal.centrifugo.unistream`, the client side) and
//! `Publish` of the server API (`centrifugal.centrifugo.api`). Field numbers follow
//! Centrifugo's published `unistream.proto` and `api.proto`; fields the benchmark never
//! reads are left out (protobuf skips them).

use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::uri::PathAndQuery;
use tonic::{
    Request, Status, Streaming,
    client::Grpc,
    metadata::{Ascii, MetadataValue, errors::InvalidMetadataValue},
    transport::Channel,
};
use tonic_prost::ProstCodec;

const CONSUME: &str = "/centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume";
const PUBLISH: &str = "/centrifugal.centrifugo.api.CentrifugoApi/Publish";

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectRequest {
    #[prost(string, tag = "1")]
    pub token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Push {
    #[prost(string, tag = "2")]
    pub channel: String,
    #[prost(message, optional, tag = "4")]
    pub publication: Option<Publication>,
    #[prost(message, optional, tag = "10")]
    pub connect: Option<Connect>,
    #[prost(message, optional, tag = "11")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Publication {
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
    #[prost(uint64, tag = "6")]
    pub offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Connect {
    #[prost(string, tag = "1")]
    pub client: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Disconnect {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<ApiError>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ApiError {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An HS256 connection token for `user`, subscribed server-side to `channels`: what an
/// application backend hands its clients.
pub fn connection_token(secret: &str, user: &str, channels: &[&str]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({ "sub": user, "channels": channels });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(hmac::sign(&key, signed.as_bytes()).as_ref());
    format!("{signed}.{signature}")
}

/// Opens a unidirectional stream with `token` on `channel` (one connection each).
pub async fn consume(channel: Channel, token: String) -> Result<Streaming<Push>, Status> {
    let mut grpc = Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| Status::unavailable(err.to_string()))?;
    let response = grpc
        .server_streaming(
            Request::new(ConnectRequest { token }),
            PathAndQuery::from_static(CONSUME),
            ProstCodec::default(),
        )
        .await?;
    Ok(response.into_inner())
}

/// The server API: publishes through Centrifugo's gRPC `Publish`.
#[derive(Clone)]
pub struct Api {
    grpc: Grpc<Channel>,
    authorization: MetadataValue<Ascii>,
}

impl Api {
    pub fn new(channel: Channel, key: &str) -> Result<Self, InvalidMetadataValue> {
        Ok(Self {
            grpc: Grpc::new(channel),
            authorization: format!("apikey {key}").parse()?,
        })
    }

    pub async fn publish(&mut self, channel: &str, data: Vec<u8>) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|err| Status::unavailable(err.to_string()))?;
        let mut request = Request::new(PublishRequest {
            channel: channel.to_owned(),
            data,
        });
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        let response = self
            .grpc
            .unary(
                request,
                PathAndQuery::from_static(PUBLISH),
                ProstCodec::default(),
            )
            .await?
            .into_inner();
        let response: PublishResponse = response;
        match response.error {
            Some(error) => Err(Status::internal(format!(
                "centrifugo publish error {}: {}",
                error.code, error.message
            ))),
            None => Ok(()),
        }
    }
}

/// The send time (µs on the benchmark's clock) a publication's JSON data carries.
pub fn sent_us(data: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    value.get("t")?.as_u64()
}
