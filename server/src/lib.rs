//! The SecureConnect server.

pub mod config;
pub mod domain;
pub mod error;
pub mod store;
pub mod auth;
pub mod paging;
pub mod validate;
pub mod bus;
pub mod chat;
pub mod users;
pub mod events;
pub mod api;
pub mod app;
pub mod layers;
