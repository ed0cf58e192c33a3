//! Message history in Cassandra seen from several nodes, one of which dies between its
//! commit and its projection.

use std::sync::Arc;

use chrono::Utc;
use secureconnect_server::{
    config::DatabaseConfig,
    domain::Content,
    store::{ChatStore, Direction, cql::CqlHistory, sql::SqlStore},
};

use super::{Stores, fixtures::*, postgres_and_cassandra};

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

    let on_a = Stores::of(Arc::clone(&node_a), None);
    let (a, b) = (user(&on_a, "holes_a").await, user(&on_a, "holes_b").await);
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
            .messages(a, conversation, Direction::Forward, 0, 100)
            .await
            .expect("list");
        let seqs: Vec<u64> = listed.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (2..=32).collect::<Vec<u64>>());
        let newest = node
            .messages(a, conversation, Direction::Backward, 0, 5)
            .await
            .expect("list");
        assert_eq!(
            newest.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![32, 31, 30, 29, 28]
        );
    }

    // An edit on one node is what the other reads, and the retry of a send answered by
    // the other node is the same message.
    // (One of `a`'s: only the author may edit, and the store checks.)
    let target = node_a
        .messages(a, conversation, Direction::Forward, 0, 100)
        .await
        .expect("list")
        .into_iter()
        .find(|m| m.sender_id == a)
        .expect("a message of a's")
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
