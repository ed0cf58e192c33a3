//! Domain → protobuf conversions (and the few proto → domain ones).

use prost_types::Timestamp;
use secureconnect_proto::{
    auth::v1 as auth_pb, conversation::v1 as conv_pb, drive::v1 as drive_pb, event::v1 as event_pb,
    message::v1 as msg_pb, poll::v1 as poll_pb, user::v1 as user_pb,
};

use crate::{
    auth::Tokens,
    domain::{
        Attachment, Change, Contact, ContactRequest, Content, ConversationKind, ConversationView,
        Details, Event, ImageSize, Member, Message, PollRef, Role, Session, Signal, Time, User,
        poll::Tally,
    },
    events::{ClosingReason, StreamItem, encode_cursor},
};

pub fn timestamp(time: Time) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn tokens(t: Tokens) -> auth_pb::TokenPair {
    auth_pb::TokenPair {
        access_token: t.access_token,
        access_token_expire_time: Some(timestamp(t.access_expire_time)),
        refresh_token: t.refresh_token,
        refresh_token_expire_time: Some(timestamp(t.refresh_expire_time)),
        session_id: t.session_id.to_string(),
    }
}

pub fn session(s: Session, current: uuid::Uuid) -> auth_pb::Session {
    auth_pb::Session {
        session_id: s.id.to_string(),
        device: Some(auth_pb::DeviceInfo {
            name: s.device_name,
            platform: s.device_platform,
        }),
        create_time: Some(timestamp(s.create_time)),
        last_refresh_time: Some(timestamp(s.last_refresh_time)),
        current: s.id == current,
    }
}

/// A profile; the email only when `own` (a user reading themselves).
pub fn user(u: User, own: bool) -> user_pb::User {
    user_pb::User {
        user_id: u.id.to_string(),
        username: u.username,
        display_name: u.display_name,
        avatar_url: u.avatar_url,
        email: if own { u.email } else { String::new() },
        create_time: Some(timestamp(u.create_time)),
    }
}

pub fn kind(k: ConversationKind) -> conv_pb::ConversationType {
    match k {
        ConversationKind::Direct => conv_pb::ConversationType::Direct,
        ConversationKind::Group => conv_pb::ConversationType::Group,
    }
}

pub fn kind_from_proto(raw: i32) -> Option<ConversationKind> {
    match conv_pb::ConversationType::try_from(raw).ok()? {
        conv_pb::ConversationType::Direct => Some(ConversationKind::Direct),
        conv_pb::ConversationType::Group => Some(ConversationKind::Group),
        conv_pb::ConversationType::Unspecified => None,
    }
}

pub fn role(r: Role) -> conv_pb::MemberRole {
    match r {
        Role::Member => conv_pb::MemberRole::Member,
        Role::Admin => conv_pb::MemberRole::Admin,
        Role::Owner => conv_pb::MemberRole::Owner,
    }
}

pub fn role_from_proto(raw: i32) -> Option<Role> {
    match conv_pb::MemberRole::try_from(raw).ok()? {
        conv_pb::MemberRole::Member => Some(Role::Member),
        conv_pb::MemberRole::Admin => Some(Role::Admin),
        conv_pb::MemberRole::Owner => Some(Role::Owner),
        conv_pb::MemberRole::Unspecified => None,
    }
}

pub fn member(m: Member) -> conv_pb::Member {
    conv_pb::Member {
        user_id: m.user_id.to_string(),
        role: role(m.role).into(),
        join_time: Some(timestamp(m.join_time)),
    }
}

pub fn conversation(view: ConversationView) -> conv_pb::Conversation {
    let c = view.conversation;
    conv_pb::Conversation {
        conversation_id: c.id.to_string(),
        r#type: kind(c.kind).into(),
        title: c.details.title,
        description: c.details.description,
        avatar_url: c.details.avatar_url,
        settings: Some(conv_pb::ConversationSettings {
            end_to_end_encrypted: c.end_to_end_encrypted,
        }),
        create_time: Some(timestamp(c.create_time)),
        last_activity_time: Some(timestamp(c.last_activity_time)),
        last_seq: c.last_seq,
        last_message: view.last_message.map(message),
        unread_count: view.unread_count,
        read_seq: view.membership.read_seq,
        role: role(view.membership.role).into(),
        member_count: c.member_count,
        peer_user_id: view
            .peer_user_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

pub fn content_from_proto(c: Option<msg_pb::MessageContent>) -> Option<Content> {
    match c?.body? {
        msg_pb::message_content::Body::Text(text) => Some(Content::Text(text)),
        msg_pb::message_content::Body::EncryptedPayload(bytes) => Some(Content::Encrypted(bytes)),
        // Refused by the service with a field violation: polls are not sent as messages.
        msg_pb::message_content::Body::Poll(poll) => Some(Content::Poll(PollRef {
            poll_id: uuid::Uuid::nil(),
            question: poll.question,
        })),
        // Refused by the service too: calls are started, not sent.
        msg_pb::message_content::Body::Call(_) => {
            Some(Content::Call(crate::domain::call::CallRef {
                call_id: uuid::Uuid::nil(),
                video: false,
            }))
        }
    }
}

/// A message; a poll message carries only what the message itself knows of its poll (its
/// id and question) until `api::poll::fill_polls` puts in the reader's view of it.
pub fn message(m: Message) -> msg_pb::Message {
    let (message_id, conversation_id) = (m.id.to_string(), m.conversation_id.to_string());
    let body = m.content.map(|c| match c {
        Content::Text(text) => msg_pb::message_content::Body::Text(text),
        Content::Encrypted(bytes) => msg_pb::message_content::Body::EncryptedPayload(bytes),
        Content::Poll(poll) => msg_pb::message_content::Body::Poll(poll_pb::Poll {
            poll_id: poll.poll_id.to_string(),
            conversation_id: conversation_id.clone(),
            message_id: message_id.clone(),
            question: poll.question,
            ..Default::default()
        }),
        Content::Call(call) => msg_pb::message_content::Body::Call(super::call::carried_call(
            call,
            conversation_id.clone(),
            message_id.clone(),
        )),
    });
    msg_pb::Message {
        message_id,
        conversation_id,
        seq: m.seq,
        sender_user_id: m.sender_id.to_string(),
        content: body.map(|body| msg_pb::MessageContent { body: Some(body) }),
        metadata: m.metadata.into_iter().collect(),
        reply_to_message_id: m.reply_to.map(|id| id.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(m.create_time)),
        edit_time: m.edit_time.map(timestamp),
        delete_time: m.delete_time.map(timestamp),
        forwarded_from: m.forwarded_from.map(|f| msg_pb::ForwardedFrom {
            original_sender_user_id: f.sender_id.to_string(),
            original_create_time: Some(timestamp(f.create_time)),
        }),
        attachments: m.attachments.into_iter().map(attachment).collect(),
    }
}

fn attachment(a: Attachment) -> msg_pb::Attachment {
    msg_pb::Attachment {
        file_id: a.file_id.to_string(),
        name: a.name,
        size: a.size,
        content_type: a.content_type,
        image: a.image.map(image_size),
    }
}

pub fn image_size(size: ImageSize) -> drive_pb::ImageInfo {
    drive_pb::ImageInfo {
        width: size.width,
        height: size.height,
    }
}

fn details(d: Details) -> event_pb::ConversationDetails {
    event_pb::ConversationDetails {
        title: d.title,
        description: d.description,
        avatar_url: d.avatar_url,
    }
}

fn change(c: Change, time: Time) -> event_pb::conversation_event::Change {
    use event_pb::conversation_event::Change as C;
    match c {
        Change::MessageSent(m) => C::MessageSent(message(m)),
        Change::MessageEdited(m) => C::MessageEdited(message(m)),
        Change::MessageDeleted(m) => C::MessageDeleted(message(m)),
        Change::Created {
            kind: k,
            details: d,
            end_to_end_encrypted,
            members,
        } => C::ConversationCreated(event_pb::ConversationCreated {
            r#type: kind(k).into(),
            details: Some(details(d)),
            settings: Some(conv_pb::ConversationSettings {
                end_to_end_encrypted,
            }),
            members: members.into_iter().map(member).collect(),
        }),
        Change::Updated(d) => C::ConversationUpdated(event_pb::ConversationUpdated {
            details: Some(details(d)),
        }),
        Change::MembersAdded(members) => C::MembersAdded(event_pb::MembersAdded {
            members: members.into_iter().map(member).collect(),
        }),
        Change::MemberRemoved { user_id, left } => C::MemberRemoved(event_pb::MemberRemoved {
            user_id: user_id.to_string(),
            left,
        }),
        Change::RoleUpdated(m) => C::MemberRoleUpdated(event_pb::MemberRoleUpdated {
            member: Some(member(m)),
        }),
        Change::PollClosed {
            poll_id,
            message_id,
            tally: t,
        } => C::PollClosed(event_pb::PollClosed {
            poll_id: poll_id.to_string(),
            message_id: message_id.to_string(),
            results: Some(tally(t)),
            closed_time: Some(timestamp(time)),
        }),
        Change::Deleted => C::ConversationDeleted(event_pb::ConversationDeleted {}),
        Change::CallEnded(ended) => C::CallEnded(event_pb::CallEnded {
            call: Some(super::call::call_record(*ended)),
        }),
    }
}

pub fn contact_request(r: ContactRequest) -> user_pb::ContactRequest {
    user_pb::ContactRequest {
        from_user: Some(user(r.from, false)),
        to_user: Some(user(r.to, false)),
        message: r.message,
        create_time: Some(timestamp(r.time)),
    }
}

pub fn contact(c: Contact) -> user_pb::Contact {
    user_pb::Contact {
        user: Some(user(c.user, false)),
        create_time: Some(timestamp(c.since)),
    }
}

fn user_event(
    time: Time,
    change: event_pb::user_event::Change,
) -> event_pb::subscribe_response::Event {
    event_pb::subscribe_response::Event::UserEvent(event_pb::UserEvent {
        create_time: Some(timestamp(time)),
        change: Some(change),
    })
}

/// Converts an event as `viewer` sees it (two-sided events show the other side).
fn event(e: &Event, viewer: uuid::Uuid) -> event_pb::subscribe_response::Event {
    use event_pb::subscribe_response::Event as E;
    use event_pb::user_event::Change as U;
    match e.clone() {
        Event::Conversation {
            conversation_id,
            seq,
            actor,
            time,
            change: c,
        } => E::ConversationEvent(event_pb::ConversationEvent {
            conversation_id: conversation_id.to_string(),
            seq,
            actor_user_id: actor.to_string(),
            create_time: Some(timestamp(time)),
            change: Some(change(c, time)),
        }),
        Event::ReadState {
            conversation_id,
            read_seq,
            time,
        } => user_event(
            time,
            U::ReadStateUpdated(event_pb::ReadStateUpdated {
                conversation_id: conversation_id.to_string(),
                read_seq,
            }),
        ),
        Event::ContactRequested(request) => {
            let time = request.time;
            user_event(time, U::ContactRequestReceived(contact_request(request)))
        }
        Event::ContactAdded {
            users: [a, b],
            time,
        } => {
            let other = if a.id == viewer { b } else { a };
            let added = Contact {
                user: other,
                since: time,
            };
            user_event(time, U::ContactAdded(contact(added)))
        }
        Event::ContactRemoved {
            users: [a, b],
            time,
        } => {
            let other = if a == viewer { b } else { a };
            let removed = event_pb::ContactRemoved {
                user_id: other.to_string(),
            };
            user_event(time, U::ContactRemoved(removed))
        }
    }
}

/// One stream item as `viewer` sees it.
pub fn stream_item(item: StreamItem, viewer: uuid::Uuid) -> event_pb::SubscribeResponse {
    use event_pb::subscribe_response::Event as E;
    let (cursor, event) = match item {
        StreamItem::CaughtUp { cursor } => (cursor, E::CaughtUp(event_pb::CaughtUp {})),
        StreamItem::Heartbeat { cursor } => (cursor, E::Heartbeat(event_pb::Heartbeat {})),
        StreamItem::Gap { cursor } => (cursor, E::Gap(event_pb::Gap {})),
        StreamItem::Event(delivered) => (delivered.cursor, event(&delivered.event, viewer)),
        StreamItem::Closing { reason, cursor } => {
            let reason = match reason {
                ClosingReason::SlowConsumer => event_pb::ClosingReason::SlowConsumer,
                ClosingReason::Shutdown => event_pb::ClosingReason::Shutdown,
                ClosingReason::SessionEnded => event_pb::ClosingReason::SessionEnded,
            };
            (
                cursor,
                E::Closing(event_pb::Closing {
                    reason: reason.into(),
                }),
            )
        }
        StreamItem::Signal { signal, cursor } => (
            cursor,
            match &*signal {
                Signal::Typing(signal) => E::Typing(event_pb::Typing {
                    conversation_id: signal.conversation_id.to_string(),
                    user_id: signal.user_id.to_string(),
                    typing: signal.typing,
                    expire_time: signal.expire_time.map(timestamp),
                }),
                Signal::CallUpdated(signal) => E::CallUpdated(event_pb::CallUpdated {
                    call: Some(super::call::call_record(signal.call.clone())),
                }),
                Signal::PollTally(signal) => E::PollTally(event_pb::PollTally {
                    conversation_id: signal.conversation_id.to_string(),
                    poll_id: signal.poll_id.to_string(),
                    results: Some(tally(signal.tally.clone())),
                }),
            },
        ),
    };
    event_pb::SubscribeResponse {
        cursor: encode_cursor(cursor),
        event: Some(event),
    }
}

/// A poll's tally as the contract spells it.
pub fn tally(t: Tally) -> poll_pb::PollResults {
    poll_pb::PollResults {
        counts: t
            .counts
            .into_iter()
            .map(|(option, votes)| poll_pb::OptionCount {
                option_id: option.to_string(),
                votes,
            })
            .collect(),
        total_voters: t.total_voters,
        version: t.version,
    }
}
