//! Versioned formats for what nodes store and send each other.
//!
//! Every payload starts with a format byte, then the bytes of that format:
//!
//! | first byte | format |
//! |---|---|
//! | `{` | v0: `serde_json` of the in-memory types, written before formats were versioned; read only |
//! | `0x01` | v1: protobuf, `secureconnect.storage.v1` (`proto/secureconnect/storage/v1`) |
//!
//! Compatibility rule, one version step each way: a node reads every format it knows,
//! and within v1 fields are only ever added (`buf breaking` guards the proto), so a node
//! one release older reads what a newer one writes by skipping the fields it does not
//! know. A change old nodes could not read that way gets a new format byte, which nodes
//! learn to read one release before any node writes it.
//!
//! v1 was introduced while no deployment ran v0, so v0 → v1 is the one upgrade that needs
//! every node stopped (v0 nodes cannot read v1); v0 payloads already stored stay readable.

use prost::Message as _;
use secureconnect_proto::storage::v1 as pb;

use crate::{
    domain::{Attachment, Event, Message},
    error::{Error, Result},
};

mod call;
mod convert;

pub use convert::{BusPayload, bus_from_proto, bus_to_proto};

/// The format byte of v1.
pub const V1: u8 = 1;
/// What a v0 (JSON) payload starts with.
const V0_JSON: u8 = b'{';

/// Which format a payload is in, from its first byte.
enum Format<'a> {
    V0Json(&'a [u8]),
    V1(&'a [u8]),
}

fn format_of(bytes: &[u8]) -> Result<Format<'_>> {
    match bytes.split_first() {
        Some((&V0_JSON, _)) => Ok(Format::V0Json(bytes)),
        Some((&V1, rest)) => Ok(Format::V1(rest)),
        Some((other, _)) => Err(Error::internal(format!(
            "stored payload in format {other}, newer than this node reads (up to {V1}): upgrade it"
        ))),
        None => Err(Error::internal("empty stored payload")),
    }
}

fn v1(message: &impl prost::Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + message.encoded_len());
    out.push(V1);
    // Writing into a Vec cannot run out of room.
    let _ = message.encode(&mut out);
    out
}

fn undecodable(what: &str, err: impl std::fmt::Display) -> Error {
    Error::internal(format!("undecodable stored {what}: {err}"))
}

/// A durable event as stored (the `events` table) — in the current format.
pub fn encode_event(event: &Event) -> Vec<u8> {
    v1(&convert::event_to_proto(event))
}

/// A stored event, in any format this node reads.
pub fn decode_event(bytes: &[u8]) -> Result<Event> {
    match format_of(bytes)? {
        Format::V0Json(json) => serde_json::from_slice(json).map_err(|e| undecodable("event", e)),
        Format::V1(body) => {
            let proto = pb::Event::decode(body).map_err(|e| undecodable("event", e))?;
            convert::event_from_proto(proto)
        }
    }
}

/// A message row's state as stored (CQL message history) — in the current format.
pub fn encode_message(message: &Message) -> Vec<u8> {
    v1(&convert::message_to_proto(message))
}

/// A stored message, in any format this node reads.
pub fn decode_message(bytes: &[u8]) -> Result<Message> {
    match format_of(bytes)? {
        Format::V0Json(json) => serde_json::from_slice(json).map_err(|e| undecodable("message", e)),
        Format::V1(body) => {
            let proto = pb::Message::decode(body).map_err(|e| undecodable("message", e))?;
            convert::message_from_proto(proto)
        }
    }
}

/// A message's attachments as the SQL history stores them — in the current format.
pub fn encode_attachments(attachments: &[Attachment]) -> Vec<u8> {
    v1(&pb::Attachments {
        items: attachments
            .iter()
            .map(convert::attachment_to_proto)
            .collect(),
    })
}

/// Stored attachments, in any format this node reads (v1 only: they came after v0).
pub fn decode_attachments(bytes: &[u8]) -> Result<Vec<Attachment>> {
    match format_of(bytes)? {
        Format::V0Json(_) => Err(undecodable("attachments", "JSON was never written")),
        Format::V1(body) => {
            let proto = pb::Attachments::decode(body).map_err(|e| undecodable("attachments", e))?;
            proto
                .items
                .into_iter()
                .map(convert::attachment_from_proto)
                .collect()
        }
    }
}

/// A call's record as the SQL store keeps it — in the current format.
pub fn encode_call(call: &crate::domain::call::Call) -> Vec<u8> {
    v1(&call::call_to_proto(call))
}

/// A stored call record, in any format this node reads (v1 only: calls came after v0).
pub fn decode_call(bytes: &[u8]) -> Result<crate::domain::call::Call> {
    match format_of(bytes)? {
        Format::V0Json(_) => Err(undecodable("call", "JSON was never written")),
        Format::V1(body) => {
            let proto = pb::Call::decode(body).map_err(|e| undecodable("call", e))?;
            call::call_from_proto(Some(proto))
        }
    }
}

/// What one node sends the others over the bus — in the current format.
pub fn encode_bus(node: uuid::Uuid, payload: &BusPayload) -> Vec<u8> {
    v1(&bus_to_proto(node, payload))
}

/// A bus message from another node, in any format this node reads.
pub fn decode_bus(bytes: &[u8]) -> Result<(uuid::Uuid, BusPayload)> {
    match format_of(bytes)? {
        Format::V0Json(json) => convert::bus_from_v0_json(json),
        Format::V1(body) => {
            let proto = pb::BusEnvelope::decode(body).map_err(|e| undecodable("bus message", e))?;
            bus_from_proto(proto)
        }
    }
}

#[cfg(test)]
mod tests;
