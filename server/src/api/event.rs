//! `secureconnect.event.v1.EventService`.

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use secureconnect_proto::event::v1::{self as pb, event_service_server::EventService};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{convert, poll, principal};
use crate::{
    auth::{Auth, Operation},
    events::Events,
    polls::Polls,
};

pub struct EventApi {
    pub auth: Arc<Auth>,
    pub events: Arc<Events>,
    pub polls: Arc<Polls>,
    pub calls: Arc<crate::calls::Calls>,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for EventApi {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let items = self
            .events
            .subscribe(&who, &req.into_inner().cursor)
            .await?;
        let viewer = who.user_id;
        let polls = self.polls.clone();
        let calls = self.calls.clone();
        // A poll or call message shows the poll or call as it is when it is delivered (so
        // a replay carries the current tally, or a call that has ended): one read per poll
        // or call message, none for others.
        let stream = ReceiverStream::new(items).then(move |item| {
            let (polls, calls) = (polls.clone(), calls.clone());
            async move {
                let mut response = convert::stream_item(item, viewer);
                if let Some(message) = poll::event_message(&mut response) {
                    poll::with_polls(&polls, viewer, [&mut *message]).await;
                    super::call::with_calls(&calls, [message]).await;
                }
                Ok(response)
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
