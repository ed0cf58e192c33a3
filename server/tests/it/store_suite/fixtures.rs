//! What the behaviours set up again and again.

use std::collections::BTreeMap;

use chrono::Utc;
use secureconnect_server::{
    domain::{Content, ConversationKind, Details, Member, Role, Time},
    store::{NewConversation, NewMessage, NewUser, RequestKey, RequestKind},
};
use uuid::Uuid;

use super::Stores;

pub async fn user(stores: &Stores, name: &str) -> Uuid {
    let new = NewUser {
        email: format!("{name}@example.com"),
        username: name.into(),
        display_name: name.into(),
        password_hash: "not-a-real-hash".into(),
    };
    stores
        .users
        .create_user(new, Utc::now())
        .await
        .expect("user")
        .id
}

/// A group of `owner` and `member`, titled "suite".
pub fn group_of(owner: Uuid, member: Uuid, now: Time) -> NewConversation {
    NewConversation {
        kind: ConversationKind::Group,
        creator: owner,
        details: Details {
            title: "suite".into(),
            ..Details::default()
        },
        end_to_end_encrypted: false,
        members: vec![
            Member {
                user_id: owner,
                role: Role::Owner,
                join_time: now,
            },
            Member {
                user_id: member,
                role: Role::Member,
                join_time: now,
            },
        ],
        direct_key: None,
        request: None,
    }
}

/// Users `a` (owner) and `b` (member) and their group.
pub async fn group(stores: &Stores) -> (Uuid, Uuid, Uuid) {
    let (a, b) = (user(stores, "suite_a").await, user(stores, "suite_b").await);
    let now = Utc::now();
    let created = stores
        .chat
        .create_conversation(group_of(a, b, now), now)
        .await
        .expect("group");
    (a, b, created.value.id)
}

/// `user`'s request id `id` whose request said `what`.
pub fn request(user: Uuid, kind: RequestKind, id: &str, what: &str) -> RequestKey {
    RequestKey {
        user,
        kind,
        id: id.into(),
        fingerprint: what.as_bytes().to_vec(),
    }
}

/// A text message whose request id is `request_id` (and whose text names it).
pub fn message(conversation: Uuid, sender: Uuid, request_id: &str) -> NewMessage {
    NewMessage {
        conversation_id: conversation,
        sender_id: sender,
        content: Content::Text(format!("text of {request_id}")),
        metadata: BTreeMap::new(),
        reply_to: None,
        forwarded_from: None,
        attachments: Default::default(),
        request: request(
            sender,
            RequestKind::Message,
            request_id,
            &format!("{conversation} {request_id}"),
        ),
    }
}

/// Sends `count` messages from `sender`, one after another; returns their seqs.
pub async fn send_many(
    stores: &Stores,
    conversation: Uuid,
    sender: Uuid,
    count: usize,
) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in 0..count {
        let sent = stores
            .chat
            .send_message(message(conversation, sender, &format!("m{i}")), Utc::now())
            .await
            .expect("send");
        seqs.push(sent.value.seq);
    }
    seqs
}
