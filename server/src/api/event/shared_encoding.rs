//! Stream responses encoded once per node: an event that reads the same for every
//! recipient (a conversation's event) is encoded by the first stream that sends it, and
//! every other stream writes those bytes behind its own cursor.
//!
//! The bytes are `SubscribeResponse` without its cursor (field 1), so a frame is the
//! cursor's field followed by them: exactly what prost writes for the whole message, which
//! encodes fields in number order.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, Weak},
};

use bytes::{BufMut, Bytes};
use prost::Message;
use secureconnect_proto::{
    codec,
    event::v1::{SubscribeResponse, subscribe_response},
};
use tonic::{
    Status,
    codec::{BufferSettings, EncodeBuf, Encoder},
};

use crate::domain::Event;

/// Events whose encodings are kept: all of a large group's streams send an event within
/// milliseconds of each other, while a few dozen others may be sent in between.
const KEPT: usize = 64;

/// One response of a stream.
pub enum Frame {
    /// Encoded for this stream alone.
    Whole(Box<SubscribeResponse>),
    /// A shared encoding behind this stream's cursor.
    Shared { cursor: String, encoded: Bytes },
}

/// The encodings of the events sent most recently on this node, each known by its
/// `Arc<Event>`: every stream that delivers a published event holds the same one.
#[derive(Default)]
pub struct SharedEncodings {
    /// Oldest first. A `Weak` keeps its allocation (not the event) alive, so no other
    /// event can take its address while it is here: the same address is the same event.
    kept: Mutex<VecDeque<(Weak<Event>, Bytes)>>,
}

impl SharedEncodings {
    pub fn get(&self, event: &Arc<Event>) -> Option<Bytes> {
        let kept = self.kept.lock().ok()?;
        let address = Arc::as_ptr(event);
        kept.iter()
            .rev()
            .find(|(kept, _)| kept.as_ptr() == address)
            .map(|(_, encoded)| encoded.clone())
    }

    /// Encodes `body` (a response's event, without a cursor) as `event`'s encoding, and
    /// keeps it.
    pub fn insert(&self, event: &Arc<Event>, body: subscribe_response::Event) -> Bytes {
        let encoded = Bytes::from(
            SubscribeResponse {
                cursor: String::new(),
                event: Some(body),
            }
            .encode_to_vec(),
        );
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back((Arc::downgrade(event), encoded.clone()));
        }
        encoded
    }
}

/// Writes frames as the generated server's codec writes whole responses.
pub struct FrameEncoder;

impl Encoder for FrameEncoder {
    type Item = Frame;
    type Error = Status;

    fn encode(&mut self, item: Frame, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Frame::Whole(response) => response
                .encode(dst)
                .map_err(|err| Status::internal(err.to_string())),
            Frame::Shared { cursor, encoded } => {
                if !cursor.is_empty() {
                    prost::encoding::string::encode(1, &cursor, dst);
                }
                dst.put_slice(&encoded);
                Ok(())
            }
        }
    }

    fn buffer_settings(&self) -> BufferSettings {
        codec::buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secureconnect_proto::event::v1::ConversationEvent;

    fn body(seq: u64) -> subscribe_response::Event {
        subscribe_response::Event::ConversationEvent(ConversationEvent {
            conversation_id: "c".into(),
            seq,
            actor_user_id: "a".into(),
            ..Default::default()
        })
    }

    fn event(seq: u64) -> Arc<Event> {
        Arc::new(Event::Conversation {
            conversation_id: uuid::Uuid::nil(),
            seq,
            actor: uuid::Uuid::nil(),
            time: chrono::Utc::now(),
            change: crate::domain::Change::Deleted,
        })
    }

    #[test]
    fn a_shared_frame_is_byte_for_byte_the_whole_response() {
        let whole = SubscribeResponse {
            cursor: "2:41:7".into(),
            event: Some(body(9)),
        };
        let shared = SharedEncodings::default();
        let encoded = shared.insert(&event(9), body(9));
        let mut framed = bytes::BytesMut::new();
        prost::encoding::string::encode(1, &whole.cursor, &mut framed);
        framed.put_slice(&encoded);
        assert_eq!(framed.to_vec(), whole.encode_to_vec());
    }

    #[test]
    fn an_encoding_is_found_by_its_event_only_while_kept() {
        let shared = SharedEncodings::default();
        let first = event(1);
        let encoded = shared.insert(&first, body(1));
        assert_eq!(shared.get(&first), Some(encoded));
        // An equal event that is another allocation is not the same delivery.
        assert_eq!(shared.get(&event(1)), None);
        let later: Vec<_> = (2..=KEPT as u64 + 1).map(event).collect();
        for e in &later {
            shared.insert(e, body(2));
        }
        assert_eq!(shared.get(&first), None, "pushed out by newer ones");
        assert!(shared.get(&later[0]).is_some());
    }
}
