//! Bad input, RPC by RPC: every malformed request gets `INVALID_ARGUMENT` naming the
//! field (or the documented code), and nothing panics or changes.
//!
//! One module per service and one test per RPC (`bad_input::messages::send_message`), each
//! on a server of its own, so one RPC's regression does not hide another's.

use std::fmt::Debug;

use tonic::{Code, Status};

use crate::common::violated_fields;

mod auth;
mod conversations;
mod drive;
mod events;
mod messages;
mod polls;
mod presence;
mod users;

/// Well-formed but names nothing that exists.
const UNKNOWN_ID: &str = "01890000-0000-7000-8000-000000000000";
const NOT_AN_ID: &str = "not-a-uuid";

/// Asserts `INVALID_ARGUMENT` with a violation on `field`.
fn invalid<T: Debug>(what: &str, result: Result<T, Status>, field: &str) {
    let status = match result {
        Ok(v) => panic!("{what}: expected INVALID_ARGUMENT on {field}, got Ok({v:?})"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let fields = violated_fields(&status);
    assert!(
        fields.iter().any(|f| f == field),
        "{what}: expected a violation on {field}, got {fields:?}"
    );
}

/// An update mask of `paths`.
fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}
