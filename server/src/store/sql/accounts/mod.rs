//! Accounts on SQL, by concern: [`users`] (accounts, profiles, blocks), [`sessions`]
//! (sessions, refresh tokens, revocations) and [`codes`] (single-use emailed codes).

mod codes;
mod sessions;
mod users;

pub(super) use users::blocked_between;
