//! The contract every `ChatStore` implementation must keep, checked directly at the trait:
//! SQLite always; on the services pass PostgreSQL, and PostgreSQL with message history in
//! Cassandra (run from several store instances, like several nodes). What matters most: per-conversation `seq` and per-user `feed_seq` stay
//! dense and strictly increasing under concurrent writers, and retries change nothing.

use std::{collections::BTreeMap, sync::Arc};

use chrono::Utc;
use secureconnect_server::{
    config::DatabaseConfig,
    domain::{Change, Content, ConversationKind, Details, Event, Member, Role},
    error::{Error, Reason},
    store::{
        ChatStore, Direction, NewConversation, NewMessage, NewUser, RequestKey, RequestKind,
        UserStore, cql::CqlHistory, sql::SqlStore,
    },
};
use uuid::Uuid;

async fn sqlite() -> (Arc<SqlStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("suite.db").display()
    );
    (
        SqlStore::connect(&url, &DatabaseConfig::default(), None)
            .await
            .expect("sqlite"),
        dir,
    )
}

async fn user(store: &SqlStore, name: &str) -> Uuid {
    let new = NewUser {
        email: format!("{name}@example.com"),
        username: name.into(),
        display_name: name.into(),
        password_hash: "not-a-real-hash".into(),
    };
    store.create_user(new, Utc::now()).await.expect("user").id
}

/// A group of `owner` and `member`, titled "suite".
fn group_of(owner: Uuid, member: Uuid, now: chrono::DateTime<Utc>) -> NewConversation {
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

/// `user`'s request id `id` whose request said `what`.
fn request(user: Uuid, kind: RequestKind, id: &str, what: &str) -> RequestKey {
    RequestKey {
        user,
        kind,
        id: id.into(),
        fingerprint: what.as_bytes().to_vec(),
    }
}

fn message(conversation: Uuid, sender: Uuid, request_id: &str) -> NewMessage {
    NewMessage {
        conversation_id: conversation,
        sender_id: sender,
        content: Content::Text(format!("text of {request_id}")),
        metadata: BTreeMap::new(),
        reply_to: None,
        forwarded_from: None,
        request: request(
            sender,
            RequestKind::Message,
            request_id,
            &format!("{conversation} {request_id}"),
        ),
    }
}

/// Request ids are per user across conversations: the same id for a different request
/// (other content, or another conversation) is refused and sends nothing.
async fn request_ids_are_per_user(store: &SqlStore) {
    let (d, e) = (user(store, "suite_d").await, user(store, "suite_e").await);
    let now = Utc::now();
    let mut groups = Vec::new();
    for _ in 0..2 {
        let created = store
            .create_conversation(group_of(d, e, now), now)
            .await
            .expect("group");
        groups.push(created.value.id);
    }
    store
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
        let refused = store.send_message(reuse, Utc::now()).await;
        assert!(
            matches!(
                refused,
                Err(Error::AlreadyExists {
                    reason: Reason::RequestIdReused,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    let second = store
        .messages(groups[1], Direction::Forward, 0, 10)
        .await
        .expect("list");
    assert!(second.is_empty(), "{second:?}");
    // Another user may use the same id.
    store
        .send_message(message(groups[1], e, "dup"), Utc::now())
        .await
        .expect("someone else's id");
}

/// The whole contract, on one store.
async fn chat_store_suite(store: Arc<SqlStore>) {
    request_ids_are_per_user(&store).await;
    let (a, b, c) = (
        user(&store, "suite_a").await,
        user(&store, "suite_b").await,
        user(&store, "suite_c").await,
    );
    let now = Utc::now();
    let created = store
        .create_conversation(
            NewConversation {
                request: Some(request(a, RequestKind::Conversation, "create-1", "suite")),
                ..group_of(a, b, now)
            },
            now,
        )
        .await
        .expect("create");
    let conversation = created.value.id;
    assert_eq!(created.value.last_seq, 1, "creation is seq 1");
    assert!(created.published.is_some());

    // 40 concurrent senders: seq 2..=41 exactly, each once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = Arc::clone(&store);
        let sender = if i % 2 == 0 { a } else { b };
        tasks.push(tokio::spawn(async move {
            store
                .send_message(message(conversation, sender, &format!("r{i}")), Utc::now())
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
    assert_eq!(seqs, (2..=41).collect::<Vec<u64>>());

    // A retry returns the original and publishes nothing.
    let retry = store
        .send_message(message(conversation, a, "r0"), Utc::now())
        .await
        .expect("retry");
    assert!(retry.published.is_none());
    let listed = store
        .messages(conversation, Direction::Forward, 0, 100)
        .await
        .expect("list");
    assert_eq!(listed.len(), 40);
    assert_eq!(
        listed
            .iter()
            .find(|m| m.id == retry.value.id)
            .map(|m| m.seq),
        Some(retry.value.seq)
    );
    // Each member's feed: dense from 1, in commit order, one item per event.
    for member in [a, b] {
        let head = store.feed_head(member).await.expect("head");
        assert_eq!(head, 41, "1 creation + 40 messages");
        let mut feed = Vec::new();
        let mut after = 0;
        while after < head {
            let page = store.feed(member, after, 7).await.expect("feed page");
            assert!(!page.is_empty());
            after = page.last().map(|i| i.feed_seq).unwrap_or(after);
            feed.extend(page);
        }
        let feed_seqs: Vec<u64> = feed.iter().map(|i| i.feed_seq).collect();
        assert_eq!(feed_seqs, (1..=41).collect::<Vec<u64>>());
        let conversation_seqs: Vec<u64> = feed
            .iter()
            .filter_map(|i| match &*i.event {
                Event::Conversation { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(
            conversation_seqs,
            (1..=41).collect::<Vec<u64>>(),
            "feed order is timeline order"
        );
    }
    assert_eq!(
        store.feed_head(c).await.expect("head"),
        0,
        "a non-member's feed is untouched"
    );

    // Removal: the removed user's feed gets the removal, then nothing more.
    let removed = store
        .remove_member(conversation, a, b, Utc::now())
        .await
        .expect("remove");
    let published = removed.published.expect("event");
    assert!(
        published.recipients.contains_key(&b),
        "the removed member hears of it"
    );
    store
        .send_message(message(conversation, a, "after"), Utc::now())
        .await
        .expect("send");
    // The write itself checks membership: a removed member cannot post, whatever a
    // check before the write saw.
    let refused = store
        .send_message(message(conversation, b, "removed"), Utc::now())
        .await;
    assert!(matches!(refused, Err(Error::NotFound(_))), "{refused:?}");
    assert_eq!(store.feed_head(b).await.expect("head"), 42);
    assert_eq!(store.feed_head(a).await.expect("head"), 43);
    let last_for_b = store.feed(b, 41, 10).await.expect("feed");
    assert!(
        matches!(&*last_for_b[0].event, Event::Conversation { change: Change::MemberRemoved { user_id, left: false }, .. } if *user_id == b)
    );

    // Read state only moves forward.
    assert_eq!(
        store
            .mark_read(conversation, a, 10, Utc::now())
            .await
            .expect("read")
            .value,
        10
    );
    let back = store
        .mark_read(conversation, a, 5, Utc::now())
        .await
        .expect("read");
    assert_eq!(back.value, 10);
    assert!(back.published.is_none());

    // Deleting twice is one event; a deleted message cannot be edited.
    let victim = listed[0].id;
    assert!(
        store
            .delete_message(conversation, victim, a, Utc::now())
            .await
            .expect("delete")
            .published
            .is_some()
    );
    assert!(
        store
            .delete_message(conversation, victim, a, Utc::now())
            .await
            .expect("again")
            .published
            .is_none()
    );
    let edit = store
        .edit_message(
            conversation,
            victim,
            a,
            Content::Text("zombie".into()),
            Utc::now(),
        )
        .await;
    assert!(edit.is_err());
}

#[tokio::test]
async fn sqlite_chat_store_keeps_the_contract() {
    let (store, _dir) = sqlite().await;
    chat_store_suite(store).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (SC_TEST_POSTGRES_URL); run by deploy/local/test.sh"]
async fn postgres_chat_store_keeps_the_contract() {
    let url = crate::common::fresh_database().await;
    assert!(
        !url.is_empty(),
        "SC_TEST_POSTGRES_URL must be set for this test"
    );
    let store = SqlStore::connect(&url, &DatabaseConfig::default(), None)
        .await
        .expect("postgres");
    chat_store_suite(store).await;
}

/// A fresh PostgreSQL database and the Cassandra settings of the services pass.
async fn postgres_and_cassandra() -> (String, secureconnect_server::config::CqlConfig) {
    let url = crate::common::fresh_database().await;
    let cql = crate::common::cql_config();
    assert!(
        !url.is_empty() && cql.contact_points.is_some(),
        "SC_TEST_POSTGRES_URL and SC_TEST_CQL_CONTACT_POINT must be set for this test"
    );
    (url, cql)
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Cassandra (SC_TEST_POSTGRES_URL, SC_TEST_CQL_CONTACT_POINT); run by deploy/local/test.sh"]
async fn postgres_with_cassandra_history_keeps_the_contract() {
    let (url, cql) = postgres_and_cassandra().await;
    let history = CqlHistory::connect(&cql).await.expect("cassandra");
    let store = SqlStore::connect(&url, &DatabaseConfig::default(), Some(history))
        .await
        .expect("postgres");
    chat_store_suite(store).await;
}

/// Two stores on one PostgreSQL database and one keyspace (two nodes), plus a third that
/// writes without projecting — as if its node died between commit and projection. Readers
/// on either node must still see every message, once, in order, with no hole.
#[tokio::test]
#[ignore = "needs PostgreSQL and Cassandra (SC_TEST_POSTGRES_URL, SC_TEST_CQL_CONTACT_POINT); run by deploy/local/test.sh"]
async fn cassandra_history_has_no_holes_when_a_writer_dies_before_projecting() {
    let (url, cql) = postgres_and_cassandra().await;
    let config = DatabaseConfig::default();
    let node_a = SqlStore::connect(
        &url,
        &config,
        Some(CqlHistory::connect(&cql).await.expect("cql")),
    )
    .await
    .expect("node a");
    let node_b = SqlStore::connect(
        &url,
        &config,
        Some(CqlHistory::connect(&cql).await.expect("cql")),
    )
    .await
    .expect("node b");
    // Same database, no projection: commits events that never reach Cassandra by itself.
    let dying = SqlStore::connect(&url, &config, None)
        .await
        .expect("dying node");

    let (a, b) = (
        user(&node_a, "holes_a").await,
        user(&node_a, "holes_b").await,
    );
    let now = Utc::now();
    let conversation = node_a
        .create_conversation(group_of(a, b, now), now)
        .await
        .expect("create")
        .value
        .id;

    // Interleave: both live nodes send concurrently, the dying one now and then.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = match i % 3 {
            0 => Arc::clone(&node_a),
            1 => Arc::clone(&node_b),
            _ => Arc::clone(&dying),
        };
        let sender = if i % 2 == 0 { a } else { b };
        tasks.push(tokio::spawn(async move {
            store
                .send_message(message(conversation, sender, &format!("h{i}")), Utc::now())
                .await
                .expect("send")
                .value
                .seq
        }));
    }
    let mut sent = Vec::new();
    for task in tasks {
        sent.push(task.await.expect("task"));
    }
    let seq_of_h1 = sent[1];
    sent.sort_unstable();
    assert_eq!(sent, (2..=31).collect::<Vec<u64>>());

    // The last writes came from the dying node: the projection is behind, yet both live
    // nodes list all 30, oldest first, with dense seqs.
    dying
        .send_message(message(conversation, a, "last-unprojected"), Utc::now())
        .await
        .expect("send");
    for node in [&node_b, &node_a] {
        let listed = node
            .messages(conversation, Direction::Forward, 0, 100)
            .await
            .expect("list");
        let seqs: Vec<u64> = listed.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (2..=32).collect::<Vec<u64>>());
        let newest = node
            .messages(conversation, Direction::Backward, 0, 5)
            .await
            .expect("list");
        assert_eq!(
            newest.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![32, 31, 30, 29, 28]
        );
    }

    // An edit on one node is what the other reads, and the retry of a send answered by
    // the other node is the same message.
    let target = node_a
        .messages(conversation, Direction::Forward, 0, 1)
        .await
        .expect("list")[0]
        .id;
    node_a
        .edit_message(
            conversation,
            target,
            a,
            Content::Text("edited".into()),
            Utc::now(),
        )
        .await
        .expect("edit");
    let seen = node_b
        .message(conversation, target)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(seen.content, Some(Content::Text("edited".into())));
    let retried = node_b
        .send_message(message(conversation, b, "h1"), Utc::now())
        .await
        .expect("retry");
    assert!(retried.published.is_none(), "a retry publishes nothing");
    assert_eq!(retried.value.seq, seq_of_h1);

    // Deleting the group removes its history from Cassandra too.
    node_b
        .delete_conversation(conversation, a, Utc::now())
        .await
        .expect("delete");
    // (Projection runs in the background after the commit: give it a moment.)
    let history = CqlHistory::connect(&cql).await.expect("cql");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !history
        .messages(conversation, Direction::Forward, 0, 100, 40)
        .await
        .expect("list")
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "history still there 10 s after the delete"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Trimming keeps each feed to the replay window and drops events nobody can be replayed
/// any more — and never touches message history.
async fn trimming_keeps_the_replay_window(store: Arc<SqlStore>) {
    let (a, b) = (user(&store, "trim_a").await, user(&store, "trim_b").await);
    let now = Utc::now();
    let conversation = store
        .create_conversation(group_of(a, b, now), now)
        .await
        .expect("create")
        .value
        .id;
    for i in 0..10 {
        store
            .send_message(message(conversation, a, &format!("t{i}")), Utc::now())
            .await
            .expect("send");
    }
    // Let any background projection finish, so CQL-held events may go too.
    store
        .messages(conversation, Direction::Forward, 0, 100)
        .await
        .expect("list");
    let trimmed = store.trim_feeds(3).await.expect("trim");
    assert_eq!(trimmed.feed_rows, 2 * 8, "each member keeps 3 of 11");
    assert_eq!(trimmed.events, 8, "events no feed needs any more");
    for member in [a, b] {
        let head = store.feed_head(member).await.expect("head");
        assert_eq!(head, 11);
        let kept = store.feed(member, head - 3, 10).await.expect("feed");
        assert_eq!(
            kept.iter().map(|i| i.feed_seq).collect::<Vec<_>>(),
            vec![9, 10, 11],
            "the replay window is intact"
        );
    }
    assert_eq!(
        store.trim_feeds(3).await.expect("again"),
        Default::default(),
        "idempotent"
    );
    let history = store
        .messages(conversation, Direction::Forward, 0, 100)
        .await
        .expect("list");
    assert_eq!(history.len(), 10, "message history is not trimmed");

    // Request ids are kept for the idempotency window only.
    let week_ago = Utc::now() - chrono::Duration::days(8);
    let old = store
        .send_message(message(conversation, a, "old-request"), week_ago)
        .await
        .expect("send");
    let trimmed = store.trim_feeds(1000).await.expect("trim");
    assert_eq!(trimmed.request_ids, 1);
    let retry = store
        .send_message(message(conversation, a, "old-request"), Utc::now())
        .await
        .expect("retry");
    assert_ne!(
        retry.value.id, old.value.id,
        "past the window a retry sends again"
    );
}

#[tokio::test]
async fn sqlite_trimming_keeps_the_replay_window() {
    let (store, _dir) = sqlite().await;
    trimming_keeps_the_replay_window(store).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Cassandra (SC_TEST_POSTGRES_URL, SC_TEST_CQL_CONTACT_POINT); run by deploy/local/test.sh"]
async fn postgres_with_cassandra_trimming_keeps_the_replay_window() {
    let (url, cql) = postgres_and_cassandra().await;
    let history = CqlHistory::connect(&cql).await.expect("cassandra");
    let store = SqlStore::connect(&url, &DatabaseConfig::default(), Some(history))
        .await
        .expect("postgres");
    trimming_keeps_the_replay_window(store).await;
}
