//! PostgreSQL going away: calls fail fast with `UNAVAILABLE` (never hang past the
//! configured wait) and work again once it is back — no restart.
//!
//! Ignored in the embedded pass; `deploy/local/test.sh` runs it on its PostgreSQL pass
//! (`--include-ignored`), where `SC_TEST_POSTGRES_URL` is set.

use std::time::{Duration, Instant};

use crate::common::*;
use sea_orm::ConnectionTrait;
use secureconnect_sdk::proto::user::v1::GetCurrentUserRequest;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Runs `sql` as the admin of the test PostgreSQL server.
async fn admin(sql: &str) {
    let url = std::env::var("SC_TEST_POSTGRES_URL")
        .expect("SC_TEST_POSTGRES_URL must be set for this test");
    let db = sea_orm::Database::connect(url)
        .await
        .expect("admin connection");
    db.execute_unprepared(sql).await.expect("admin statement");
    db.close().await.expect("close");
}

/// The overall health status once it settles (it is re-checked every 2 s).
async fn health(server: &TestServer) -> ServingStatus {
    let channel = server.channel().await;
    let mut client = HealthClient::new(channel);
    let mut last = ServingStatus::Unknown;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let response = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health");
        let status =
            ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown);
        if status == last {
            return status;
        }
        last = status;
    }
    last
}

#[tokio::test]
#[ignore = "needs PostgreSQL (SC_TEST_POSTGRES_URL); run by deploy/local/test.sh"]
async fn losing_postgres_fails_fast_with_unavailable_and_recovers_without_restart() {
    let server = TestServer::start_with(|c| c.database.acquire_timeout_secs = 1).await;
    assert!(
        !server.database_url.is_empty(),
        "this test needs PostgreSQL"
    );
    let database = server
        .database_url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_owned();
    let alice = server.register("alice").await;
    let me = || async {
        alice
            .client
            .users()
            .get_current_user(GetCurrentUserRequest {})
            .await
    };
    me().await.expect("works while the database is up");

    // Cut the database off: refuse new connections and end the open ones.
    admin(&format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false"
    ))
    .await;
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    ))
    .await;
    let started = Instant::now();
    assert_code(me().await, Code::Unavailable);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "failed only after {waited:?}: the call hung"
    );

    assert_eq!(
        health(&server).await,
        ServingStatus::NotServing,
        "health follows the database"
    );

    admin(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true")).await;
    let mut recovered = false;
    for _ in 0..50 {
        if me().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "calls did not recover after the database came back"
    );
    server.shutdown().await;
}

/// A transaction the database rolls back to resolve contention (serialization failure,
/// what CockroachDB asks clients to retry) is reported as retryable `UNAVAILABLE`, not as
/// an internal error. Produced for real: two SERIALIZABLE transactions that each read what
/// the other writes.
#[tokio::test]
#[ignore = "needs PostgreSQL (SC_TEST_POSTGRES_URL); run by deploy/local/test.sh"]
async fn contention_and_statement_timeouts_are_retryable_unavailable() {
    use sea_orm::{AccessMode, IsolationLevel, TransactionTrait};
    use secureconnect_server::error::Error;

    let url = fresh_database().await;
    assert!(
        !url.is_empty(),
        "SC_TEST_POSTGRES_URL must be set for this test"
    );
    let db = sea_orm::Database::connect(url).await.expect("connect");
    db.execute_unprepared(
        "CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0)",
    )
    .await
    .expect("setup");
    let begin = || {
        db.begin_with_config(
            Some(IsolationLevel::Serializable),
            Some(AccessMode::ReadWrite),
        )
    };
    let (a, b) = (begin().await.expect("a"), begin().await.expect("b"));
    a.execute_unprepared("SELECT sum(v) FROM t")
        .await
        .expect("a reads");
    b.execute_unprepared("SELECT sum(v) FROM t")
        .await
        .expect("b reads");
    a.execute_unprepared("UPDATE t SET v = 1 WHERE k = 1")
        .await
        .expect("a writes");
    b.execute_unprepared("UPDATE t SET v = 1 WHERE k = 2")
        .await
        .expect("b writes");
    a.commit().await.expect("the first commit wins");
    let lost = b.commit().await.expect_err("the second is rolled back");
    assert!(
        matches!(Error::from(lost), Error::Unavailable(_)),
        "serialization failures are retryable"
    );

    // And a statement cut off by `statement_timeout` (what `database.statement_timeout_secs`
    // sets on every connection) is UNAVAILABLE too.
    let slow = db
        .execute_unprepared("SET statement_timeout = '100ms'; SELECT pg_sleep(5)")
        .await
        .expect_err("cut off");
    assert!(matches!(Error::from(slow), Error::Unavailable(_)));
}
