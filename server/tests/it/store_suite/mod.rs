//! The contract every store implementation keeps, checked directly at the store traits
//! (`ChatStore`, `UserStore`, `SessionStore`, `ContactStore`, `PollStore`): one named test per
//! behaviour per backend, so a failure names both. Backends: `sqlite` (always),
//! `postgres`, and `postgres_cassandra` (PostgreSQL with message history in Cassandra)
//! on the services pass of `deploy/local/test.sh`. Each test gets its own fresh database.
//!
//! A behaviour is an `async fn(&Stores)` in one of the modules below; listing it in
//! `suite!` runs it on every backend.

// The stores are checked alone, with no bus: the events their writes commit (`Committed`,
// `#[must_use]` in the server) have nowhere to go here.
#![allow(unused_must_use)]

use std::sync::Arc;

use secureconnect_server::{
    config::DatabaseConfig,
    store::{
        ChatStore, ContactStore, PollStore, SessionStore, UserStore, cql::CqlHistory, sql::SqlStore,
    },
};

mod accounts;
mod cassandra;
mod chat;
mod fixtures;
mod polls;
mod sqlite_rows;
mod stream_holes;

use accounts::*;
use chat::*;
use polls::*;

/// The SQLite store's file, in its temporary directory.
const SQLITE_FILE: &str = "suite.db";

/// One backend's stores, seen through the traits the server uses.
pub struct Stores {
    pub chat: Arc<dyn ChatStore>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub contacts: Arc<dyn ContactStore>,
    pub polls: Arc<dyn PollStore>,
    /// The same store, for what is not behind a trait (retention).
    pub sql: Arc<SqlStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Stores {
    pub(super) fn of(sql: Arc<SqlStore>, dir: Option<tempfile::TempDir>) -> Self {
        Self {
            chat: sql.clone(),
            users: sql.clone(),
            sessions: sql.clone(),
            contacts: sql.clone(),
            polls: sql.clone(),
            sql,
            _dir: dir,
        }
    }

    /// The database file, on SQLite.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|dir| dir.path().join(SQLITE_FILE))
    }

    /// The embedded default, in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(SQLITE_FILE).display()
        );
        let sql = SqlStore::connect(&url, &DatabaseConfig::default(), None)
            .await
            .expect("sqlite");
        Self::of(sql, Some(dir))
    }

    /// A fresh PostgreSQL database (`SC_TEST_POSTGRES_URL`).
    pub async fn postgres() -> Self {
        let url = crate::common::fresh_database().await;
        assert!(
            !url.is_empty(),
            "SC_TEST_POSTGRES_URL must be set for this test"
        );
        let sql = SqlStore::connect(&url, &DatabaseConfig::default(), None)
            .await
            .expect("postgres");
        Self::of(sql, None)
    }

    /// A fresh PostgreSQL database with message history in Cassandra
    /// (`SC_TEST_CQL_CONTACT_POINT`; one keyspace shared by all tests, whose rows are keyed
    /// by random conversation ids).
    pub async fn postgres_cassandra() -> Self {
        let (url, cql) = postgres_and_cassandra().await;
        let history = CqlHistory::connect(&cql).await.expect("cassandra");
        let sql = SqlStore::connect(&url, &DatabaseConfig::default(), Some(history))
            .await
            .expect("postgres");
        Self::of(sql, None)
    }
}

/// A fresh PostgreSQL database and the Cassandra settings of the services pass.
pub async fn postgres_and_cassandra() -> (String, secureconnect_server::config::CqlConfig) {
    let url = crate::common::fresh_database().await;
    let cql = crate::common::cql_config();
    assert!(
        !url.is_empty() && cql.contact_points.is_some(),
        "SC_TEST_POSTGRES_URL and SC_TEST_CQL_CONTACT_POINT must be set for this test"
    );
    (url, cql)
}

/// One test per behaviour in each backend's module.
macro_rules! suite {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(&super::Stores::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL (SC_TEST_POSTGRES_URL); run by deploy/local/test.sh"]
                async fn $behaviour() {
                    super::$behaviour(&super::Stores::postgres().await).await;
                }
            )*
        }
        mod postgres_cassandra {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL and Cassandra (SC_TEST_POSTGRES_URL, SC_TEST_CQL_CONTACT_POINT); run by deploy/local/test.sh"]
                async fn $behaviour() {
                    super::$behaviour(&super::Stores::postgres_cassandra().await).await;
                }
            )*
        }
    };
}

suite!(
    // ChatStore
    creation_is_the_first_event_of_the_timeline,
    concurrent_sends_take_dense_seqs,
    a_retry_returns_the_original_and_publishes_nothing,
    request_ids_are_per_user_across_conversations,
    feeds_are_dense_and_in_timeline_order,
    a_removed_member_hears_of_it_and_cannot_post,
    roles_are_checked_in_the_write,
    the_last_owner_cannot_leave_or_step_down,
    details_changes_keep_the_other_fields,
    read_state_only_moves_forward,
    deleting_twice_is_one_event_and_a_tombstone_cannot_be_edited,
    pages_are_for_members_only,
    paging_backward_and_forward_meets_in_the_middle,
    deleting_a_group_forgets_its_messages,
    trimming_keeps_the_replay_window,
    // UserStore
    emails_and_usernames_are_unique,
    blocks_count_both_ways_and_hide_from_search,
    a_deleted_user_frees_email_and_username,
    // SessionStore
    a_refresh_token_rotates_once_and_its_reuse_is_reported,
    revoking_sessions_keeps_the_current_one,
    one_time_codes_are_single_use_and_purpose_bound,
    // ContactStore
    crossed_contact_requests_connect,
    removing_a_contact_removes_it_both_ways,
    // PollStore
    polls_are_for_members_only,
    votes_follow_the_poll_rules,
    anonymous_polls_keep_no_picks,
    concurrent_votes_end_in_exact_tallies,
    options_are_added_by_whom_the_poll_allows,
    polls_are_listed_newest_first_page_by_page,
    due_polls_close_exactly_once,
);
