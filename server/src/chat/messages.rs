//! Sending, reading, editing and deleting messages.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Chat, request_ids::Fingerprint};
use crate::{
    auth::Principal,
    domain::{Content, Forwarded, Message, rules},
    error::{Error, Reason, Result},
    paging,
    store::{Committed, Direction, NewAttachments, NewMessage, RequestKey, RequestKind},
    validate::{self, Violations},
};

const MAX_METADATA_ENTRIES: usize = 16;
const MAX_METADATA_KEY_BYTES: usize = 64;
const MAX_METADATA_VALUE_BYTES: usize = 512;
/// Drive files one message may attach.
pub const MAX_ATTACHMENTS: usize = 10;

/// Message content as the client sent it (`None`: the oneof was not set).
pub type ContentInput = Option<Content>;

/// Input of `send_message`.
#[derive(Debug, Clone, Default)]
pub struct SendMessage {
    pub conversation_id: String,
    pub content: ContentInput,
    pub metadata: BTreeMap<String, String>,
    pub reply_to_message_id: String,
    pub request_id: String,
    pub attachment_file_ids: Vec<String>,
}

/// Input of `forward_message`.
#[derive(Debug, Clone, Default)]
pub struct ForwardMessage {
    pub conversation_id: String,
    pub message_id: String,
    pub target_conversation_id: String,
    pub request_id: String,
}

/// Input of `list_messages`.
#[derive(Debug, Clone, Default)]
pub struct MessagePage {
    pub conversation_id: String,
    pub forward: bool,
    pub anchor_seq: u64,
    pub page_size: i32,
    pub page_token: String,
}

impl Chat {
    pub async fn send_message(&self, who: &Principal, input: SendMessage) -> Result<Message> {
        let mut v = Violations::new();
        let conversation_id = v.id("conversation_id", &input.conversation_id);
        let attachments = attachment_ids(&mut v, &input.attachment_file_ids);
        let caption_only = !attachments.is_empty();
        self.check_content(&mut v, "content", input.content.as_ref(), caption_only);
        check_metadata(&mut v, &input.metadata);
        let reply_to = v.optional_id("reply_to_message_id", &input.reply_to_message_id);
        validate::request_id(&mut v, "request_id", &input.request_id, true);
        v.finish()?;
        let (Some(conversation_id), Some(content)) = (conversation_id, input.content) else {
            return Err(Error::invalid("content", "required"));
        };
        let request = Fingerprint::of("send")
            .id(conversation_id)
            .part(&content_bytes(&content))
            .map(&input.metadata)
            .optional_id(reply_to)
            .ids(&attachments)
            .key(who.user_id, RequestKind::Message, input.request_id);
        let new = NewMessage {
            conversation_id,
            sender_id: who.user_id,
            content,
            metadata: input.metadata,
            reply_to,
            forwarded_from: None,
            attachments: if attachments.is_empty() {
                NewAttachments::None
            } else {
                NewAttachments::Own(attachments)
            },
            request: request.clone(),
        };
        match self.try_send(who, new).await {
            Ok(committed) => Ok(self.publish(committed)),
            // A retry of a committed send gets its message back whatever stops a new send
            // now: it must not fail for being rate limited, or having left since. (Asked
            // only on refusal: every send would otherwise pay a read for the rare retry;
            // the write itself recognises a retry's request id and answers with the
            // original message.)
            Err(refused) => match self.sent_before(&request).await {
                Ok(Some(sent)) => Ok(sent),
                Ok(None) | Err(_) => Err(refused),
            },
        }
    }

    /// A valid send's checks and its write.
    async fn try_send(&self, who: &Principal, new: NewMessage) -> Result<Committed<Message>> {
        self.limit_sends(who).await?;
        // Whether the sender may post this here (a member, not blocked, content that fits
        // the conversation's encryption) is checked in the write itself, with no reads
        // before it. A reply's target is looked up first, by a member only: read inside the
        // write it would need a second database connection while holding the conversation
        // (with CQL history), which concurrent sends can exhaust the pool of.
        if let Some(reply_to) = new.reply_to {
            self.membership(new.conversation_id, who.user_id).await?;
            if self
                .store
                .message(new.conversation_id, reply_to)
                .await?
                .is_none()
            {
                return Err(Error::invalid(
                    "reply_to_message_id",
                    "no such message in this conversation",
                ));
            }
        }
        self.store.send_message(new, chrono::Utc::now()).await
    }

    pub async fn forward_message(&self, who: &Principal, input: ForwardMessage) -> Result<Message> {
        let mut v = Violations::new();
        let source = v.id("conversation_id", &input.conversation_id);
        let message_id = v.id("message_id", &input.message_id);
        let target = v.id("target_conversation_id", &input.target_conversation_id);
        validate::request_id(&mut v, "request_id", &input.request_id, true);
        v.finish()?;
        let (Some(source), Some(message_id), Some(target)) = (source, message_id, target) else {
            return Err(Error::NotFound("message"));
        };
        let request = Fingerprint::of("forward")
            .id(source)
            .id(message_id)
            .id(target)
            .key(who.user_id, RequestKind::Message, input.request_id);
        if let Some(sent) = self.sent_before(&request).await? {
            return Ok(sent);
        }
        self.membership(source, who.user_id).await?;
        let original = self
            .store
            .message(source, message_id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        let Some(content) = original.content else {
            return Err(Error::FailedPrecondition {
                reason: Reason::MessageDeleted,
                message: "a deleted message cannot be forwarded",
            });
        };
        match content {
            // Ciphertext is keyed to its conversation: only clients can re-encrypt it.
            Content::Encrypted(_) => {
                return Err(Error::FailedPrecondition {
                    reason: Reason::EncryptionMismatch,
                    message: "end-to-end encrypted messages are forwarded by re-encrypting on the client",
                });
            }
            // A poll's votes belong to its conversation.
            Content::Poll(_) => {
                return Err(Error::FailedPrecondition {
                    reason: Reason::PollMessage,
                    message: "a poll cannot be forwarded: create a new poll",
                });
            }
            // A call happens once, in its conversation.
            Content::Call(_) => {
                return Err(Error::FailedPrecondition {
                    reason: Reason::CallMessage,
                    message: "a call cannot be forwarded",
                });
            }
            Content::Text(_) => {}
        }
        self.limit_sends(who).await?;
        let attachments = original.attachments;
        let new = NewMessage {
            conversation_id: target,
            sender_id: who.user_id,
            content,
            metadata: original.metadata,
            reply_to: None,
            forwarded_from: Some(original.forwarded_from.unwrap_or(Forwarded {
                sender_id: original.sender_id,
                create_time: original.create_time,
            })),
            attachments: NewAttachments::Copied(attachments),
            request,
        };
        let committed = self.store.send_message(new, chrono::Utc::now()).await?;
        Ok(self.publish(committed))
    }

    /// The message an earlier use of `request`'s id created, when this is a retry of it;
    /// `REQUEST_ID_REUSED` when that request asked for something else.
    async fn sent_before(&self, request: &RequestKey) -> Result<Option<Message>> {
        let Some(first) = self.store.first_use(request).await? else {
            return Ok(None);
        };
        first.check_retry_of(request)?;
        // Gone only with its conversation.
        self.store
            .message(first.conversation_id, first.result_id)
            .await?
            .map(Some)
            .ok_or(Error::NotFound("conversation"))
    }

    /// Counts one send against the caller's per-second allowance (all nodes together).
    async fn limit_sends(&self, who: &Principal) -> Result<()> {
        self.limiter
            .check(super::send_limit(&self.limits), &who.user_id.to_string())
            .await
    }

    pub async fn get_message(
        &self,
        who: &Principal,
        conversation_id: &str,
        message_id: &str,
    ) -> Result<Message> {
        let (conversation_id, message_id) = parse_ids(conversation_id, message_id)?;
        self.membership(conversation_id, who.user_id).await?;
        self.store
            .message(conversation_id, message_id)
            .await?
            .ok_or(Error::NotFound("message"))
    }

    pub async fn list_messages(
        &self,
        who: &Principal,
        page: MessagePage,
    ) -> Result<(Vec<Message>, String)> {
        let mut v = Violations::new();
        let conversation_id = v.id("conversation_id", &page.conversation_id);
        let size = v.page_size("page_size", page.page_size, 50, 200);
        v.finish()?;
        let conversation_id = conversation_id.ok_or(Error::NotFound("conversation"))?;
        let (forward, anchor) = paging::decode_seq_key("page_token", &page.page_token)?
            .unwrap_or((page.forward, page.anchor_seq));
        let direction = if forward {
            Direction::Forward
        } else {
            Direction::Backward
        };
        let messages = self
            .store
            .messages(who.user_id, conversation_id, direction, anchor, size)
            .await?;
        let next = match messages.last() {
            // A backward page that reached seq 1 has nothing older to offer.
            Some(last) if messages.len() as u64 == size && (forward || last.seq > 1) => {
                paging::encode_seq_key(forward, last.seq)
            }
            _ => String::new(),
        };
        Ok((messages, next))
    }

    pub async fn edit_message(
        &self,
        who: &Principal,
        conversation_id: &str,
        message_id: &str,
        content: ContentInput,
    ) -> Result<Message> {
        let mut v = Violations::new();
        let ids = (
            v.id("conversation_id", conversation_id),
            v.id("message_id", message_id),
        );
        // An empty caption is checked in the write, against the message's attachments.
        self.check_content(&mut v, "content", content.as_ref(), true);
        v.finish()?;
        let ((Some(conversation_id), Some(message_id)), Some(content)) = (ids, content) else {
            return Err(Error::invalid("content", "required"));
        };
        // Whether the conversation is encrypted never changes, so it is checked here; who
        // may edit is checked in the write (the store, with `domain::rules`).
        let (conversation, _) = self.as_member(conversation_id, who.user_id).await?;
        rules::fits_encryption(conversation.end_to_end_encrypted, &content, false)?;
        let committed = self
            .store
            .edit_message(
                conversation_id,
                message_id,
                who.user_id,
                content,
                chrono::Utc::now(),
            )
            .await?;
        Ok(self.publish(committed))
    }

    pub async fn delete_message(
        &self,
        who: &Principal,
        conversation_id: &str,
        message_id: &str,
    ) -> Result<Message> {
        let (conversation_id, message_id) = parse_ids(conversation_id, message_id)?;
        // Who may delete (the author, or a group admin) is checked in the write.
        let committed = self
            .store
            .delete_message(conversation_id, message_id, who.user_id, chrono::Utc::now())
            .await?;
        Ok(self.publish(committed))
    }

    /// Checks content as sent; `caption_only`: the text may be empty (attachments carry
    /// the message).
    fn check_content(
        &self,
        v: &mut Violations,
        field: &str,
        content: Option<&Content>,
        caption_only: bool,
    ) {
        match content {
            None => v.add(field, "required: text or encrypted_payload"),
            Some(Content::Poll(_)) => v.add(
                &format!("{field}.poll"),
                "polls are created with PollService.CreatePoll",
            ),
            Some(Content::Call(_)) => v.add(
                &format!("{field}.call"),
                "calls are started with CallService.StartCall",
            ),
            Some(Content::Text(text)) => {
                if text.trim().is_empty() && !caption_only {
                    v.add(&format!("{field}.text"), "must not be empty");
                } else if text.len() > self.limits.max_text_bytes {
                    v.add(
                        &format!("{field}.text"),
                        format!("at most {} bytes", self.limits.max_text_bytes),
                    );
                }
            }
            Some(Content::Encrypted(bytes)) => {
                if bytes.is_empty() {
                    v.add(&format!("{field}.encrypted_payload"), "must not be empty");
                } else if bytes.len() > self.limits.max_encrypted_payload_bytes {
                    v.add(
                        &format!("{field}.encrypted_payload"),
                        format!("at most {} bytes", self.limits.max_encrypted_payload_bytes),
                    );
                }
            }
        }
    }
}

fn check_metadata(v: &mut Violations, metadata: &BTreeMap<String, String>) {
    if metadata.len() > MAX_METADATA_ENTRIES {
        v.add(
            "metadata",
            format!("at most {MAX_METADATA_ENTRIES} entries"),
        );
    }
    for (key, value) in metadata {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_BYTES {
            v.add(
                "metadata",
                format!("keys are 1 to {MAX_METADATA_KEY_BYTES} bytes"),
            );
        }
        if value.len() > MAX_METADATA_VALUE_BYTES {
            v.add(
                &format!("metadata[{key}]"),
                format!("values are at most {MAX_METADATA_VALUE_BYTES} bytes"),
            );
        }
    }
}

/// End-to-end encrypted conversations carry only ciphertext, others only text.
fn parse_ids(conversation_id: &str, message_id: &str) -> Result<(Uuid, Uuid)> {
    let mut v = Violations::new();
    let conversation = v.id("conversation_id", conversation_id);
    let message = v.id("message_id", message_id);
    v.finish()?;
    conversation.zip(message).ok_or(Error::NotFound("message"))
}

/// The content as fingerprinted: its kind, then its bytes.
fn content_bytes(content: &Content) -> Vec<u8> {
    let (kind, bytes): (u8, &[u8]) = match content {
        Content::Text(text) => (1, text.as_bytes()),
        Content::Encrypted(bytes) => (2, bytes),
        Content::Poll(poll) => (3, poll.poll_id.as_bytes()),
        Content::Call(call) => (4, call.call_id.as_bytes()),
    };
    let mut out = vec![kind];
    out.extend_from_slice(bytes);
    out
}

/// Parses `attachment_file_ids`: at most `MAX_ATTACHMENTS` ids, each once.
fn attachment_ids(v: &mut Violations, raw: &[String]) -> Vec<Uuid> {
    if raw.len() > MAX_ATTACHMENTS {
        v.add(
            "attachment_file_ids",
            format!("at most {MAX_ATTACHMENTS} files"),
        );
        return Vec::new();
    }
    let mut ids = Vec::with_capacity(raw.len());
    for (i, raw) in raw.iter().enumerate() {
        let field = format!("attachment_file_ids[{i}]");
        match v.id(&field, raw) {
            Some(id) if ids.contains(&id) => v.add(&field, "attached twice"),
            Some(id) => ids.push(id),
            None => {}
        }
    }
    ids
}
