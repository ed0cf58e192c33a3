//! `secureconnect.event.v1.EventService`.

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use secureconnect_proto::event::v1::{self as pb, event_service_server::EventService};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{convert, principal};
use crate::{
    auth::{Auth, Operation},
    events::Events,
};

pub struct EventApi {
    pub auth: Arc<Auth>,
    pub events: Arc<Events>,
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
        let stream =
            ReceiverStream::new(items).map(move |item| Ok(convert::stream_item(item, viewer)));
        Ok(Response::new(Box::pin(stream)))
    }
}
