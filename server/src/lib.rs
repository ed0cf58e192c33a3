//! The SecureConnect server.

pub mod config;
pub mod domain;
pub mod error;
pub mod store;
pub mod auth;
pub mod paging;
pub mod validate;
