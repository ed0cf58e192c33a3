//! Shortcuts where the raw requests are clumsy: sending text, walking every page.

use futures::{Stream, TryStreamExt};
use secureconnect_proto::{
    conversation::v1::{Conversation, ListConversationsRequest},
    message::v1::{Message, MessageContent, SendMessageRequest, message_content},
};

use crate::{Client, Error};

impl Client {
    /// Sends `text` to a conversation under a fresh request id, so the server stores it
    /// once even if this call is retried by the transport below.
    pub async fn send_text(
        &self,
        conversation_id: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Message, Error> {
        self.send_files(conversation_id, text, Vec::new()).await
    }

    /// Sends drive files of the user's (see [`Client::upload_path`]) to a conversation,
    /// with a caption (may be empty), as [`Client::send_text`] does; the conversation's
    /// members may then download them (and an image's thumbnail) by file id.
    pub async fn send_files(
        &self,
        conversation_id: impl Into<String>,
        caption: impl Into<String>,
        file_ids: Vec<String>,
    ) -> Result<Message, Error> {
        let request = SendMessageRequest {
            conversation_id: conversation_id.into(),
            content: Some(MessageContent {
                body: Some(message_content::Body::Text(caption.into())),
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
            attachment_file_ids: file_ids,
            ..Default::default()
        };
        let sent = self.messages().send_message(request).await?.into_inner();
        sent.message
            .ok_or_else(|| Error::from(tonic::Status::internal("SendMessage answered no message")))
    }

    /// Every conversation of the user, most recent activity first, fetched a page at a
    /// time as the stream is read.
    pub fn list_all_conversations(
        &self,
    ) -> impl Stream<Item = Result<Conversation, Error>> + Send + 'static {
        let client = self.clone();
        let pages = futures::stream::try_unfold(Some(String::new()), move |token| {
            let client = client.clone();
            async move {
                let Some(page_token) = token else {
                    return Ok(None);
                };
                let request = ListConversationsRequest {
                    page_size: 100,
                    page_token,
                };
                let page = client
                    .conversations()
                    .list_conversations(request)
                    .await?
                    .into_inner();
                let next = (!page.next_page_token.is_empty()).then_some(page.next_page_token);
                Ok::<_, Error>(Some((
                    futures::stream::iter(page.conversations.into_iter().map(Ok)),
                    next,
                )))
            }
        });
        pages.try_flatten()
    }

    /// All of [`Self::list_all_conversations`] at once: what to re-read after a
    /// [`StreamEvent::Gap`](crate::StreamEvent::Gap).
    pub async fn all_conversations(&self) -> Result<Vec<Conversation>, Error> {
        self.list_all_conversations().try_collect().await
    }
}
