//! `secureconnect.call.v1.CallService`, and the calls that messages carry.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::Stream;
use secureconnect_proto::{
    call::v1::{
        self as pb, call_service_client::CallServiceClient, call_service_server::CallService,
    },
    message::v1 as msg_pb,
};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{
    Request, Response, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};
use uuid::Uuid;

use super::{convert, principal};
use crate::{
    auth::{Auth, Operation},
    calls::{
        CallPage, CallView, Calls, Carrier, ClientSignal, Closing, IceServer, MediaState, WatchItem,
    },
    domain::call::{Call, CallRef, Ending, Presence},
    sfu::Quality,
};

pub struct CallApi {
    pub auth: Arc<Auth>,
    pub calls: Arc<Calls>,
    pub nodes: Nodes,
}

/// How many times a request was forwarded between nodes (a guard against loops while a
/// call changes carrier).
const HOPS: &str = "x-secureconnect-hops";

/// Connections to the other nodes of a cluster, to forward the RPCs of the calls they
/// carry: one lazily connected channel per node.
#[derive(Default)]
pub struct Nodes {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Nodes {
    fn client(&self, url: &str) -> Result<CallServiceClient<Channel>, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(url) {
            return Ok(CallServiceClient::new(channel.clone()));
        }
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|_| Status::internal("a node's URL is not valid"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(url.to_owned(), channel.clone());
        Ok(CallServiceClient::new(channel))
    }
}

/// `request` as forwarded to the call's carrier: the caller's token, one more hop.
fn onward<T>(request: Request<T>) -> Result<Request<T>, Status> {
    let hops = request
        .metadata()
        .get(HOPS)
        .and_then(|v| v.to_str().ok()?.parse::<u8>().ok())
        .unwrap_or(0);
    if hops >= 2 {
        return Err(Status::unavailable(
            "the call is moving to another node: retry in a moment",
        ));
    }
    let token = request.metadata().get("authorization").cloned();
    let mut forwarded = Request::new(request.into_inner());
    if let Some(token) = token {
        forwarded.metadata_mut().insert("authorization", token);
    }
    forwarded
        .metadata_mut()
        .insert(HOPS, MetadataValue::from(u32::from(hops) + 1));
    Ok(forwarded)
}

impl CallApi {
    /// The carrier's client when another node carries the call.
    async fn elsewhere(
        &self,
        who: uuid::Uuid,
        call_id: &str,
    ) -> Result<Option<CallServiceClient<Channel>>, Status> {
        match self.calls.carrier(who, call_id).await? {
            Carrier::Here => Ok(None),
            Carrier::Elsewhere(node) => self.nodes.client(&node).map(Some),
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchCallResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CallService for CallApi {
    type WatchCallStream = WatchStream;

    async fn start_call(
        &self,
        req: Request<pb::StartCallRequest>,
    ) -> Result<Response<pb::StartCallResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let video = match pb::CallMedia::try_from(r.media) {
            Ok(pb::CallMedia::Audio) => Some(false),
            Ok(pb::CallMedia::Video) => Some(true),
            _ => None,
        };
        let (view, ice) = self
            .calls
            .start(who.user_id, &r.conversation_id, video, r.request_id)
            .await?;
        Ok(Response::new(pb::StartCallResponse {
            call: Some(call(view)),
            ice_servers: ice.into_iter().map(ice_server).collect(),
        }))
    }

    async fn join_call(
        &self,
        req: Request<pb::JoinCallRequest>,
    ) -> Result<Response<pb::JoinCallResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        if let Some(mut carrier) = self.elsewhere(who.user_id, &req.get_ref().call_id).await? {
            return carrier.join_call(onward(req)?).await;
        }
        let (view, ice) = self.calls.join(who.user_id, &req.get_ref().call_id).await?;
        Ok(Response::new(pb::JoinCallResponse {
            call: Some(call(view)),
            ice_servers: ice.into_iter().map(ice_server).collect(),
        }))
    }

    async fn decline_call(
        &self,
        req: Request<pb::DeclineCallRequest>,
    ) -> Result<Response<pb::DeclineCallResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        if let Some(mut carrier) = self.elsewhere(who.user_id, &req.get_ref().call_id).await? {
            return carrier.decline_call(onward(req)?).await;
        }
        let view = self
            .calls
            .decline(who.user_id, &req.get_ref().call_id)
            .await?;
        Ok(Response::new(pb::DeclineCallResponse {
            call: Some(call(view)),
        }))
    }

    async fn leave_call(
        &self,
        req: Request<pb::LeaveCallRequest>,
    ) -> Result<Response<pb::LeaveCallResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        if let Some(mut carrier) = self.elsewhere(who.user_id, &req.get_ref().call_id).await? {
            return carrier.leave_call(onward(req)?).await;
        }
        let view = self
            .calls
            .leave(who.user_id, &req.get_ref().call_id)
            .await?;
        Ok(Response::new(pb::LeaveCallResponse {
            call: Some(call(view)),
        }))
    }

    async fn end_call(
        &self,
        req: Request<pb::EndCallRequest>,
    ) -> Result<Response<pb::EndCallResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        if let Some(mut carrier) = self.elsewhere(who.user_id, &req.get_ref().call_id).await? {
            return carrier.end_call(onward(req)?).await;
        }
        let view = self.calls.end(who.user_id, &req.get_ref().call_id).await?;
        Ok(Response::new(pb::EndCallResponse {
            call: Some(call(view)),
        }))
    }

    async fn get_call(
        &self,
        req: Request<pb::GetCallRequest>,
    ) -> Result<Response<pb::GetCallResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let view = self.calls.get(who.user_id, &req.get_ref().call_id).await?;
        Ok(Response::new(pb::GetCallResponse {
            call: Some(call(view)),
        }))
    }

    async fn list_calls(
        &self,
        req: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let page = CallPage {
            conversation_id: r.conversation_id,
            page_size: i32::try_from(r.page_size).unwrap_or(i32::MAX),
            page_token: r.page_token,
        };
        let (views, next_page_token) = self.calls.list(who.user_id, page).await?;
        Ok(Response::new(pb::ListCallsResponse {
            calls: views.into_iter().map(call).collect(),
            next_page_token,
        }))
    }

    async fn watch_call(
        &self,
        req: Request<pb::WatchCallRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        if let Some(mut carrier) = self.elsewhere(who.user_id, &req.get_ref().call_id).await? {
            let upstream = carrier.watch_call(onward(req)?).await?.into_inner();
            return Ok(Response::new(relayed(upstream)));
        }
        let items = self
            .calls
            .watch(who.user_id, &req.get_ref().call_id)
            .await?;
        let stream = ReceiverStream::new(items).map(|item| Ok(watch_item(item)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn send_signal(
        &self,
        req: Request<pb::SendSignalRequest>,
    ) -> Result<Response<pb::SendSignalResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        if let Some(mut carrier) = self.elsewhere(who.user_id, &req.get_ref().call_id).await? {
            return carrier.send_signal(onward(req)?).await;
        }
        let r = req.into_inner();
        use pb::send_signal_request::Signal;
        let signal = r.signal.map(|signal| match signal {
            Signal::Offer(sdp) => ClientSignal::Offer(sdp),
            Signal::Answer(answer) => ClientSignal::Answer {
                offer_id: answer.offer_id,
                sdp: answer.sdp,
            },
            Signal::IceCandidate(candidate) => ClientSignal::Candidate(candidate),
        });
        let reply = self.calls.signal(who.user_id, &r.call_id, signal).await?;
        Ok(Response::new(pb::SendSignalResponse {
            answer: reply.answer,
            void_up_to: reply.void_up_to,
        }))
    }

    async fn update_media_state(
        &self,
        req: Request<pb::UpdateMediaStateRequest>,
    ) -> Result<Response<pb::UpdateMediaStateResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        if let Some(mut carrier) = self.elsewhere(who.user_id, &req.get_ref().call_id).await? {
            return carrier.update_media_state(onward(req)?).await;
        }
        let r = req.into_inner();
        let media = r.media_state.map(|m| MediaState {
            audio_muted: m.audio_muted,
            video_muted: m.video_muted,
            screen_sharing: m.screen_sharing,
        });
        let quality = match pb::ReceiveQuality::try_from(r.receive_quality) {
            Ok(pb::ReceiveQuality::Low) => Some(Quality::Low),
            Ok(pb::ReceiveQuality::Medium) => Some(Quality::Medium),
            Ok(pb::ReceiveQuality::High) => Some(Quality::High),
            _ => None,
        };
        let view = self
            .calls
            .update_media(who.user_id, &r.call_id, media, quality)
            .await?;
        Ok(Response::new(pb::UpdateMediaStateResponse {
            call: Some(call(view)),
        }))
    }
}

/// The carrier's `WatchCall` stream, passed on; when the carrier goes away mid-stream,
/// the watcher is told to join again (`closing` with `SHUTDOWN`).
fn relayed(mut upstream: tonic::Streaming<pb::WatchCallResponse>) -> WatchStream {
    let (items, stream) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let item = match upstream.message().await {
                Ok(Some(item)) => item,
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(%status, "a call's carrier ended its stream");
                    watch_item(WatchItem::Closing(Closing::Shutdown))
                }
            };
            let last = matches!(item.event, Some(pb::watch_call_response::Event::Closing(_)));
            if items.send(Ok(item)).await.is_err() || last {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(stream))
}

fn ice_server(server: IceServer) -> pb::IceServer {
    pb::IceServer {
        urls: server.urls,
        username: server.username,
        credential: server.credential,
    }
}

fn watch_item(item: WatchItem) -> pb::WatchCallResponse {
    use pb::watch_call_response::Event;
    let event = match item {
        WatchItem::Call(view) => Event::Call(call(*view)),
        WatchItem::Offer { id, sdp } => Event::Offer(pb::SdpOffer { offer_id: id, sdp }),
        WatchItem::ActiveSpeaker(user) => Event::ActiveSpeaker(pb::ActiveSpeaker {
            user_id: user.map(|u| u.to_string()).unwrap_or_default(),
        }),
        WatchItem::Connected => Event::MediaConnected(pb::MediaConnected {}),
        WatchItem::Closing(reason) => {
            let reason = match reason {
                Closing::Ended => pb::CallClosingReason::Ended,
                Closing::Left => pb::CallClosingReason::Left,
                Closing::Replaced => pb::CallClosingReason::Replaced,
                Closing::MediaLost => pb::CallClosingReason::MediaLost,
                Closing::Shutdown => pb::CallClosingReason::Shutdown,
                Closing::Removed => pb::CallClosingReason::Removed,
            };
            Event::Closing(pb::CallClosing {
                reason: reason.into(),
            })
        }
    };
    pb::WatchCallResponse { event: Some(event) }
}

/// A call with the live part of its participants.
pub fn call(view: CallView) -> pb::Call {
    let CallView { call: record, live } = view;
    let mut out = call_record(record);
    for participant in &mut out.participants {
        let Some(live) = Uuid::parse_str(&participant.user_id)
            .ok()
            .and_then(|user| live.get(&user))
        else {
            continue;
        };
        participant.media_state = Some(pb::MediaState {
            audio_muted: live.media.audio_muted,
            video_muted: live.media.video_muted,
            screen_sharing: live.media.screen_sharing,
        });
        participant.stream_id = live.stream_id.map(|s| s.to_string()).unwrap_or_default();
    }
    out
}

/// A call's record as the contract spells it (no live part).
pub fn call_record(call: Call) -> pb::Call {
    let duration = call.duration().map(|d| prost_types::Duration {
        seconds: d.num_seconds(),
        nanos: d.subsec_nanos(),
    });
    let state = match (call.ended, call.answered) {
        (Some(_), _) => pb::CallState::Ended,
        (None, Some(_)) => pb::CallState::Active,
        (None, None) => pb::CallState::Ringing,
    };
    let (end_reason, ended_by) = match call.ended.map(|(_, ending)| ending) {
        None => (pb::CallEndReason::Unspecified, None),
        Some(Ending::EndedBy(user)) => (pb::CallEndReason::Completed, Some(user)),
        Some(Ending::Emptied) => (pb::CallEndReason::Completed, None),
        Some(Ending::Declined) => (pb::CallEndReason::Declined, None),
        Some(Ending::Missed) => (pb::CallEndReason::Missed, None),
    };
    pb::Call {
        call_id: call.id.to_string(),
        conversation_id: call.conversation.to_string(),
        message_id: call.message.to_string(),
        caller_user_id: call.caller.to_string(),
        media: media(call.video).into(),
        state: state.into(),
        end_reason: end_reason.into(),
        ended_by_user_id: ended_by.map(|u| u.to_string()).unwrap_or_default(),
        participants: call
            .members
            .into_iter()
            .map(|(user, p)| pb::CallParticipant {
                user_id: user.to_string(),
                state: presence(p.presence).into(),
                join_time: p.joined.map(convert::timestamp),
                media_state: None,
                stream_id: String::new(),
            })
            .collect(),
        start_time: Some(convert::timestamp(call.started)),
        answer_time: call.answered.map(convert::timestamp),
        end_time: call.ended.map(|(at, _)| convert::timestamp(at)),
        duration,
    }
}

/// What a call message carries before [`with_calls`] puts in the call as it is.
pub fn carried_call(call: CallRef, conversation_id: String, message_id: String) -> pb::Call {
    pb::Call {
        call_id: call.call_id.to_string(),
        conversation_id,
        message_id,
        media: media(call.video).into(),
        ..Default::default()
    }
}

fn media(video: bool) -> pb::CallMedia {
    if video {
        pb::CallMedia::Video
    } else {
        pb::CallMedia::Audio
    }
}

fn presence(p: Presence) -> pb::ParticipantState {
    match p {
        Presence::Ringing => pb::ParticipantState::Ringing,
        Presence::Joined => pb::ParticipantState::Joined,
        Presence::Left => pb::ParticipantState::Left,
        Presence::Declined => pb::ParticipantState::Declined,
        Presence::Missed => pb::ParticipantState::Missed,
    }
}

/// The call id a message carries, if it is a call message.
fn carried_call_id(message: &msg_pb::Message) -> Option<Uuid> {
    match message.content.as_ref()?.body.as_ref()? {
        msg_pb::message_content::Body::Call(call) => Uuid::parse_str(&call.call_id).ok(),
        _ => None,
    }
}

/// Puts each call as it is now into the call messages among `messages` (which
/// `convert::message` left with only the call's id and media). A failure to load them
/// leaves those: the message itself is delivered.
pub async fn with_calls<'a>(
    calls: &Calls,
    messages: impl IntoIterator<Item = &'a mut msg_pb::Message>,
) {
    let messages: Vec<&mut msg_pb::Message> = messages.into_iter().collect();
    let ids: Vec<Uuid> = messages.iter().filter_map(|m| carried_call_id(m)).collect();
    if ids.is_empty() {
        return;
    }
    let mut views: HashMap<Uuid, CallView> = match calls.views_by_id(&ids).await {
        Ok(views) => views,
        Err(err) => {
            tracing::warn!(error = %err, "cannot load the calls of messages");
            return;
        }
    };
    for message in messages {
        let Some(msg_pb::message_content::Body::Call(carried)) = message
            .content
            .as_mut()
            .and_then(|content| content.body.as_mut())
        else {
            continue;
        };
        let view = Uuid::parse_str(&carried.call_id)
            .ok()
            .and_then(|id| views.remove(&id));
        if let Some(view) = view {
            *carried = call(view);
        }
    }
}
