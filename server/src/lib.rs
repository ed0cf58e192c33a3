//! The SecureConnect server.

// Unit tests may unwrap and panic: the house rule (workspace lints) is for request paths.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod app;
pub mod auth;
pub mod blobs;
pub mod bus;
pub mod calls;
pub mod chat;
pub mod config;
pub mod domain;
pub mod drive;
pub mod error;
pub mod events;
pub mod expiring_set;
pub mod format;
pub mod layers;
pub mod mail;
pub mod paging;
pub mod polls;
pub mod presence;
pub mod ratelimit;
pub mod redis_keys;
pub mod request_limits;
pub mod sfu;
pub mod share_links;
pub mod store;
pub mod users;
pub mod validate;
pub mod web;

/// This crate's directory as cargo names it when the test runs: `env!` would name the
/// checkout that built the test binary, and a build cache shared by two checkouts then
/// sends a test to files that may not exist any more.
#[cfg(test)]
pub(crate) fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}
