//! Thin tonic adapters: take the principal and the request apart, call the domain, map
//! the result. Errors become `Status` exactly once, through `From<Error>`.

use std::sync::Arc;

use tonic::{Request, Status};

use crate::{
    auth::{Auth, Operation, Principal},
    chat::Chat,
    error::{Error, Reason},
    events::Events,
    users::Users,
};

pub mod auth;
pub mod call;
pub mod conversation;
pub mod convert;
pub mod drive;
pub mod event;
pub mod message;
pub mod poll;
pub mod presence;
pub mod user;

/// Everything the handlers share.
pub struct Services {
    pub auth: Arc<Auth>,
    pub users: Arc<Users>,
    pub chat: Arc<Chat>,
    pub events: Arc<Events>,
}

/// The caller of `request`, from its `authorization: Bearer <token>` metadata.
pub fn principal<T>(auth: &Auth, request: &Request<T>, op: Operation) -> Result<Principal, Status> {
    let missing = || {
        Status::from(Error::Unauthenticated {
            reason: Reason::InvalidToken,
            message: "missing, invalid, expired or revoked access token",
        })
    };
    let header = request
        .metadata()
        .get("authorization")
        .ok_or_else(missing)?;
    let value = header.to_str().map_err(|_| missing())?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(missing)?;
    Ok(auth.authenticate(token.trim(), op)?)
}

/// Field-mask paths, refusing an empty mask and any path outside `allowed`.
pub fn mask_paths(
    mask: Option<prost_types::FieldMask>,
    allowed: &[&str],
) -> Result<Vec<String>, Status> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            format!("required; one or more of {allowed:?}"),
        )
        .into());
    }
    if let Some(bad) = paths.iter().find(|p| !allowed.contains(&p.as_str())) {
        return Err(Error::invalid(
            "update_mask",
            format!("unknown path {bad:?}; allowed: {allowed:?}"),
        )
        .into());
    }
    Ok(paths)
}
