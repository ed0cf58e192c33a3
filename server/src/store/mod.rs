//! Storage traits, one per aggregate, speaking domain types. The embedded default and
//! PostgreSQL share the `sql` implementation; in cluster mode message history can move to
//! ScyllaDB/Cassandra (`cql`), behind the same `ChatStore` contract.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    domain::{
        Contact, ContactRequest, Content, Conversation, ConversationKind, ConversationView,
        Details, DetailsChanges, FeedItem, Member, Membership, Message, Published, Role, Session,
        Time, TimelineItem, User,
    },
    error::Result,
};

pub mod calls;
pub mod cql;
pub mod drive;
pub mod polls;
pub mod sql;

pub use calls::{CallActor, CallChange, CallStore, NewCall};
pub use drive::{DriveStore, NewUpload};
pub use polls::{NewPoll, PollStore};

/// Fields of a new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
}

/// Profile fields to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// Accounts, profiles and blocks.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates an account; `AlreadyExists` when the email or username is taken.
    async fn create_user(&self, new: NewUser, now: Time) -> Result<User>;
    async fn user(&self, id: Uuid) -> Result<Option<User>>;
    /// The account and its password hash, by (normalised) email.
    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>>;
    async fn password_hash(&self, id: Uuid) -> Result<Option<String>>;
    async fn set_password_hash(&self, id: Uuid, hash: String) -> Result<()>;
    /// Changes the sign-in email; `AlreadyExists` when another account has it.
    async fn set_email(&self, id: Uuid, email: &str) -> Result<()>;
    async fn update_profile(&self, id: Uuid, update: ProfileUpdate) -> Result<User>;
    /// Users whose username or display name starts with `prefix` (lowercase), ordered by
    /// username, after `after_username`, skipping users who blocked `viewer`.
    async fn search_users(
        &self,
        viewer: Uuid,
        prefix: &str,
        after_username: Option<&str>,
        limit: u64,
    ) -> Result<Vec<User>>;
    /// Which of `ids` exist.
    async fn existing_users(&self, ids: &[Uuid]) -> Result<Vec<Uuid>>;
    async fn block(&self, blocker: Uuid, blocked: Uuid, now: Time) -> Result<()>;
    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<()>;
    /// Users `blocker` blocked, newest first, strictly older than `before`.
    async fn blocked_users(
        &self,
        blocker: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<(User, Time)>>;
    /// True when either user blocked the other.
    async fn is_blocked_between(&self, a: Uuid, b: Uuid) -> Result<bool>;
    /// Those of `candidates` who share a conversation with `viewer` or are their
    /// contacts, without a block either way (who may see each other's presence).
    async fn related_users(&self, viewer: Uuid, candidates: &[Uuid]) -> Result<Vec<Uuid>>;
    /// Erases the account: frees its email and username, clears its password and
    /// blocks, and hides it from lookups. The id stays, so old messages keep an author.
    async fn delete_user(&self, id: Uuid, now: Time) -> Result<()>;
}

/// What asking someone to become a contact led to.
#[derive(Debug, Clone)]
pub enum ContactOutcome {
    /// The request waits for the other user.
    Pending(ContactRequest),
    /// The other user had asked too: they are contacts now.
    Connected(Contact),
}

/// Contacts and pending contact requests. Changes reach both users' feeds.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Records `from`'s request to `to`, or connects them if `to` had asked `from`.
    /// `AlreadyExists` if they are contacts already.
    async fn request_contact(
        &self,
        from: Uuid,
        to: Uuid,
        message: String,
        now: Time,
    ) -> Result<Committed<ContactOutcome>>;
    /// Answers `from`'s request to `to`; `NotFound` when there is none.
    async fn respond_contact(
        &self,
        to: Uuid,
        from: Uuid,
        accept: bool,
        now: Time,
    ) -> Result<Committed<Option<Contact>>>;
    /// Pending requests to (`incoming`) or from `user`, newest first, before `before`.
    async fn contact_requests(
        &self,
        user: Uuid,
        incoming: bool,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<ContactRequest>>;
    /// `user`'s contacts, newest first, before `before`.
    async fn contacts(
        &self,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Contact>>;
    /// Removes the contact (both ways) and any pending request between the two.
    async fn remove_contact(&self, user: Uuid, other: Uuid, now: Time) -> Result<Committed<()>>;
    /// Every contact and pending request of `user` (account deletion).
    async fn remove_all_contacts(&self, user: Uuid) -> Result<()>;
}

/// A refresh token as stored: only its hash.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub token_hash: Vec<u8>,
    pub expire_time: Time,
}

/// What a single-use emailed code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    PasswordReset,
    EmailChange,
}

/// A single-use code sent by mail, stored as a hash.
#[derive(Debug, Clone)]
pub struct OneTimeCode {
    pub code_hash: Vec<u8>,
    pub purpose: CodePurpose,
    pub user_id: Uuid,
    /// The address being confirmed (email change only).
    pub new_email: Option<String>,
    pub expire_time: Time,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    /// The token was valid and is now replaced by the new one.
    Rotated(Session),
    /// The token had been used before: the session is revoked.
    Reused { session_id: Uuid },
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

/// Sessions, refresh tokens and revocations.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: Session, refresh: RefreshRecord) -> Result<()>;
    /// Atomically consumes `old_hash` and stores `new` for the same session.
    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new: RefreshRecord,
        now: Time,
    ) -> Result<RefreshOutcome>;
    /// Revokes one of `user`'s sessions; false when no such active session exists.
    async fn revoke_session(&self, user: Uuid, session: Uuid, now: Time) -> Result<bool>;
    /// Revokes all of `user`'s sessions but `keep` (none kept when `None`); returns the
    /// revoked ids.
    async fn revoke_other_sessions(
        &self,
        user: Uuid,
        keep: Option<Uuid>,
        now: Time,
    ) -> Result<Vec<Uuid>>;
    /// Active sessions of `user`, newest first, strictly older than `before`.
    async fn sessions(
        &self,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Session>>;
    /// Sessions revoked at or after `since` (to warm the revocation cache).
    async fn revoked_since(&self, since: Time) -> Result<Vec<Uuid>>;
    /// Stores an emailed code.
    async fn create_code(&self, code: OneTimeCode) -> Result<()>;
    /// Atomically uses up a code: `None` when unknown, used, expired or for another purpose.
    async fn consume_code(
        &self,
        code_hash: &[u8],
        purpose: CodePurpose,
        now: Time,
    ) -> Result<Option<OneTimeCode>>;
}

/// A new conversation.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub kind: ConversationKind,
    pub creator: Uuid,
    pub details: Details,
    pub end_to_end_encrypted: bool,
    /// Founding members, the creator included.
    pub members: Vec<Member>,
    /// Sorted pair of user ids for direct conversations (deduplication key).
    pub direct_key: Option<String>,
    /// The client's request id, if it sent one.
    pub request: Option<RequestKey>,
}

/// A new message.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: Uuid,
    pub sender_id: Uuid,
    pub content: Content,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub reply_to: Option<Uuid>,
    pub forwarded_from: Option<crate::domain::Forwarded>,
    pub attachments: NewAttachments,
    pub request: RequestKey,
}

impl NewMessage {
    /// The message this send becomes as the conversation's change number `seq` (its
    /// attachments are filled in by the write that attaches them).
    pub fn message(&self, seq: u64, now: Time) -> Message {
        Message {
            id: Uuid::now_v7(),
            conversation_id: self.conversation_id,
            seq,
            sender_id: self.sender_id,
            content: Some(self.content.clone()),
            metadata: self.metadata.clone(),
            reply_to: self.reply_to,
            create_time: now,
            edit_time: None,
            delete_time: None,
            forwarded_from: self.forwarded_from,
            attachments: Vec::new(),
        }
    }

    /// The message a poll or call posts: its content alone, sent under `request`.
    pub fn carrying(
        conversation_id: Uuid,
        sender_id: Uuid,
        content: Content,
        request: RequestKey,
    ) -> Self {
        Self {
            conversation_id,
            sender_id,
            content,
            metadata: Default::default(),
            reply_to: None,
            forwarded_from: None,
            attachments: Default::default(),
            request,
        }
    }
}

/// The drive files a new message attaches.
#[derive(Debug, Clone, Default)]
pub enum NewAttachments {
    #[default]
    None,
    /// Files of the sender's, by id: checked and read in the write (owned by the sender,
    /// files not folders, not in the trash), so a file trashed meanwhile cannot slip in.
    Own(Vec<Uuid>),
    /// A forwarded message's attachments, as they were.
    Copied(Vec<crate::domain::Attachment>),
}

impl NewAttachments {
    /// Whether the message carries no file.
    pub fn is_empty(&self) -> bool {
        match self {
            NewAttachments::None => true,
            NewAttachments::Own(files) => files.is_empty(),
            NewAttachments::Copied(files) => files.is_empty(),
        }
    }
}

/// What a client request id names: creating a message (sending or forwarding) or a
/// conversation. Ids are unique per user and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Message,
    Conversation,
}

impl RequestKind {
    /// Stable storage code.
    pub fn code(self) -> i16 {
        match self {
            RequestKind::Message => 1,
            RequestKind::Conversation => 2,
        }
    }
}

/// A client's request id (AIP-155) with a fingerprint of what the request asked for, so
/// a retry can be told apart from a different request that reuses the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub user: Uuid,
    pub kind: RequestKind,
    pub id: String,
    /// SHA-256 over the request's content (see `chat::fingerprint`).
    pub fingerprint: Vec<u8>,
}

/// What a request id was first used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstUse {
    /// Of the first request; `None` for ids recorded before fingerprints were kept.
    pub fingerprint: Option<Vec<u8>>,
    pub conversation_id: Uuid,
    /// The message or conversation the first request created.
    pub result_id: Uuid,
}

impl FirstUse {
    /// Ok when `request` is a retry of the first use; `REQUEST_ID_REUSED` when it asks
    /// for something else under the same id.
    pub fn check_retry_of(&self, request: &RequestKey) -> Result<()> {
        match &self.fingerprint {
            Some(first) if *first != request.fingerprint => {
                Err(crate::error::Error::AlreadyExists {
                    reason: crate::error::Reason::RequestIdReused,
                    message: "request_id was already used for a different request; use a new id",
                })
            }
            _ => Ok(()),
        }
    }
}

/// The result of a write, with the event to publish (none when the write was a no-op,
/// such as an idempotent retry). Dropping it unpublished would leave live streams without
/// the change until they resume, so the compiler insists it is used.
#[derive(Debug, Clone)]
#[must_use = "publish the committed change (bus::publish_committed), or streams miss it"]
pub struct Committed<T> {
    pub value: T,
    pub published: Option<Published>,
}

impl<T> Committed<T> {
    /// A write that changed nothing (an idempotent retry, a no-op): nothing to publish.
    pub fn unchanged(value: T) -> Self {
        Self {
            value,
            published: None,
        }
    }
}

/// Which way to page messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Backward,
    Forward,
}

/// Where a user's stream can resume from, read at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heads {
    /// The user's latest feed position.
    pub feed: u64,
    /// The shared timeline's latest position.
    pub timeline: u64,
    /// Timeline positions up to this one have been trimmed by retention.
    pub trimmed: u64,
}

/// Conversations, members, messages and the per-user event feed: one aggregate, because
/// every durable change to a conversation takes the next `seq` and lands in each member's
/// feed (or, fanned out on read, on the shared timeline) in the same transaction.
#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Creates a conversation, or returns the existing one for the same `direct_key` or
    /// request id with no event (`REQUEST_ID_REUSED` when that request asked for another).
    async fn create_conversation(
        &self,
        new: NewConversation,
        now: Time,
    ) -> Result<Committed<Conversation>>;
    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>>;
    async fn membership(&self, conversation: Uuid, user: Uuid) -> Result<Option<Membership>>;
    /// `user`'s conversations, latest activity first, strictly before `before`.
    async fn conversation_views(
        &self,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<ConversationView>>;
    async fn conversation_view(&self, user: Uuid, id: Uuid) -> Result<Option<ConversationView>>;
    /// Current members, oldest first, strictly after `after`.
    async fn members(
        &self,
        conversation: Uuid,
        after: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Member>>;
    /// Applies `changes` to the group's details.
    ///
    /// Every change below that names an `actor` checks, in the write itself after the
    /// conversation is locked, that the actor may make it ([`crate::domain::rules::authorize`], with
    /// `NOT_FOUND` for non-members): a removal or demotion that commits first always wins.
    async fn update_details(
        &self,
        conversation: Uuid,
        actor: Uuid,
        changes: DetailsChanges,
        now: Time,
    ) -> Result<Committed<Conversation>>;
    /// Deletes a conversation with its members and messages; the members' feeds get a
    /// final `Deleted` event.
    async fn delete_conversation(
        &self,
        conversation: Uuid,
        actor: Uuid,
        now: Time,
    ) -> Result<Committed<()>>;
    /// Adds the users that are not members yet; returns those added.
    async fn add_members(
        &self,
        conversation: Uuid,
        actor: Uuid,
        users: &[Uuid],
        now: Time,
    ) -> Result<Committed<Vec<Member>>>;
    /// Removes `user`; when `user` is the `actor`, they leave (refused with `LAST_OWNER`
    /// for a group's only owner while others remain).
    async fn remove_member(
        &self,
        conversation: Uuid,
        actor: Uuid,
        user: Uuid,
        now: Time,
    ) -> Result<Committed<()>>;
    async fn set_role(
        &self,
        conversation: Uuid,
        actor: Uuid,
        user: Uuid,
        role: Role,
        now: Time,
    ) -> Result<Committed<Member>>;
    /// Moves `user`'s read position forward to `seq` (never back); returns the position.
    async fn mark_read(
        &self,
        conversation: Uuid,
        user: Uuid,
        seq: u64,
        now: Time,
    ) -> Result<Committed<u64>>;
    /// What `request`'s id was first used for, if it was (within the idempotency window).
    async fn first_use(&self, request: &RequestKey) -> Result<Option<FirstUse>>;
    /// Appends a message, or returns the one already sent with the same request id
    /// (`REQUEST_ID_REUSED` when that one asked for something else). Checked in the
    /// write itself, after the conversation is locked: the sender is a member (else
    /// `NOT_FOUND`) and, in a direct conversation, no block stands between the two
    /// (`PERMISSION_DENIED`) — so a removal or block that commits first always wins.
    async fn send_message(&self, new: NewMessage, now: Time) -> Result<Committed<Message>>;
    async fn message(&self, conversation: Uuid, id: Uuid) -> Result<Option<Message>>;
    /// A page of messages for `member`: `NOT_FOUND` when they are not one, checked with
    /// the read (no removal can slip between the check and the page).
    async fn messages(
        &self,
        member: Uuid,
        conversation: Uuid,
        direction: Direction,
        anchor_seq: u64,
        limit: u64,
    ) -> Result<Vec<Message>>;
    async fn edit_message(
        &self,
        conversation: Uuid,
        id: Uuid,
        actor: Uuid,
        content: Content,
        now: Time,
    ) -> Result<Committed<Message>>;
    async fn delete_message(
        &self,
        conversation: Uuid,
        id: Uuid,
        actor: Uuid,
        now: Time,
    ) -> Result<Committed<Message>>;
    /// `user`'s feed items with `feed_seq` in `(after, after + limit]`, in order.
    async fn feed(&self, user: Uuid, after: u64, limit: u64) -> Result<Vec<FeedItem>>;
    /// Where `user`'s stream can resume from: their feed head and the shared timeline's,
    /// read at one instant.
    async fn stream_heads(&self, user: Uuid) -> Result<Heads>;
    /// `user`'s events on the shared timeline (conversations fanned out on read) at
    /// positions in `(after, until]`, at most `limit`, in order.
    async fn timeline(
        &self,
        user: Uuid,
        after: u64,
        until: u64,
        limit: u64,
    ) -> Result<Vec<TimelineItem>>;
    /// How many of `user`'s timeline events lie in `(after, until]`, up to `cap`.
    async fn timeline_backlog(&self, user: Uuid, after: u64, until: u64, cap: u64) -> Result<u64>;
}
