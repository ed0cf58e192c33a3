//! `secureconnect.message.v1.MessageService`.

use std::sync::Arc;

use secureconnect_proto::message::v1::{self as pb, message_service_server::MessageService};
use tonic::{Request, Response, Status};

use super::{convert, poll, principal};
use crate::{
    auth::{Auth, Operation},
    chat::{Chat, ForwardMessage, MessagePage, SendMessage},
    polls::Polls,
};

pub struct MessageApi {
    pub auth: Arc<Auth>,
    pub chat: Arc<Chat>,
    pub polls: Arc<Polls>,
    pub calls: Arc<crate::calls::Calls>,
}

#[tonic::async_trait]
impl MessageService for MessageApi {
    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let input = SendMessage {
            conversation_id: r.conversation_id,
            content: convert::content_from_proto(r.content),
            metadata: r.metadata.into_iter().collect(),
            reply_to_message_id: r.reply_to_message_id,
            request_id: r.request_id,
            attachment_file_ids: r.attachment_file_ids,
        };
        let message = self.chat.send_message(&who, input).await?;
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(convert::message(message)),
        }))
    }

    async fn get_message(
        &self,
        req: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let message = self
            .chat
            .get_message(&who, &r.conversation_id, &r.message_id)
            .await?;
        let mut message = convert::message(message);
        poll::with_polls(&self.polls, who.user_id, [&mut message]).await;
        super::call::with_calls(&self.calls, [&mut message]).await;
        Ok(Response::new(pb::GetMessageResponse {
            message: Some(message),
        }))
    }

    async fn list_messages(
        &self,
        req: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let page = MessagePage {
            conversation_id: r.conversation_id,
            forward: r.direction == i32::from(pb::ListDirection::Forward),
            anchor_seq: r.anchor_seq,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let (messages, next_page_token) = self.chat.list_messages(&who, page).await?;
        let mut messages: Vec<pb::Message> = messages.into_iter().map(convert::message).collect();
        poll::with_polls(&self.polls, who.user_id, &mut messages).await;
        super::call::with_calls(&self.calls, &mut messages).await;
        Ok(Response::new(pb::ListMessagesResponse {
            messages,
            next_page_token,
        }))
    }

    async fn forward_message(
        &self,
        req: Request<pb::ForwardMessageRequest>,
    ) -> Result<Response<pb::ForwardMessageResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let input = ForwardMessage {
            conversation_id: r.conversation_id,
            message_id: r.message_id,
            target_conversation_id: r.target_conversation_id,
            request_id: r.request_id,
        };
        let message = self.chat.forward_message(&who, input).await?;
        Ok(Response::new(pb::ForwardMessageResponse {
            message: Some(convert::message(message)),
        }))
    }

    async fn edit_message(
        &self,
        req: Request<pb::EditMessageRequest>,
    ) -> Result<Response<pb::EditMessageResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let content = convert::content_from_proto(r.content);
        let message = self
            .chat
            .edit_message(&who, &r.conversation_id, &r.message_id, content)
            .await?;
        Ok(Response::new(pb::EditMessageResponse {
            message: Some(convert::message(message)),
        }))
    }

    async fn delete_message(
        &self,
        req: Request<pb::DeleteMessageRequest>,
    ) -> Result<Response<pb::DeleteMessageResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let message = self
            .chat
            .delete_message(&who, &r.conversation_id, &r.message_id)
            .await?;
        Ok(Response::new(pb::DeleteMessageResponse {
            message: Some(convert::message(message)),
        }))
    }
}
