//! `secureconnect.event.v1.EventService`.
//!
//! Served by [`EventServer`] rather than the generated `EventServiceServer` so that an event
//! every recipient sees alike is encoded once per node, not once per stream (see
//! [`shared_encoding`]): the generated server takes only whole `SubscribeResponse` messages,
//! so each of a large group's streams converted and encoded the same message again —
//! `api::convert::stream_item` and prost were 7 % of the server's CPU delivering to 100
//! subscribers (`perf`); sharing the encoding took 8 % off the CPU per delivery there
//! (31.7 → 29.0 ms per 1,000, three A/B pairs). The request, its limits and every response
//! are as before, byte for byte.

mod shared_encoding;

use std::{convert::Infallible, pin::Pin, sync::Arc};

use futures::Stream;
use secureconnect_proto::{
    codec::StrictDecoder,
    event::v1::{self as pb, event_service_server::SERVICE_NAME},
    message::v1::message_content::Body as ContentBody,
};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{
    Request, Response, Status,
    codec::Codec,
    codegen::{BoxFuture, Context, Poll, Service, StdError, http},
    server::{Grpc, NamedService, ServerStreamingService},
};
use uuid::Uuid;

use super::{convert, poll, principal};
use crate::{
    auth::{Auth, Operation},
    calls::Calls,
    events::{Events, StreamItem, encode_cursor},
    polls::Polls,
};
use shared_encoding::{Frame, FrameEncoder, SharedEncodings};

const SUBSCRIBE: &str = "/secureconnect.event.v1.EventService/Subscribe";

pub struct EventApi {
    pub auth: Arc<Auth>,
    pub events: Arc<Events>,
    pub polls: Arc<Polls>,
    pub calls: Arc<Calls>,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

impl EventApi {
    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
        encodings: Arc<SharedEncodings>,
    ) -> Result<Response<FrameStream>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let items = self
            .events
            .subscribe(&who, &req.into_inner().cursor)
            .await?;
        let viewer = who.user_id;
        let polls = self.polls.clone();
        let calls = self.calls.clone();
        let stream = ReceiverStream::new(items).then(move |item| {
            let (polls, calls, encodings) = (polls.clone(), calls.clone(), encodings.clone());
            async move { Ok(frame(item, viewer, &polls, &calls, &encodings).await) }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// What `viewer`'s stream sends for `item`.
async fn frame(
    item: StreamItem,
    viewer: Uuid,
    polls: &Polls,
    calls: &Calls,
    encodings: &SharedEncodings,
) -> Frame {
    let event = match &item {
        StreamItem::Event(delivered) => {
            if let Some(encoded) = encodings.get(&delivered.event) {
                let cursor = encode_cursor(delivered.cursor);
                return Frame::Shared { cursor, encoded };
            }
            Some(Arc::clone(&delivered.event))
        }
        _ => None,
    };
    let mut response = convert::stream_item(item, viewer);
    // A poll or call message shows the poll or call as it is when it is delivered, as this
    // viewer may see it (so a replay carries the current tally, or a call that has ended):
    // one read per such message, none for others, and never shared.
    if let Some(message) = poll::event_message(&mut response)
        && carries_poll_or_call(message)
    {
        poll::with_polls(polls, viewer, [&mut *message]).await;
        super::call::with_calls(calls, [message]).await;
        return Frame::Whole(Box::new(response));
    }
    match (event, response.event) {
        // The same for every recipient: whoever sends it first encodes it.
        (Some(event), Some(body @ pb::subscribe_response::Event::ConversationEvent(_))) => {
            let encoded = encodings.insert(&event, body);
            let cursor = response.cursor;
            Frame::Shared { cursor, encoded }
        }
        (_, body) => Frame::Whole(Box::new(pb::SubscribeResponse {
            cursor: response.cursor,
            event: body,
        })),
    }
}

fn carries_poll_or_call(message: &secureconnect_proto::message::v1::Message) -> bool {
    let body = message.content.as_ref().and_then(|c| c.body.as_ref());
    matches!(body, Some(ContentBody::Poll(_) | ContentBody::Call(_)))
}

/// The service as tonic's router takes it (in place of the generated server).
#[derive(Clone)]
pub struct EventServer {
    api: Arc<EventApi>,
    encodings: Arc<SharedEncodings>,
    max_decoding_message_size: usize,
}

impl EventServer {
    pub fn new(api: EventApi, max_decoding_message_size: usize) -> Self {
        Self {
            api: Arc::new(api),
            encodings: Arc::new(SharedEncodings::default()),
            max_decoding_message_size,
        }
    }
}

impl NamedService for EventServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for EventServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != SUBSCRIBE {
            // The gRPC answer for a method this service does not have (a generated server's
            // too), naming what was asked for.
            let missing = format!("{SERVICE_NAME} has no method {}", req.uri().path());
            return Box::pin(async move { Ok(Status::unimplemented(missing).into_http()) });
        }
        let subscribe = Subscribe {
            api: Arc::clone(&self.api),
            encodings: Arc::clone(&self.encodings),
        };
        let max_decoding = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc =
                Grpc::new(EventCodec).apply_max_message_size_config(Some(max_decoding), None);
            Ok(grpc.server_streaming(subscribe, req).await)
        })
    }
}

struct Subscribe {
    api: Arc<EventApi>,
    encodings: Arc<SharedEncodings>,
}

impl ServerStreamingService<pb::SubscribeRequest> for Subscribe {
    type Response = Frame;
    type ResponseStream = FrameStream;
    type Future = BoxFuture<Response<FrameStream>, Status>;

    fn call(&mut self, request: Request<pb::SubscribeRequest>) -> Self::Future {
        let (api, encodings) = (Arc::clone(&self.api), Arc::clone(&self.encodings));
        Box::pin(async move { api.subscribe(request, encodings).await })
    }
}

/// The generated server's codec for this service, with frames as what it encodes.
struct EventCodec;

impl Codec for EventCodec {
    type Encode = Frame;
    type Decode = pb::SubscribeRequest;
    type Encoder = FrameEncoder;
    type Decoder = StrictDecoder<pb::SubscribeRequest>;

    fn encoder(&mut self) -> Self::Encoder {
        FrameEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder::default()
    }
}
