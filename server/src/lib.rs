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
