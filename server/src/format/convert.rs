//! Domain types ⇄ `secureconnect.storage.v1`. Decoding checks what protobuf cannot (id
//! lengths, known enum values) and fails with `INTERNAL`: a stored payload this node
//! cannot make sense of is a bug or corruption, never the caller's fault.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use secureconnect_proto::storage::v1::{self as pb, bus_envelope, conversation_event, event};
use serde::Deserialize;
use uuid::Uuid;

use super::call;
use crate::{
    domain::{
        Attachment, CallSignal, Change, ContactRequest, Content, ConversationKind, Details, Event,
        Forwarded, ImageSize, Member, Message, PollRef, Published, Role, Signal, TallySignal, Time,
        TimelineSpot, TypingSignal, User, poll::Tally,
    },
    error::{Error, Result},
};

/// What travels between nodes on the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum BusPayload {
    /// A committed event and each recipient's feed position.
    Event(Published),
    /// A session was revoked.
    SessionRevoked(Uuid),
    /// Something ephemeral: typing, a poll's tally.
    Signal(Signal),
}

pub(super) fn bad(what: &str) -> Error {
    Error::internal(format!("stored payload: {what}"))
}

pub(super) fn id(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| bad("an id is not 16 bytes"))
}

pub(super) fn optional_id(bytes: &[u8]) -> Result<Option<Uuid>> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        id(bytes).map(Some)
    }
}

pub(super) fn id_bytes(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub(super) fn time(t: Time) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

pub(super) fn time_from(t: Option<Timestamp>) -> Result<Time> {
    let t = t.ok_or_else(|| bad("a required time is missing"))?;
    let nanos = u32::try_from(t.nanos).map_err(|_| bad("negative nanoseconds"))?;
    DateTime::<Utc>::from_timestamp(t.seconds, nanos).ok_or_else(|| bad("time out of range"))
}

pub(super) fn optional_time_from(t: Option<Timestamp>) -> Result<Option<Time>> {
    t.map(|t| time_from(Some(t))).transpose()
}

fn role(role: Role) -> i32 {
    match role {
        Role::Member => pb::Role::Member as i32,
        Role::Admin => pb::Role::Admin as i32,
        Role::Owner => pb::Role::Owner as i32,
    }
}

fn role_from(code: i32) -> Result<Role> {
    match pb::Role::try_from(code) {
        Ok(pb::Role::Member) => Ok(Role::Member),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Owner) => Ok(Role::Owner),
        _ => Err(bad("unknown role")),
    }
}

fn member(m: &Member) -> pb::Member {
    pb::Member {
        user_id: id_bytes(m.user_id),
        role: role(m.role),
        join_time: time(m.join_time),
    }
}

fn member_from(m: pb::Member) -> Result<Member> {
    Ok(Member {
        user_id: id(&m.user_id)?,
        role: role_from(m.role)?,
        join_time: time_from(m.join_time)?,
    })
}

fn members_from(members: Vec<pb::Member>) -> Result<Vec<Member>> {
    members.into_iter().map(member_from).collect()
}

fn details(d: &Details) -> pb::Details {
    pb::Details {
        title: d.title.clone(),
        description: d.description.clone(),
        avatar_url: d.avatar_url.clone(),
    }
}

fn details_from(d: Option<pb::Details>) -> Details {
    let d = d.unwrap_or_default();
    Details {
        title: d.title,
        description: d.description,
        avatar_url: d.avatar_url,
    }
}

fn user(u: &User) -> pb::User {
    pb::User {
        id: id_bytes(u.id),
        email: u.email.clone(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        avatar_url: u.avatar_url.clone(),
        create_time: time(u.create_time),
    }
}

fn user_from(u: Option<pb::User>) -> Result<User> {
    let u = u.ok_or_else(|| bad("a user is missing"))?;
    Ok(User {
        id: id(&u.id)?,
        email: u.email,
        username: u.username,
        display_name: u.display_name,
        avatar_url: u.avatar_url,
        create_time: time_from(u.create_time)?,
    })
}

pub fn message_to_proto(m: &Message) -> pb::Message {
    pb::Message {
        id: id_bytes(m.id),
        conversation_id: id_bytes(m.conversation_id),
        seq: m.seq,
        sender_id: id_bytes(m.sender_id),
        content: m.content.as_ref().map(|c| match c {
            Content::Text(text) => pb::message::Content::Text(text.clone()),
            Content::Encrypted(bytes) => pb::message::Content::Encrypted(bytes.clone()),
            Content::Poll(poll) => pb::message::Content::Poll(pb::PollRef {
                poll_id: id_bytes(poll.poll_id),
                question: poll.question.clone(),
            }),
            Content::Call(call) => pb::message::Content::Call(call::call_ref_to_proto(call)),
        }),
        metadata: m.metadata.clone().into_iter().collect(),
        reply_to: m.reply_to.map(id_bytes).unwrap_or_default(),
        create_time: time(m.create_time),
        edit_time: m.edit_time.and_then(time),
        delete_time: m.delete_time.and_then(time),
        forwarded_from: m.forwarded_from.map(|f| pb::Forwarded {
            sender_id: id_bytes(f.sender_id),
            create_time: time(f.create_time),
        }),
        attachments: m.attachments.iter().map(attachment_to_proto).collect(),
    }
}

pub fn attachment_to_proto(a: &Attachment) -> pb::Attachment {
    let image = a.image.unwrap_or(ImageSize {
        width: 0,
        height: 0,
    });
    pb::Attachment {
        file_id: id_bytes(a.file_id),
        name: a.name.clone(),
        size: a.size,
        content_type: a.content_type.clone(),
        image_width: image.width,
        image_height: image.height,
    }
}

pub fn attachment_from_proto(a: pb::Attachment) -> Result<Attachment> {
    Ok(Attachment {
        file_id: id(&a.file_id)?,
        name: a.name,
        size: a.size,
        content_type: a.content_type,
        image: (a.image_width > 0 && a.image_height > 0).then_some(ImageSize {
            width: a.image_width,
            height: a.image_height,
        }),
    })
}

pub fn message_from_proto(m: pb::Message) -> Result<Message> {
    Ok(Message {
        id: id(&m.id)?,
        conversation_id: id(&m.conversation_id)?,
        seq: m.seq,
        sender_id: id(&m.sender_id)?,
        content: m
            .content
            .map(|c| {
                Ok::<_, Error>(match c {
                    pb::message::Content::Text(text) => Content::Text(text),
                    pb::message::Content::Encrypted(bytes) => Content::Encrypted(bytes),
                    pb::message::Content::Poll(poll) => Content::Poll(PollRef {
                        poll_id: id(&poll.poll_id)?,
                        question: poll.question,
                    }),
                    pb::message::Content::Call(call) => {
                        Content::Call(call::call_ref_from_proto(call)?)
                    }
                })
            })
            .transpose()?,
        metadata: m.metadata.into_iter().collect(),
        reply_to: optional_id(&m.reply_to)?,
        create_time: time_from(m.create_time)?,
        edit_time: optional_time_from(m.edit_time)?,
        delete_time: optional_time_from(m.delete_time)?,
        forwarded_from: m
            .forwarded_from
            .map(|f| {
                Ok::<_, Error>(Forwarded {
                    sender_id: id(&f.sender_id)?,
                    create_time: time_from(f.create_time)?,
                })
            })
            .transpose()?,
        attachments: m
            .attachments
            .into_iter()
            .map(attachment_from_proto)
            .collect::<Result<_>>()?,
    })
}

fn change(c: &Change) -> conversation_event::Change {
    use conversation_event::Change as P;
    match c {
        Change::MessageSent(m) => P::MessageSent(message_to_proto(m)),
        Change::MessageEdited(m) => P::MessageEdited(message_to_proto(m)),
        Change::MessageDeleted(m) => P::MessageDeleted(message_to_proto(m)),
        Change::Created {
            kind,
            details: d,
            end_to_end_encrypted,
            members,
        } => P::Created(pb::ConversationCreated {
            kind: match kind {
                ConversationKind::Direct => pb::ConversationKind::Direct as i32,
                ConversationKind::Group => pb::ConversationKind::Group as i32,
            },
            details: Some(details(d)),
            end_to_end_encrypted: *end_to_end_encrypted,
            members: members.iter().map(member).collect(),
        }),
        Change::Updated(d) => P::Updated(details(d)),
        Change::MembersAdded(members) => P::MembersAdded(pb::MembersAdded {
            members: members.iter().map(member).collect(),
        }),
        Change::MemberRemoved { user_id, left } => P::MemberRemoved(pb::MemberRemoved {
            user_id: id_bytes(*user_id),
            left: *left,
        }),
        Change::RoleUpdated(m) => P::RoleUpdated(member(m)),
        Change::Deleted => P::Deleted(pb::ConversationDeleted {}),
        Change::PollClosed {
            poll_id,
            message_id,
            tally: t,
        } => P::PollClosed(pb::PollClosed {
            poll_id: id_bytes(*poll_id),
            message_id: id_bytes(*message_id),
            tally: Some(tally(t)),
        }),
        Change::CallEnded(ended) => P::CallEnded(pb::CallEnded {
            call: Some(call::call_to_proto(ended)),
        }),
    }
}

fn tally(t: &Tally) -> pb::Tally {
    pb::Tally {
        counts: t
            .counts
            .iter()
            .map(|(option, votes)| pb::OptionCount {
                option_id: id_bytes(*option),
                votes: *votes,
            })
            .collect(),
        total_voters: t.total_voters,
        version: t.version,
    }
}

fn tally_from(t: Option<pb::Tally>) -> Result<Tally> {
    let t = t.ok_or_else(|| bad("a poll event without its tally"))?;
    Ok(Tally {
        counts: t
            .counts
            .into_iter()
            .map(|c| Ok((id(&c.option_id)?, c.votes)))
            .collect::<Result<_>>()?,
        total_voters: t.total_voters,
        version: t.version,
    })
}

fn change_from(c: Option<conversation_event::Change>) -> Result<Change> {
    use conversation_event::Change as P;
    Ok(
        match c.ok_or_else(|| bad("a conversation event without a change"))? {
            P::MessageSent(m) => Change::MessageSent(message_from_proto(m)?),
            P::MessageEdited(m) => Change::MessageEdited(message_from_proto(m)?),
            P::MessageDeleted(m) => Change::MessageDeleted(message_from_proto(m)?),
            P::Created(c) => Change::Created {
                kind: match pb::ConversationKind::try_from(c.kind) {
                    Ok(pb::ConversationKind::Direct) => ConversationKind::Direct,
                    Ok(pb::ConversationKind::Group) => ConversationKind::Group,
                    _ => return Err(bad("unknown conversation kind")),
                },
                details: details_from(c.details),
                end_to_end_encrypted: c.end_to_end_encrypted,
                members: members_from(c.members)?,
            },
            P::Updated(d) => Change::Updated(details_from(Some(d))),
            P::MembersAdded(added) => Change::MembersAdded(members_from(added.members)?),
            P::MemberRemoved(removed) => Change::MemberRemoved {
                user_id: id(&removed.user_id)?,
                left: removed.left,
            },
            P::RoleUpdated(m) => Change::RoleUpdated(member_from(m)?),
            P::Deleted(_) => Change::Deleted,
            P::PollClosed(closed) => Change::PollClosed {
                poll_id: id(&closed.poll_id)?,
                message_id: id(&closed.message_id)?,
                tally: tally_from(closed.tally)?,
            },
            P::CallEnded(ended) => Change::CallEnded(Box::new(call::call_from_proto(ended.call)?)),
        },
    )
}

pub fn event_to_proto(e: &Event) -> pb::Event {
    let kind = match e {
        Event::Conversation {
            conversation_id,
            seq,
            actor,
            time: t,
            change: c,
        } => event::Kind::Conversation(pb::ConversationEvent {
            conversation_id: id_bytes(*conversation_id),
            seq: *seq,
            actor_id: id_bytes(*actor),
            time: time(*t),
            change: Some(change(c)),
        }),
        Event::ReadState {
            conversation_id,
            read_seq,
            time: t,
        } => event::Kind::ReadState(pb::ReadState {
            conversation_id: id_bytes(*conversation_id),
            read_seq: *read_seq,
            time: time(*t),
        }),
        Event::ContactRequested(request) => event::Kind::ContactRequested(pb::ContactRequested {
            from: Some(user(&request.from)),
            to: Some(user(&request.to)),
            message: request.message.clone(),
            time: time(request.time),
        }),
        Event::ContactAdded { users, time: t } => event::Kind::ContactAdded(pb::ContactAdded {
            users: users.iter().map(user).collect(),
            time: time(*t),
        }),
        Event::ContactRemoved { users, time: t } => {
            event::Kind::ContactRemoved(pb::ContactRemoved {
                user_ids: users.iter().map(|u| id_bytes(*u)).collect(),
                time: time(*t),
            })
        }
    };
    pb::Event { kind: Some(kind) }
}

fn pair<T>(items: Vec<T>) -> Result<[T; 2]> {
    <[T; 2]>::try_from(items).map_err(|_| bad("a contact event without exactly two users"))
}

pub fn event_from_proto(e: pb::Event) -> Result<Event> {
    Ok(
        match e.kind.ok_or_else(|| bad("an event of unknown kind"))? {
            event::Kind::Conversation(c) => Event::Conversation {
                conversation_id: id(&c.conversation_id)?,
                seq: c.seq,
                actor: id(&c.actor_id)?,
                time: time_from(c.time)?,
                change: change_from(c.change)?,
            },
            event::Kind::ReadState(r) => Event::ReadState {
                conversation_id: id(&r.conversation_id)?,
                read_seq: r.read_seq,
                time: time_from(r.time)?,
            },
            event::Kind::ContactRequested(r) => Event::ContactRequested(ContactRequest {
                from: user_from(r.from)?,
                to: user_from(r.to)?,
                message: r.message,
                time: time_from(r.time)?,
            }),
            event::Kind::ContactAdded(a) => Event::ContactAdded {
                users: pair(
                    a.users
                        .into_iter()
                        .map(|u| user_from(Some(u)))
                        .collect::<Result<Vec<_>>>()?,
                )?,
                time: time_from(a.time)?,
            },
            event::Kind::ContactRemoved(r) => Event::ContactRemoved {
                users: pair(
                    r.user_ids
                        .iter()
                        .map(|u| id(u))
                        .collect::<Result<Vec<_>>>()?,
                )?,
                time: time_from(r.time)?,
            },
        },
    )
}

pub fn bus_to_proto(node: Uuid, payload: &BusPayload) -> pb::BusEnvelope {
    let body = match payload {
        BusPayload::Event(published) => bus_envelope::Body::Published(pb::Published {
            event: Some(event_to_proto(&published.event)),
            recipients: published
                .recipients
                .iter()
                .map(|(user, feed_seq)| pb::Recipient {
                    user_id: id_bytes(*user),
                    feed_seq: *feed_seq,
                })
                .collect(),
            timeline_position: published.timeline.map_or(0, |spot| spot.position),
            opens_timeline: published.timeline.is_some_and(|spot| spot.opens),
        }),
        BusPayload::SessionRevoked(session) => {
            bus_envelope::Body::RevokedSessionId(id_bytes(*session))
        }
        BusPayload::Signal(Signal::Typing(signal)) => bus_envelope::Body::Typing(pb::Typing {
            conversation_id: id_bytes(signal.conversation_id),
            user_id: id_bytes(signal.user_id),
            typing: signal.typing,
            expire_time: signal.expire_time.and_then(time),
            recipients: signal.recipients.iter().map(|u| id_bytes(*u)).collect(),
        }),
        BusPayload::Signal(Signal::CallUpdated(signal)) => {
            bus_envelope::Body::CallUpdated(pb::CallUpdated {
                call: Some(call::call_to_proto(&signal.call)),
                recipients: signal.recipients.iter().map(|u| id_bytes(*u)).collect(),
            })
        }
        BusPayload::Signal(Signal::PollTally(signal)) => {
            bus_envelope::Body::PollTally(pb::PollTally {
                conversation_id: id_bytes(signal.conversation_id),
                poll_id: id_bytes(signal.poll_id),
                tally: Some(tally(&signal.tally)),
                recipients: signal.recipients.iter().map(|u| id_bytes(*u)).collect(),
            })
        }
    };
    pb::BusEnvelope {
        node_id: id_bytes(node),
        body: Some(body),
    }
}

pub fn bus_from_proto(envelope: pb::BusEnvelope) -> Result<(Uuid, BusPayload)> {
    let node = id(&envelope.node_id)?;
    let payload = match envelope
        .body
        .ok_or_else(|| bad("a bus message of unknown kind"))?
    {
        bus_envelope::Body::Published(p) => BusPayload::Event(Published {
            event: Arc::new(event_from_proto(
                p.event
                    .ok_or_else(|| bad("a published message without its event"))?,
            )?),
            recipients: p
                .recipients
                .into_iter()
                .map(|r| Ok((id(&r.user_id)?, r.feed_seq)))
                .collect::<Result<HashMap<_, _>>>()?,
            timeline: (p.timeline_position > 0).then_some(TimelineSpot {
                position: p.timeline_position,
                opens: p.opens_timeline,
            }),
        }),
        bus_envelope::Body::RevokedSessionId(session) => BusPayload::SessionRevoked(id(&session)?),
        bus_envelope::Body::Typing(t) => BusPayload::Signal(Signal::Typing(TypingSignal {
            conversation_id: id(&t.conversation_id)?,
            user_id: id(&t.user_id)?,
            typing: t.typing,
            expire_time: optional_time_from(t.expire_time)?,
            recipients: t.recipients.iter().map(|u| id(u)).collect::<Result<_>>()?,
        })),
        bus_envelope::Body::CallUpdated(c) => {
            BusPayload::Signal(Signal::CallUpdated(Box::new(CallSignal {
                call: call::call_from_proto(c.call)?,
                recipients: c.recipients.iter().map(|u| id(u)).collect::<Result<_>>()?,
            })))
        }
        bus_envelope::Body::PollTally(t) => BusPayload::Signal(Signal::PollTally(TallySignal {
            conversation_id: id(&t.conversation_id)?,
            poll_id: id(&t.poll_id)?,
            tally: tally_from(t.tally)?,
            recipients: t.recipients.iter().map(|u| id(u)).collect::<Result<_>>()?,
        })),
    };
    Ok((node, payload))
}

/// The v0 (JSON) bus envelope, as nodes wrote it before formats were versioned: read only.
pub fn bus_from_v0_json(json: &[u8]) -> Result<(Uuid, BusPayload)> {
    #[derive(Deserialize)]
    struct Envelope {
        node: Uuid,
        body: Wire,
    }
    #[derive(Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Wire {
        Event {
            event: Box<Event>,
            recipients: HashMap<Uuid, u64>,
        },
        SessionRevoked {
            session: Uuid,
        },
        Typing(TypingSignal),
    }
    let envelope: Envelope =
        serde_json::from_slice(json).map_err(|e| bad(&format!("v0 bus message: {e}")))?;
    let payload = match envelope.body {
        Wire::Event { event, recipients } => BusPayload::Event(Published {
            event: Arc::from(event),
            recipients,
            timeline: None,
        }),
        Wire::SessionRevoked { session } => BusPayload::SessionRevoked(session),
        Wire::Typing(signal) => BusPayload::Signal(Signal::Typing(signal)),
    };
    Ok((envelope.node, payload))
}
