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
        // A poll message shows the poll as the member sees it when it is delivered (so a
        // replay carries the current tally): one read per poll message, none for others.
        let stream = ReceiverStream::new(items).then(move |item| {
            let polls = polls.clone();
            async move {
                let mut response = convert::stream_item(item, viewer);
                if let Some(message) = poll::event_message(&mut response) {
                    poll::with_polls(&polls, viewer, [message]).await;
                }
                Ok(response)
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
