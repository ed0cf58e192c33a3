//! `secureconnect.presence.v1.PresenceService`.

use std::sync::Arc;

use secureconnect_proto::presence::v1::{self as pb, presence_service_server::PresenceService};
use tonic::{Request, Response, Status};

use super::{convert, principal};
use crate::{
    auth::{Auth, Operation},
    presence::Presence,
};

pub struct PresenceApi {
    pub auth: Arc<Auth>,
    pub presence: Arc<Presence>,
}

#[tonic::async_trait]
impl PresenceService for PresenceApi {
    async fn set_typing(
        &self,
        req: Request<pb::SetTypingRequest>,
    ) -> Result<Response<pb::SetTypingResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let expire_time = self
            .presence
            .set_typing(&who, &r.conversation_id, r.typing)
            .await?;
        Ok(Response::new(pb::SetTypingResponse {
            expire_time: expire_time.map(convert::timestamp),
        }))
    }

    async fn get_presence(
        &self,
        req: Request<pb::GetPresenceRequest>,
    ) -> Result<Response<pb::GetPresenceResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let presences = self
            .presence
            .presence(&who, &req.into_inner().user_ids)
            .await?
            .into_iter()
            .map(|p| pb::UserPresence {
                user_id: p.user_id.to_string(),
                state: if p.online {
                    pb::PresenceState::Online
                } else {
                    pb::PresenceState::Offline
                }
                .into(),
                last_seen_time: p.last_seen.map(convert::timestamp),
            })
            .collect();
        Ok(Response::new(pb::GetPresenceResponse { presences }))
    }
}
