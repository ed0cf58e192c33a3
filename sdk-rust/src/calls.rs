//! Calls: starting one without a hand-made request id, and the signaling steps of a
//! participant's media connection, for apps that bring their own WebRTC stack (str0m,
//! webrtc-rs, libwebrtc):
//!
//! 1. [`Client::start_call`] or `calls().join_call(…)`: the ICE servers to connect with;
//! 2. [`Client::watch_call`]: the call as it changes and the SFU's offers;
//! 3. [`Client::send_offer`] with the connection's offer: the SFU's answer; then answer
//!    each offer from the watch stream with [`Client::send_answer`].

use secureconnect_proto::call::v1::{
    Call, CallMedia, IceServer, MediaState, SdpAnswer, SendSignalRequest, SendSignalResponse,
    StartCallRequest, UpdateMediaStateRequest, WatchCallRequest, WatchCallResponse,
    send_signal_request::Signal,
};
use tonic::Streaming;

use crate::{Client, Error};

impl Client {
    /// Starts a call in a conversation under a fresh request id (so a retry by the
    /// transport below cannot start it twice): the call, ringing, and the ICE servers.
    pub async fn start_call(
        &self,
        conversation_id: impl Into<String>,
        media: CallMedia,
    ) -> Result<(Call, Vec<IceServer>), Error> {
        let request = StartCallRequest {
            conversation_id: conversation_id.into(),
            media: media.into(),
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        let started = self.calls().start_call(request).await?.into_inner();
        let call = started
            .call
            .ok_or_else(|| Error::from(tonic::Status::internal("StartCall answered no call")))?;
        Ok((call, started.ice_servers))
    }

    /// The call's stream for a participant: the call first, then its changes, the SFU's
    /// offers, the active speaker, and `closing` when it ends on purpose.
    pub async fn watch_call(
        &self,
        call_id: impl Into<String>,
    ) -> Result<Streaming<WatchCallResponse>, Error> {
        let request = WatchCallRequest {
            call_id: call_id.into(),
        };
        Ok(self.calls().watch_call(request).await?.into_inner())
    }

    /// The media connection's SDP offer (its first, or a new one to publish more or
    /// less): the SFU's answer, and up to which of the SFU's offers are void.
    pub async fn send_offer(
        &self,
        call_id: impl Into<String>,
        sdp: impl Into<String>,
    ) -> Result<SendSignalResponse, Error> {
        self.signal(call_id.into(), Signal::Offer(sdp.into())).await
    }

    /// The media connection's answer to the SFU's offer `offer_id`.
    pub async fn send_answer(
        &self,
        call_id: impl Into<String>,
        offer_id: u64,
        sdp: impl Into<String>,
    ) -> Result<(), Error> {
        let answer = SdpAnswer {
            offer_id,
            sdp: sdp.into(),
        };
        self.signal(call_id.into(), Signal::Answer(answer))
            .await
            .map(|_| ())
    }

    /// Says what the user sends now (the SFU stops forwarding what is muted).
    pub async fn set_media_state(
        &self,
        call_id: impl Into<String>,
        media_state: MediaState,
    ) -> Result<Call, Error> {
        let request = UpdateMediaStateRequest {
            call_id: call_id.into(),
            media_state: Some(media_state),
            receive_quality: 0,
        };
        let updated = self.calls().update_media_state(request).await?.into_inner();
        updated.call.ok_or_else(|| {
            Error::from(tonic::Status::internal("UpdateMediaState answered no call"))
        })
    }

    async fn signal(&self, call_id: String, signal: Signal) -> Result<SendSignalResponse, Error> {
        let request = SendSignalRequest {
            call_id,
            signal: Some(signal),
        };
        Ok(self.calls().send_signal(request).await?.into_inner())
    }
}
