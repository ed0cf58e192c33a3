//! `ChatStore`: timelines, feeds, request ids, membership and roles.

use std::sync::Arc;

use chrono::Utc;
use secureconnect_server::{
    domain::{Change, Content, DetailsChanges, Event, Role},
    error::{Error, Reason},
    store::{Direction, NewConversation, NewMessage, RequestKind},
};

use super::{Stores, fixtures::*};

fn reason_of<T: std::fmt::Debug>(result: &Result<T, Error>) -> Option<Reason> {
    match result {
        Err(
            Error::AlreadyExists { reason, .. }
            | Error::PermissionDenied { reason, .. }
            | Error::FailedPrecondition { reason, .. },
        ) => Some(*reason),
        _ => None,
    }
}

pub async fn creation_is_the_first_event_of_the_timeline(stores: &Stores) {
    let (a, b) = (user(stores, "a").await, user(stores, "b").await);
    let now = Utc::now();
    let first = NewConversation {
        request: Some(request(a, RequestKind::Conversation, "create-1", "suite")),
        ..group_of(a, b, now)
    };
    let created = stores
        .chat
        .create_conversation(first.clone(), now)
        .await
        .expect("create");
    assert_eq!(created.value.last_seq, 1, "creation is seq 1");
    let published = created.published.expect("an event");
    assert_eq!(published.recipients.len(), 2, "both members hear of it");
    // The same request again: the same conversation, nothing new to publish.
    let again = stores
        .chat
        .create_conversation(first, Utc::now())
        .await
        .expect("retry");
    assert_eq!(again.value.id, created.value.id);
    assert!(again.published.is_none());
}

pub async fn concurrent_sends_take_dense_seqs(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let chat = Arc::clone(&stores.chat);
        let sender = if i % 2 == 0 { a } else { b };
        tasks.push(tokio::spawn(async move {
            chat.send_message(message(conversation, sender, &format!("r{i}")), Utc::now())
                .await
                .expect("send")
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        let committed = task.await.expect("task");
        assert!(committed.published.is_some());
        seqs.push(committed.value.seq);
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (2..=41).collect::<Vec<u64>>(),
        "each seq exactly once"
    );
    let listed = stores
        .chat
        .messages(a, conversation, Direction::Forward, 0, 100)
        .await
        .expect("list");
    let listed: Vec<u64> = listed.iter().map(|m| m.seq).collect();
    assert_eq!(listed, (2..=41).collect::<Vec<u64>>());
}

pub async fn a_retry_returns_the_original_and_publishes_nothing(stores: &Stores) {
    let (a, _, conversation) = group(stores).await;
    let first = stores
        .chat
        .send_message(message(conversation, a, "r0"), Utc::now())
        .await
        .expect("send");
    send_many(stores, conversation, a, 2).await;
    let retry = stores
        .chat
        .send_message(message(conversation, a, "r0"), Utc::now())
        .await
        .expect("retry");
    assert!(retry.published.is_none());
    assert_eq!(retry.value, first.value);
    let listed = stores
        .chat
        .messages(a, conversation, Direction::Forward, 0, 100)
        .await
        .expect("list");
    assert_eq!(listed.len(), 3, "the retry sent nothing");
}

/// The same id for a different request (other content, or another conversation) is
/// refused and sends nothing; another user may use the same id.
pub async fn request_ids_are_per_user_across_conversations(stores: &Stores) {
    let (d, e) = (user(stores, "d").await, user(stores, "e").await);
    let now = Utc::now();
    let mut groups = Vec::new();
    for _ in 0..2 {
        let created = stores
            .chat
            .create_conversation(group_of(d, e, now), now)
            .await
            .expect("group");
        groups.push(created.value.id);
    }
    stores
        .chat
        .send_message(message(groups[0], d, "dup"), now)
        .await
        .expect("first use");
    for reuse in [
        NewMessage {
            content: Content::Text("something else".into()),
            request: request(d, RequestKind::Message, "dup", "something else"),
            ..message(groups[0], d, "dup")
        },
        message(groups[1], d, "dup"),
    ] {
        let refused = stores.chat.send_message(reuse, Utc::now()).await;
        assert_eq!(
            reason_of(&refused),
            Some(Reason::RequestIdReused),
            "{refused:?}"
        );
    }
    let second = stores
        .chat
        .messages(d, groups[1], Direction::Forward, 0, 10)
        .await
        .expect("list");
    assert!(second.is_empty(), "{second:?}");
    stores
        .chat
        .send_message(message(groups[1], e, "dup"), Utc::now())
        .await
        .expect("someone else's id");
}

pub async fn feeds_are_dense_and_in_timeline_order(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let outsider = user(stores, "outsider").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let chat = Arc::clone(&stores.chat);
        let sender = if i % 2 == 0 { a } else { b };
        tasks.push(tokio::spawn(async move {
            chat.send_message(message(conversation, sender, &format!("f{i}")), Utc::now())
                .await
                .expect("send")
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    for member in [a, b] {
        let head = stores.chat.stream_heads(member).await.expect("head").feed;
        assert_eq!(head, 21, "1 creation + 20 messages");
        let mut feed = Vec::new();
        let mut after = 0;
        while after < head {
            let page = stores.chat.feed(member, after, 7).await.expect("feed page");
            assert!(!page.is_empty());
            after = page.last().map(|i| i.feed_seq).unwrap_or(after);
            feed.extend(page);
        }
        let feed_seqs: Vec<u64> = feed.iter().map(|i| i.feed_seq).collect();
        assert_eq!(feed_seqs, (1..=21).collect::<Vec<u64>>());
        let timeline: Vec<u64> = feed
            .iter()
            .filter_map(|i| match &*i.event {
                Event::Conversation { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(
            timeline,
            (1..=21).collect::<Vec<u64>>(),
            "feed order is timeline order"
        );
    }
    assert_eq!(
        stores.chat.stream_heads(outsider).await.expect("head").feed,
        0
    );
}

pub async fn a_removed_member_hears_of_it_and_cannot_post(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let removed = stores
        .chat
        .remove_member(conversation, a, b, Utc::now())
        .await
        .expect("remove");
    let published = removed.published.expect("event");
    assert!(
        published.recipients.contains_key(&b),
        "the removed member hears of it"
    );
    stores
        .chat
        .send_message(message(conversation, a, "after"), Utc::now())
        .await
        .expect("send");
    // The write itself checks membership, whatever a check before the write saw.
    let refused = stores
        .chat
        .send_message(message(conversation, b, "removed"), Utc::now())
        .await;
    assert!(matches!(refused, Err(Error::NotFound(_))), "{refused:?}");
    assert_eq!(
        stores.chat.stream_heads(b).await.expect("head").feed,
        2,
        "creation, removal"
    );
    let last_for_b = stores.chat.feed(b, 1, 10).await.expect("feed");
    assert!(
        matches!(&*last_for_b[0].event, Event::Conversation { change: Change::MemberRemoved { user_id, left: false }, .. } if *user_id == b),
        "{last_for_b:?}"
    );
    assert_eq!(last_for_b.len(), 1, "nothing after the removal");
}

/// Whatever the caller checked before, the store refuses what the actor's role at the
/// moment of the write does not allow, and tells outsiders nothing.
pub async fn roles_are_checked_in_the_write(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let outsider = user(stores, "outsider").await;
    let now = Utc::now();
    let rename = || DetailsChanges {
        title: Some("renamed".into()),
        ..Default::default()
    };
    let by_member = stores
        .chat
        .update_details(conversation, b, rename(), now)
        .await;
    assert_eq!(
        reason_of(&by_member),
        Some(Reason::InsufficientRole),
        "{by_member:?}"
    );
    let by_outsider = stores
        .chat
        .update_details(conversation, outsider, rename(), now)
        .await;
    assert!(
        matches!(by_outsider, Err(Error::NotFound(_))),
        "{by_outsider:?}"
    );
    let removing_owner = stores.chat.remove_member(conversation, b, a, now).await;
    assert_eq!(reason_of(&removing_owner), Some(Reason::InsufficientRole));
    let deleting = stores.chat.delete_conversation(conversation, b, now).await;
    assert_eq!(reason_of(&deleting), Some(Reason::InsufficientRole));
    let promoting = stores
        .chat
        .set_role(conversation, b, b, Role::Owner, now)
        .await;
    assert_eq!(reason_of(&promoting), Some(Reason::InsufficientRole));
    // Messages: only the author edits; an admin may delete anyone's.
    let sent = stores
        .chat
        .send_message(message(conversation, a, "a's"), now)
        .await
        .expect("send")
        .value;
    let edit = |actor| {
        stores
            .chat
            .edit_message(conversation, sent.id, actor, Content::Text("x".into()), now)
    };
    assert_eq!(reason_of(&edit(b).await), Some(Reason::NotAuthor));
    assert!(matches!(edit(outsider).await, Err(Error::NotFound(_))));
    let delete_by_member = stores
        .chat
        .delete_message(conversation, sent.id, b, now)
        .await;
    assert_eq!(reason_of(&delete_by_member), Some(Reason::NotAuthor));
    stores
        .chat
        .set_role(conversation, a, b, Role::Admin, now)
        .await
        .expect("promote");
    stores
        .chat
        .delete_message(conversation, sent.id, b, now)
        .await
        .expect("an admin deletes");
    stores
        .chat
        .update_details(conversation, b, rename(), now)
        .await
        .expect("an admin renames");
    // None of the refused writes took a seq: creation, message, promotion, delete, rename.
    let found = stores.chat.conversation(conversation).await.expect("read");
    assert_eq!(found.map(|c| c.last_seq), Some(5));
}

pub async fn the_last_owner_cannot_leave_or_step_down(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let now = Utc::now();
    let leaving = stores.chat.remove_member(conversation, a, a, now).await;
    assert_eq!(reason_of(&leaving), Some(Reason::LastOwner), "{leaving:?}");
    let stepping_down = stores
        .chat
        .set_role(conversation, a, a, Role::Member, now)
        .await;
    assert_eq!(reason_of(&stepping_down), Some(Reason::LastOwner));
    // With a second owner, the first may go.
    stores
        .chat
        .set_role(conversation, a, b, Role::Owner, now)
        .await
        .expect("second owner");
    stores
        .chat
        .remove_member(conversation, a, a, now)
        .await
        .expect("leave");
    // Alone in the group, the last owner may leave.
    stores
        .chat
        .remove_member(conversation, b, b, now)
        .await
        .expect("the last one out");
}

/// Changing one field keeps the others, as stored at the moment of the write.
pub async fn details_changes_keep_the_other_fields(stores: &Stores) {
    let (a, _, conversation) = group(stores).await;
    let change = |title: Option<&str>, description: Option<&str>| DetailsChanges {
        title: title.map(Into::into),
        description: description.map(Into::into),
        avatar_url: None,
    };
    stores
        .chat
        .update_details(conversation, a, change(None, Some("about")), Utc::now())
        .await
        .expect("describe");
    let renamed = stores
        .chat
        .update_details(conversation, a, change(Some("renamed"), None), Utc::now())
        .await
        .expect("rename");
    assert_eq!(renamed.value.details.title, "renamed");
    assert_eq!(renamed.value.details.description, "about");
}

pub async fn read_state_only_moves_forward(stores: &Stores) {
    let (a, _, conversation) = group(stores).await;
    send_many(stores, conversation, a, 12).await;
    let read = |seq| stores.chat.mark_read(conversation, a, seq, Utc::now());
    assert_eq!(read(10).await.expect("read").value, 10);
    let back = read(5).await.expect("read");
    assert_eq!(back.value, 10);
    assert!(back.published.is_none());
    assert_eq!(
        read(1000).await.expect("past the end").value,
        13,
        "capped at the end"
    );
}

pub async fn deleting_twice_is_one_event_and_a_tombstone_cannot_be_edited(stores: &Stores) {
    let (a, _, conversation) = group(stores).await;
    let victim = stores
        .chat
        .send_message(message(conversation, a, "victim"), Utc::now())
        .await
        .expect("send")
        .value
        .id;
    let delete = || {
        stores
            .chat
            .delete_message(conversation, victim, a, Utc::now())
    };
    let first = delete().await.expect("delete");
    assert!(first.published.is_some());
    assert_eq!(first.value.content, None, "a tombstone");
    assert!(delete().await.expect("again").published.is_none());
    let edit = stores
        .chat
        .edit_message(
            conversation,
            victim,
            a,
            Content::Text("zombie".into()),
            Utc::now(),
        )
        .await;
    assert_eq!(reason_of(&edit), Some(Reason::MessageDeleted), "{edit:?}");
}

/// A page is read only for a member: a stranger and a member removed since get
/// `NOT_FOUND`, the same as for a conversation that does not exist.
pub async fn pages_are_for_members_only(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let stranger = user(stores, "stranger").await;
    send_many(stores, conversation, a, 2).await;
    let page = |who| {
        stores
            .chat
            .messages(who, conversation, Direction::Backward, 0, 10)
    };
    assert_eq!(page(b).await.expect("a member's page").len(), 2);
    assert!(matches!(page(stranger).await, Err(Error::NotFound(_))));
    stores
        .chat
        .remove_member(conversation, a, b, Utc::now())
        .await
        .expect("remove");
    let removed = page(b).await;
    assert!(matches!(removed, Err(Error::NotFound(_))), "{removed:?}");
    let missing = stores
        .chat
        .messages(a, uuid::Uuid::now_v7(), Direction::Backward, 0, 10)
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
}

pub async fn paging_backward_and_forward_meets_in_the_middle(stores: &Stores) {
    let (a, _, conversation) = group(stores).await;
    let seqs = send_many(stores, conversation, a, 9).await;
    assert_eq!(seqs, (2..=10).collect::<Vec<u64>>());
    let page = |direction, anchor, limit| {
        stores
            .chat
            .messages(a, conversation, direction, anchor, limit)
    };
    let seqs_of = |messages: Vec<secureconnect_server::domain::Message>| {
        messages.iter().map(|m| m.seq).collect::<Vec<_>>()
    };
    let newest = seqs_of(page(Direction::Backward, 0, 4).await.expect("newest"));
    assert_eq!(newest, vec![10, 9, 8, 7]);
    let before = seqs_of(page(Direction::Backward, 7, 4).await.expect("older"));
    assert_eq!(before, vec![6, 5, 4, 3]);
    let after = seqs_of(page(Direction::Forward, 3, 3).await.expect("newer"));
    assert_eq!(after, vec![4, 5, 6]);
    let end = seqs_of(page(Direction::Forward, 10, 3).await.expect("end"));
    assert!(end.is_empty());
}

pub async fn deleting_a_group_forgets_its_messages(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        let one = stores
            .chat
            .send_message(message(conversation, a, &format!("m{i}")), Utc::now())
            .await
            .expect("send");
        sent.push(one.value.id);
    }
    let deleted = stores
        .chat
        .delete_conversation(conversation, a, Utc::now())
        .await
        .expect("delete");
    let published = deleted.published.expect("event");
    assert!(published.recipients.contains_key(&b));
    assert!(
        stores
            .chat
            .conversation(conversation)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        stores
            .chat
            .membership(conversation, a)
            .await
            .expect("read")
            .is_none()
    );
    for id in sent {
        let read = stores.chat.message(conversation, id).await.expect("read");
        assert!(read.is_none(), "{read:?}");
    }
    let listed = stores
        .chat
        .messages(a, conversation, Direction::Forward, 0, 10)
        .await;
    assert!(matches!(listed, Err(Error::NotFound(_))), "{listed:?}");
}

/// Trimming keeps each feed to the replay window and drops events nobody can be replayed
/// any more — and never touches message history; request ids last the idempotency
/// window only.
pub async fn trimming_keeps_the_replay_window(stores: &Stores) {
    let (a, b, conversation) = group(stores).await;
    send_many(stores, conversation, a, 10).await;
    // Let any projection finish, so events held for it may go too.
    stores
        .chat
        .messages(a, conversation, Direction::Forward, 0, 100)
        .await
        .expect("list");
    let trimmed = stores.sql.trim_feeds(3).await.expect("trim");
    assert_eq!(trimmed.feed_rows, 2 * 8, "each member keeps 3 of 11");
    assert_eq!(trimmed.events, 8, "events no feed needs any more");
    for member in [a, b] {
        let head = stores.chat.stream_heads(member).await.expect("head").feed;
        assert_eq!(head, 11);
        let kept = stores.chat.feed(member, head - 3, 10).await.expect("feed");
        let kept: Vec<u64> = kept.iter().map(|i| i.feed_seq).collect();
        assert_eq!(kept, vec![9, 10, 11], "the replay window is intact");
    }
    assert_eq!(
        stores.sql.trim_feeds(3).await.expect("again"),
        Default::default(),
        "idempotent"
    );
    let history = stores
        .chat
        .messages(a, conversation, Direction::Forward, 0, 100)
        .await
        .expect("list");
    assert_eq!(history.len(), 10, "message history is not trimmed");

    let week_ago = Utc::now() - chrono::Duration::days(8);
    let old = stores
        .chat
        .send_message(message(conversation, a, "old-request"), week_ago)
        .await
        .expect("send");
    let trimmed = stores.sql.trim_feeds(1000).await.expect("trim");
    assert_eq!(trimmed.request_ids, 1);
    let retry = stores
        .chat
        .send_message(message(conversation, a, "old-request"), Utc::now())
        .await
        .expect("retry");
    assert_ne!(
        retry.value.id, old.value.id,
        "past the window a retry sends again"
    );
}
