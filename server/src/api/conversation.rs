//! `secureconnect.conversation.v1.ConversationService`.

use std::sync::Arc;

use secureconnect_proto::conversation::v1::{
    self as pb, conversation_service_server::ConversationService,
};
use tonic::{Request, Response, Status};

use super::{convert, mask_paths, poll, principal};
use crate::{
    auth::{Auth, Operation},
    chat::{Chat, CreateConversation, DetailsChanges},
    polls::Polls,
};

pub struct ConversationApi {
    pub auth: Arc<Auth>,
    pub chat: Arc<Chat>,
    pub polls: Arc<Polls>,
    pub calls: Arc<crate::calls::Calls>,
}

#[tonic::async_trait]
impl ConversationService for ConversationApi {
    async fn create_conversation(
        &self,
        req: Request<pb::CreateConversationRequest>,
    ) -> Result<Response<pb::CreateConversationResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let input = CreateConversation {
            kind: convert::kind_from_proto(r.r#type),
            member_user_ids: r.member_user_ids,
            title: r.title,
            description: r.description,
            end_to_end_encrypted: r.settings.is_some_and(|s| s.end_to_end_encrypted),
            request_id: r.request_id,
        };
        let view = self.chat.create_conversation(&who, input).await?;
        Ok(Response::new(pb::CreateConversationResponse {
            conversation: Some(convert::conversation(view)),
        }))
    }

    async fn get_conversation(
        &self,
        req: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let view = self
            .chat
            .get_conversation(&who, &req.into_inner().conversation_id)
            .await?;
        let mut conversation = convert::conversation(view);
        poll::with_polls(&self.polls, who.user_id, conversation.last_message.as_mut()).await;
        super::call::with_calls(&self.calls, conversation.last_message.as_mut()).await;
        Ok(Response::new(pb::GetConversationResponse {
            conversation: Some(conversation),
        }))
    }

    async fn list_conversations(
        &self,
        req: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let (views, next_page_token) = self
            .chat
            .list_conversations(&who, r.page_size, &r.page_token)
            .await?;
        let mut conversations: Vec<pb::Conversation> =
            views.into_iter().map(convert::conversation).collect();
        let last_messages = conversations
            .iter_mut()
            .filter_map(|c| c.last_message.as_mut());
        poll::with_polls(&self.polls, who.user_id, last_messages).await;
        let last_messages = conversations
            .iter_mut()
            .filter_map(|c| c.last_message.as_mut());
        super::call::with_calls(&self.calls, last_messages).await;
        Ok(Response::new(pb::ListConversationsResponse {
            conversations,
            next_page_token,
        }))
    }

    async fn update_conversation(
        &self,
        req: Request<pb::UpdateConversationRequest>,
    ) -> Result<Response<pb::UpdateConversationResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let paths = mask_paths(r.update_mask, &["title", "description", "avatar_url"])?;
        let c = r.conversation.unwrap_or_default();
        let has = |p: &str| paths.iter().any(|x| x == p);
        let changes = DetailsChanges {
            title: has("title").then_some(c.title),
            description: has("description").then_some(c.description),
            avatar_url: has("avatar_url").then_some(c.avatar_url),
        };
        let view = self
            .chat
            .update_conversation(&who, &c.conversation_id, changes)
            .await?;
        Ok(Response::new(pb::UpdateConversationResponse {
            conversation: Some(convert::conversation(view)),
        }))
    }

    async fn delete_conversation(
        &self,
        req: Request<pb::DeleteConversationRequest>,
    ) -> Result<Response<pb::DeleteConversationResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.chat
            .delete_conversation(&who, &req.into_inner().conversation_id)
            .await?;
        Ok(Response::new(pb::DeleteConversationResponse {}))
    }

    async fn add_members(
        &self,
        req: Request<pb::AddMembersRequest>,
    ) -> Result<Response<pb::AddMembersResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let added = self
            .chat
            .add_members(&who, &r.conversation_id, &r.user_ids)
            .await?;
        Ok(Response::new(pb::AddMembersResponse {
            added: added.into_iter().map(convert::member).collect(),
        }))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        self.chat
            .remove_member(&who, &r.conversation_id, &r.user_id)
            .await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn leave_conversation(
        &self,
        req: Request<pb::LeaveConversationRequest>,
    ) -> Result<Response<pb::LeaveConversationResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.chat
            .leave_conversation(&who, &req.into_inner().conversation_id)
            .await?;
        Ok(Response::new(pb::LeaveConversationResponse {}))
    }

    async fn update_member_role(
        &self,
        req: Request<pb::UpdateMemberRoleRequest>,
    ) -> Result<Response<pb::UpdateMemberRoleResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let role = convert::role_from_proto(r.role);
        let member = self
            .chat
            .update_member_role(&who, &r.conversation_id, &r.user_id, role)
            .await?;
        Ok(Response::new(pb::UpdateMemberRoleResponse {
            member: Some(convert::member(member)),
        }))
    }

    async fn list_members(
        &self,
        req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let (members, next_page_token) = self
            .chat
            .list_members(&who, &r.conversation_id, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListMembersResponse {
            members: members.into_iter().map(convert::member).collect(),
            next_page_token,
        }))
    }

    async fn mark_conversation_read(
        &self,
        req: Request<pb::MarkConversationReadRequest>,
    ) -> Result<Response<pb::MarkConversationReadResponse>, Status> {
        // Reading is what read-only tokens are for, so moving the read marker needs only Read.
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let read_seq = self.chat.mark_read(&who, &r.conversation_id, r.seq).await?;
        Ok(Response::new(pb::MarkConversationReadResponse { read_seq }))
    }
}
