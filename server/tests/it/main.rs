//! The server's integration suite, as one test binary: a binary per file would link the
//! whole server seventeen times over (5.7 GB of debug build) for no isolation we use.
//!
//! Tests that need a real service are `#[ignore]`d with the reason and run by
//! `deploy/local/test.sh` with `--include-ignored`. `cassandra_faults` pauses the shared
//! Cassandra, so the script runs it on its own (`--skip cassandra_faults`, then alone).

// A failing test should stop loudly where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod attachments;
mod auth;
mod bad_input;
mod binary;
mod blobs;
mod call_media;
mod calls;
mod cassandra_faults;
mod chat;
mod cluster;
mod crash;
mod direct_uploads;
mod drive;
mod drive_editors;
mod errors;
mod group_commit;
mod idempotency;
mod mail;
mod polls;
mod postgres_faults;
mod presence;
mod presence_store;
mod rate_limiter;
mod sdk_examples;
mod sdk_session;
mod sdk_stream;
mod sdk_tls;
mod sfu;
mod sfu_client;
mod store_suite;
mod stream;
mod stream_timeline;
mod transport;
mod unauthenticated;
mod upload_stream;
mod users;
