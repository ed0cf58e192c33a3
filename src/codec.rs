//! The protobuf codec every generated service uses: tonic's prost codec, except that a
//! request that cannot be decoded (invalid UTF-8 in a string, truncated bytes, a wrong
//! wire type) is the caller's mistake, so it becomes `INVALID_ARGUMENT` with a
//! `BadRequest` field violation naming the field, instead of gRPC's default `INTERNAL`.
//! (Generated clients share the codec; for them such an error means the peer sent
//! a malformed message, which the status text says.) It also encodes into a smaller first
//! buffer than tonic's (see [`ENCODE_BUFFER`]).

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Code, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

/// The buffer a call's messages are first encoded into; it grows when a message needs
/// more. tonic's default is 8 KiB, and a response stream holds its buffer for its whole
/// life: with 2,000 idle event streams those were 16 MB, 15% of the server's heap per
/// stream (heaptrack). Events and replies are mostly well under 1 KiB.
pub const ENCODE_BUFFER: usize = 1024;
/// tonic's default: past this many encoded bytes a stream hands them to the transport.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// How every response is encoded: into [`ENCODE_BUFFER`] first, handed on past tonic's
/// yield threshold. (Also for encoders written by hand for one service.)
pub fn buffer_settings() -> BufferSettings {
    BufferSettings::new(ENCODE_BUFFER, YIELD_THRESHOLD)
}

/// Drop-in replacement for `tonic_prost::ProstCodec` (see the module docs).
#[derive(Debug, Clone)]
pub struct StrictProstCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder::default()
    }
}

/// Decodes with prost and reports failures as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U> Default for StrictDecoder<U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|err| malformed(&err.to_string()))
    }
}

/// Turns prost's "failed to decode Protobuf message: Inner.b: Outer.a: what" (innermost
/// field first) into a field violation on `a.b`. For a field inside a `oneof`, prost names
/// the oneof, so the path ends with the oneof's name.
fn malformed(error: &str) -> Status {
    let detail = error
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(error);
    let mut path = Vec::new();
    let mut description = detail;
    for segment in detail.split(": ") {
        match segment.split_once('.') {
            Some((message, field))
                if is_identifier(message) && is_identifier(field) && !field.is_empty() =>
            {
                path.push(field);
                description = &detail[detail.find(segment).map_or(0, |i| i + segment.len())..];
            }
            _ => break,
        }
    }
    let description = description.trim_start_matches(": ").to_owned();
    path.reverse();
    let field = if path.is_empty() {
        "request".to_owned()
    } else {
        path.join(".")
    };
    let details = ErrorDetails::with_bad_request_violation(field.clone(), description.clone());
    Status::with_error_details(
        Code::InvalidArgument,
        format!("malformed message: {field}: {description}"),
        details,
    )
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_name_the_field() {
        let status = malformed(
            "failed to decode Protobuf message: MessageContent.body: SendMessageRequest.content: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("bad request").field_violations[0];
        assert_eq!(violation.field, "content.body");
        assert_eq!(
            violation.description,
            "invalid string value: data is not UTF-8 encoded"
        );
        let opaque = malformed("failed to decode Protobuf message: buffer underflow");
        assert_eq!(
            opaque
                .get_error_details()
                .bad_request()
                .expect("br")
                .field_violations[0]
                .field,
            "request"
        );
    }
}
