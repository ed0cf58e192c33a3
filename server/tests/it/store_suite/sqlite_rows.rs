//! On SQLite, plain sends are written and pages of messages read with hand-written
//! statements (rusqlite), everything else through sea-orm (sqlx). The two must agree column
//! by column: the same storage classes, times in exactly sqlx's text, and the same values
//! read back either way.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Stores, fixtures};
use chrono::Utc;
use rusqlite::{Connection, OpenFlags};
use secureconnect_server::{
    domain::{
        Content, Event, Forwarded, Time,
        poll::{PollRecord, PollSettings},
    },
    store::{Direction, NewPoll, RequestKind},
};

/// Each column's storage class (`typeof`) in the row of `table` that `key` selects.
fn storage_classes(db: &Connection, table: &str, key: &str, columns: &[&str]) -> Vec<String> {
    let select = columns
        .iter()
        .map(|c| format!("typeof({c})"))
        .collect::<Vec<_>>()
        .join(", ");
    db.query_row(
        &format!("SELECT {select} FROM {table} WHERE {key}"),
        [],
        |row| (0..columns.len()).map(|i| row.get(i)).collect(),
    )
    .expect("row")
}

/// The text sqlx stores for `time`, asked of sqlx itself.
async fn sqlx_time_text(time: Time) -> String {
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect("sqlite::memory:")
        .await
        .expect("sqlite in memory");
    sqlx::query_scalar("SELECT ?")
        .bind(time)
        .fetch_one(&mut conn)
        .await
        .expect("encoded time")
}

/// A poll by `creator` under request id "poll": its message is written by sea-orm.
async fn create_poll(stores: &Stores, conversation: Uuid, creator: Uuid) -> PollRecord {
    let poll = NewPoll {
        conversation_id: conversation,
        creator,
        question: "Lunch?".into(),
        options: vec!["Pizza".into(), "Sushi".into()],
        settings: PollSettings::default(),
    };
    let request = fixtures::request(creator, RequestKind::Message, "poll", "poll");
    stores
        .polls
        .create_poll(poll, request, Utc::now())
        .await
        .expect("poll")
        .value
}

#[tokio::test]
async fn the_send_writer_stores_rows_as_sea_orm_does() {
    let stores = Stores::sqlite().await;
    let (a, b, conversation) = fixtures::group(&stores).await;
    // Written by sea-orm: a poll's message (a send that carries something).
    let poll = create_poll(&stores, conversation, a).await;
    let poll_seq = stores
        .chat
        .message(conversation, poll.message_id)
        .await
        .expect("read")
        .expect("the poll's message")
        .seq;
    // Written by the send writer: a plain send with every optional column set.
    let earlier = stores
        .chat
        .send_message(fixtures::message(conversation, b, "earlier"), Utc::now())
        .await
        .expect("send")
        .value;
    let mut new = fixtures::message(conversation, b, "plain");
    new.metadata = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    new.forwarded_from = Some(Forwarded {
        sender_id: a,
        create_time: Utc::now(),
    });
    new.reply_to = Some(earlier.id);
    let sent = stores
        .chat
        .send_message(new, Utc::now())
        .await
        .expect("send")
        .value;

    // What everything else reads back through sea-orm is what the writer was given.
    let read = stores
        .chat
        .message(conversation, sent.id)
        .await
        .expect("read")
        .expect("the message");
    assert_eq!(read, sent);
    assert_eq!(read.content, Some(Content::Text("text of plain".into())));
    let feed = stores.chat.feed(a, 0, 100).await.expect("feed");
    let last = feed.last().expect("a's feed");
    assert!(
        matches!(last.event.as_ref(), Event::Conversation { seq, .. } if *seq == sent.seq),
        "the send is the last event of a's feed: {last:?}"
    );

    let file = stores.sqlite_file().expect("a SQLite store");
    let db = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let by = |seq: u64| {
        format!(
            "conversation_id = X'{}' AND seq = {seq}",
            conversation.simple()
        )
    };
    let message_columns = [
        "id",
        "conversation_id",
        "seq",
        "sender_id",
        "request_id",
        "text",
        "metadata",
        "create_time",
    ];
    assert_eq!(
        storage_classes(&db, "messages", &by(sent.seq), &message_columns),
        storage_classes(&db, "messages", &by(poll_seq), &message_columns),
    );
    let uuid_and_time = ["reply_to", "forwarded_sender_id", "forwarded_create_time"];
    assert_eq!(
        storage_classes(&db, "messages", &by(sent.seq), &uuid_and_time),
        ["blob", "blob", "text"]
    );
    let times: (String, String) = db
        .query_row(
            &format!(
                "SELECT create_time, forwarded_create_time FROM messages WHERE {}",
                by(sent.seq)
            ),
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("times");
    assert_eq!(times.0, sqlx_time_text(sent.create_time).await);
    let forwarded = sent.forwarded_from.expect("forwarded").create_time;
    assert_eq!(times.1, sqlx_time_text(forwarded).await);

    let event_columns = ["conversation_id", "seq", "payload", "body", "create_time"];
    assert_eq!(
        storage_classes(&db, "events", &by(sent.seq), &event_columns),
        storage_classes(&db, "events", &by(poll_seq), &event_columns),
    );
    let event_of = |seq: u64| format!("event_id = (SELECT id FROM events WHERE {})", by(seq));
    let feed_columns = ["user_id", "feed_seq", "event_id"];
    let feed_rows = |seq: u64| -> i64 {
        db.query_row(
            &format!("SELECT count(*) FROM feed WHERE {}", event_of(seq)),
            [],
            |row| row.get(0),
        )
        .expect("count")
    };
    assert_eq!((feed_rows(sent.seq), feed_rows(poll_seq)), (2, 2));
    let for_a = |seq: u64| format!("{} AND user_id = X'{}'", event_of(seq), a.simple());
    assert_eq!(
        storage_classes(&db, "feed", &for_a(sent.seq), &feed_columns),
        storage_classes(&db, "feed", &for_a(poll_seq), &feed_columns),
    );

    let request_columns = [
        "user_id",
        "kind",
        "request_id",
        "fingerprint",
        "conversation_id",
        "result_id",
        "create_time",
    ];
    let request_of = |id: &str| format!("request_id = '{id}'");
    assert_eq!(
        storage_classes(&db, "request_ids", &request_of("plain"), &request_columns),
        storage_classes(&db, "request_ids", &request_of("poll"), &request_columns),
    );
}

#[tokio::test]
async fn pages_of_messages_read_what_sea_orm_reads() {
    let stores = Stores::sqlite().await;
    let (a, b, conversation) = fixtures::group(&stores).await;
    create_poll(&stores, conversation, a).await;
    let send = |request_id: &'static str| {
        let stores = &stores;
        async move {
            stores
                .chat
                .send_message(fixtures::message(conversation, b, request_id), Utc::now())
                .await
                .expect("send")
                .value
        }
    };
    let plain = send("plain").await;
    let edited = send("edited").await;
    let deleted = send("deleted").await;
    let mut new = fixtures::message(conversation, a, "reply");
    new.metadata = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    new.reply_to = Some(plain.id);
    new.forwarded_from = Some(Forwarded {
        sender_id: b,
        create_time: Utc::now(),
    });
    stores
        .chat
        .send_message(new, Utc::now())
        .await
        .expect("reply");
    stores
        .chat
        .edit_message(
            conversation,
            edited.id,
            b,
            Content::Text("new".into()),
            Utc::now(),
        )
        .await
        .expect("edit");
    stores
        .chat
        .delete_message(conversation, deleted.id, b, Utc::now())
        .await
        .expect("delete");

    let newest_first = stores
        .chat
        .messages(a, conversation, Direction::Backward, 0, 50)
        .await
        .expect("page");
    assert_eq!(newest_first.len(), 5, "poll, plain, edited, deleted, reply");
    for listed in &newest_first {
        let one = stores
            .chat
            .message(conversation, listed.id)
            .await
            .expect("read")
            .expect("the message");
        assert_eq!(listed, &one, "a page and a single read agree");
    }
    assert!(newest_first.iter().any(|m| m.edit_time.is_some()));
    assert!(newest_first.iter().any(|m| m.delete_time.is_some()));
    let seqs: Vec<u64> = newest_first.iter().map(|m| m.seq).collect();
    let mut ascending = seqs.clone();
    ascending.sort_unstable();
    assert_eq!(seqs, ascending.iter().rev().copied().collect::<Vec<_>>());
    // Anchored pages, both ways, exclude the anchor.
    let before = stores
        .chat
        .messages(a, conversation, Direction::Backward, ascending[2], 2)
        .await
        .expect("page before");
    assert_eq!(
        before.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [ascending[1], ascending[0]]
    );
    let after = stores
        .chat
        .messages(a, conversation, Direction::Forward, ascending[2], 10)
        .await
        .expect("page after");
    assert_eq!(
        after.iter().map(|m| m.seq).collect::<Vec<_>>(),
        ascending[3..]
    );
}
