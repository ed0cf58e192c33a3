//! Sending, reading, editing and deleting messages (the content lives in the
//! `MessageHistory`; the event in the timeline).

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use super::{
    timeline::Locked,
    timeline::{conversation_event, member_ids, number_change, record_change},
};
use crate::{
    domain::{
        Change, Content, ConversationKind, Message, Time,
        rules::{self, Act},
    },
    error::{Error, Reason, Result},
    store::{
        Committed, Direction, NewCall, NewMessage, NewPoll, RequestKey,
        sql::{
            SqlStore, accounts, calls, convert, drive, file_event,
            history::{self, MessageHistory, sqlite_pages},
            polls, requests,
            sqlite_writer::SqliteWriter,
        },
    },
};

/// Checks, inside a write that has locked the conversation, that `sender` may post there
/// now: a member (else `NOT_FOUND`, as for any non-member), and in a direct conversation
/// not blocked either way by the other member.
pub(super) async fn authorize_post<C: ConnectionTrait>(
    txn: &C,
    kind: ConversationKind,
    sender: Uuid,
    members: &[Uuid],
) -> Result<()> {
    if let Some(peer) = peer_to_check(kind, sender, members)?
        && accounts::blocked_between(txn, sender, *peer).await?
    {
        return Err(blocked());
    }
    Ok(())
}

/// The first half of [`authorize_post`]: `NOT_FOUND` for a non-member, else the member a
/// block with whom would stop the post (the peer of a direct conversation).
pub(in crate::store::sql) fn peer_to_check(
    kind: ConversationKind,
    sender: Uuid,
    members: &[Uuid],
) -> Result<Option<&Uuid>> {
    if !members.contains(&sender) {
        return Err(Error::NotFound("conversation"));
    }
    Ok(match kind {
        ConversationKind::Direct => members.iter().find(|m| **m != sender),
        ConversationKind::Group => None,
    })
}

/// Why a post between users who blocked each other fails.
pub(in crate::store::sql) fn blocked() -> Error {
    Error::PermissionDenied {
        reason: Reason::Blocked,
        message: "you cannot message this user",
    }
}

impl SqlStore {
    /// After a racing retry recorded `request` first (`conflict`): its message, when
    /// this is a retry of it.
    pub(super) async fn replay_message(
        &self,
        request: &RequestKey,
        conflict: String,
    ) -> Result<Committed<Message>> {
        let first = self
            .find_first_use(request)
            .await?
            .ok_or_else(|| Error::internal(conflict))?;
        first.check_retry_of(request)?;
        self.find_message(first.conversation_id, first.result_id)
            .await?
            .map(Committed::unchanged)
            .ok_or(Error::NotFound("message"))
    }

    /// Edit (`Some(content)`) or delete (`None`) a message, as a new timeline event.
    pub(super) async fn rewrite_message(
        &self,
        conversation: Uuid,
        id: Uuid,
        actor: Uuid,
        content: Option<Content>,
        now: Time,
    ) -> Result<Committed<Message>> {
        // Concurrent edits of one message queue here, each seeing what the previous left.
        let Locked {
            _writer,
            txn,
            seq,
            role,
        } = self.begin_change(conversation, actor, now).await?;
        let current = self
            .history
            .message_in(&txn, conversation, id, seq - 1)
            .await?
            .ok_or(Error::NotFound("message"))?;
        if let Some(Content::Text(text)) = &content
            && text.trim().is_empty()
            && current.attachments.is_empty()
        {
            return Err(Error::invalid("content.text", "must not be empty"));
        }
        let author = current.sender_id;
        let act = match content {
            Some(_) => Act::EditMessage { author },
            None => Act::DeleteMessage { author },
        };
        rules::authorize(actor, role, act)?;
        let carried_poll = match &current.content {
            Some(Content::Poll(poll)) => Some(poll.poll_id),
            _ => None,
        };
        if carried_poll.is_some() && content.is_some() {
            return Err(Error::FailedPrecondition {
                reason: Reason::PollMessage,
                message: "a poll's message is not edited: use the poll's own RPCs",
            });
        }
        if matches!(current.content, Some(Content::Call(_))) && content.is_some() {
            return Err(Error::FailedPrecondition {
                reason: Reason::CallMessage,
                message: "a call's message is not edited",
            });
        }
        if current.delete_time.is_some() {
            if content.is_none() {
                // Deleting twice is a no-op that returns the tombstone.
                return Ok(Committed::unchanged(current));
            }
            return Err(Error::FailedPrecondition {
                reason: Reason::MessageDeleted,
                message: "the message was deleted",
            });
        }
        let deleting = content.is_none();
        if let Some(poll) = carried_poll {
            polls::mark_deleted(&txn, poll).await?;
        }
        if deleting && !current.attachments.is_empty() {
            drive::detach(&txn, id).await?;
        }
        let message = history::rewritten(current, content, now);
        self.history.update(&txn, &message).await?;
        let change = if deleting {
            Change::MessageDeleted(message.clone())
        } else {
            Change::MessageEdited(message.clone())
        };
        let published = record_change(&txn, conversation, seq, actor, now, None, change).await?;
        txn.commit().await?;
        self.history.committed(&published).await;
        Ok(Committed {
            value: message,
            published: Some(published),
        })
    }
}

/// What a new message brings into being in the same write as itself.
pub(in crate::store::sql) enum Carried {
    Nothing,
    Poll(NewPoll),
    Call(NewCall),
}

/// What writing a new message came to (on either write path).
pub(in crate::store::sql) enum Written {
    Sent(Box<Committed<Message>>),
    /// The request id was used before (by this request, retried, or by another): nothing
    /// of this write may stay. Says what the database reported.
    RequestSeen(String),
}

impl Written {
    pub(in crate::store::sql) fn keep(&self) -> bool {
        matches!(self, Written::Sent(_))
    }
}

/// Sends `new`, with the poll or call it carries created in the same write. On SQLite the
/// write joins a group commit with whatever other sends are queued: plain sends on the
/// SQLite writer thread, the others on sea-orm.
pub(in crate::store::sql) async fn send(
    store: &SqlStore,
    new: NewMessage,
    carried: Carried,
    now: Time,
) -> Result<Committed<Message>> {
    let request = new.request.clone();
    let history = Arc::clone(&store.history);
    let written = match (&store.sqlite_writer, &store.group_commit) {
        (Some(writer), _) if matches!(carried, Carried::Nothing) && SqliteWriter::takes(&new) => {
            writer.send(new, now).await?
        }
        (_, Some(group)) => {
            group
                .write(Written::keep, move |txn| {
                    Box::pin(write_message(txn, history, new, carried, now))
                })
                .await?
        }
        (_, None) => {
            let txn = store.db.begin().await?;
            let written = write_message(&txn, history, new, carried, now).await?;
            if written.keep() {
                txn.commit().await?;
            }
            written
        }
    };
    match written {
        Written::Sent(committed) => {
            if let Some(published) = &committed.published {
                store.history.committed(published).await;
            }
            Ok(*committed)
        }
        Written::RequestSeen(conflict) => store.replay_message(&request, conflict).await,
    }
}

/// The write of a send, in `txn`: checks, the message, what it carries, its event.
async fn write_message(
    txn: &DatabaseTransaction,
    history: Arc<dyn MessageHistory>,
    new: NewMessage,
    carried: Carried,
    now: Time,
) -> Result<Written> {
    // Numbering locks the conversation: a removal or block committed before this point
    // is seen below, one after it waits for this send.
    let numbered = number_change(txn, new.conversation_id, now).await?;
    let seq = numbered.seq;
    let message = new.message(seq, now);
    // The request id first: a retry of a committed send gets its message back even
    // if the sender may no longer post.
    match requests::record(txn, &new.request, new.conversation_id, message.id, now).await {
        Ok(()) => {}
        Err(err) if convert::is_unique_violation(&err) => {
            return Ok(Written::RequestSeen(err.to_string()));
        }
        Err(err) => return Err(err.into()),
    }
    let recipients = member_ids(txn, new.conversation_id).await?;
    authorize_post(txn, numbered.kind, new.sender_id, &recipients).await?;
    let attaching = !new.attachments.is_empty();
    rules::fits_encryption(numbered.end_to_end_encrypted, &new.content, attaching)?;
    let mut message = message;
    message.attachments = drive::attach(txn, &message, new.attachments, now).await?;
    match (carried, &message.content) {
        (Carried::Poll(poll), Some(Content::Poll(carried))) => {
            polls::insert(txn, carried.poll_id, message.id, &poll, now).await?;
        }
        (Carried::Call(call), Some(Content::Call(carried))) => {
            calls::insert(txn, &call, carried.call_id, message.id, &recipients, now).await?;
        }
        _ => {}
    }
    history.insert(txn, &message, &new.request.id).await?;
    let change = Change::MessageSent(message.clone());
    let event = conversation_event(new.conversation_id, seq, new.sender_id, now, change);
    let published = file_event(txn, event, &recipients, now, numbered.fanout_on_read).await?;
    Ok(Written::Sent(Box::new(Committed {
        value: message,
        published: Some(published),
    })))
}

pub(super) async fn get(store: &SqlStore, conversation: Uuid, id: Uuid) -> Result<Option<Message>> {
    store.find_message(conversation, id).await
}

pub(super) async fn list(
    store: &SqlStore,
    member: Uuid,
    conversation: Uuid,
    direction: Direction,
    anchor_seq: u64,
    limit: u64,
) -> Result<Vec<Message>> {
    let not_member = || Error::NotFound("conversation");
    if let Some(reader) = &store.sqlite_reader {
        return sqlite_pages::member_page(
            reader,
            member,
            conversation,
            direction,
            anchor_seq,
            limit,
        )?
        .ok_or_else(not_member);
    }
    super::members::membership(store, conversation, member)
        .await?
        .ok_or_else(not_member)?;
    let last_seq = store.committed_seq(conversation).await?;
    store
        .history
        .messages(conversation, direction, anchor_seq, limit, last_seq)
        .await
}

pub(super) async fn edit(
    store: &SqlStore,
    conversation: Uuid,
    id: Uuid,
    actor: Uuid,
    content: Content,
    now: Time,
) -> Result<Committed<Message>> {
    store
        .rewrite_message(conversation, id, actor, Some(content), now)
        .await
}

pub(super) async fn delete(
    store: &SqlStore,
    conversation: Uuid,
    id: Uuid,
    actor: Uuid,
    now: Time,
) -> Result<Committed<Message>> {
    store
        .rewrite_message(conversation, id, actor, None, now)
        .await
}
