//! Errors an app can act on: the gRPC code, the server's [`ErrorReason`], the fields a
//! request got wrong and how long to wait before retrying — no app decodes status details
//! by hand.

use std::time::Duration;

use secureconnect_proto::types::v1::ErrorReason;
use tonic::Code;
use tonic_types::StatusExt;

/// `google.rpc.ErrorInfo.domain` of the errors SecureConnect servers send.
pub const ERROR_DOMAIN: &str = "secureconnect.io";

/// What can go wrong in a call through the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached, or the address or TLS settings are unusable.
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The server answered with an error.
    #[error(transparent)]
    Rpc(Box<RpcError>),
    /// The app's [`TokenStore`](crate::TokenStore) failed to load, save or clear the
    /// session (the call itself may have gone through: see the source).
    #[error("token store: {0}")]
    TokenStore(#[source] TokenStoreError),
    /// The call needs a signed-in session and there is none.
    #[error("not signed in")]
    NotSignedIn,
    /// The server ended the session (signed out or revoked elsewhere): sign in again.
    #[error("the session ended: sign in again")]
    SessionEnded,
    /// A local file of a transfer could not be read or written, or a download did not
    /// match the file's SHA-256.
    #[error("{0}")]
    Io(String),
}

/// A failure of the app's token store, boxed.
pub type TokenStoreError = Box<dyn std::error::Error + Send + Sync>;

impl Error {
    /// The gRPC code: the server's, [`Code::Unavailable`] when it could not be reached,
    /// [`Code::Unauthenticated`] when not signed in, [`Code::Internal`] for a token
    /// store failure or a local file problem.
    pub fn code(&self) -> Code {
        match self {
            Error::Connect(_) => Code::Unavailable,
            Error::Rpc(rpc) => rpc.code(),
            Error::TokenStore(_) | Error::Io(_) => Code::Internal,
            Error::NotSignedIn | Error::SessionEnded => Code::Unauthenticated,
        }
    }

    /// The server's reason (`google.rpc.ErrorInfo`), when it sent one.
    pub fn reason(&self) -> Option<ErrorReason> {
        match self {
            Error::Rpc(rpc) => rpc.reason(),
            _ => None,
        }
    }

    /// The fields a request got wrong (`google.rpc.BadRequest`), empty for other errors.
    pub fn field_violations(&self) -> &[FieldViolation] {
        match self {
            Error::Rpc(rpc) => rpc.field_violations(),
            _ => &[],
        }
    }

    /// How long the server asks to wait before retrying (`google.rpc.RetryInfo`).
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            Error::Rpc(rpc) => rpc.retry_delay(),
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        // A token store failure inside a call travels as the status' source.
        let store_failure = std::error::Error::source(&status)
            .and_then(|source| source.downcast_ref::<StoreFailure>())
            .map(|failure| failure.0.to_string());
        match store_failure {
            Some(message) => Error::TokenStore(message.into()),
            None => Error::Rpc(Box::new(RpcError::new(status))),
        }
    }
}

/// A token store failure raised inside the transport, where errors must be `Status`
/// sources; [`Error::from`] turns it back into [`Error::TokenStore`].
#[derive(Debug, thiserror::Error)]
#[error("token store: {0}")]
pub(crate) struct StoreFailure(pub(crate) TokenStoreError);

/// One field a request got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path, e.g. `content.text` or `member_user_ids[2]`.
    pub field: String,
    /// What is wrong with it, for people.
    pub description: String,
}

/// An error the server answered with, its details decoded.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", .status.code(), .status.message())]
pub struct RpcError {
    status: tonic::Status,
    reason: Option<ErrorReason>,
    field_violations: Vec<FieldViolation>,
    retry_delay: Option<Duration>,
}

impl RpcError {
    fn new(status: tonic::Status) -> Self {
        let field_violations = status
            .get_details_bad_request()
            .map(|bad| {
                bad.field_violations
                    .into_iter()
                    .map(|v| FieldViolation {
                        field: v.field,
                        description: v.description,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let retry_delay = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay);
        Self {
            reason: error_reason(&status),
            field_violations,
            retry_delay,
            status,
        }
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.status.code()
    }

    /// The server's message, for people (not for matching: use [`Self::reason`]).
    pub fn message(&self) -> &str {
        self.status.message()
    }

    /// The server's reason (`google.rpc.ErrorInfo`), when it sent one.
    pub fn reason(&self) -> Option<ErrorReason> {
        self.reason
    }

    /// The fields the request got wrong (`google.rpc.BadRequest`).
    pub fn field_violations(&self) -> &[FieldViolation] {
        &self.field_violations
    }

    /// How long to wait before retrying (`google.rpc.RetryInfo`).
    pub fn retry_delay(&self) -> Option<Duration> {
        self.retry_delay
    }

    /// The status as received.
    pub fn status(&self) -> &tonic::Status {
        &self.status
    }
}

/// The [`ErrorReason`] of a failed call: `None` when the status carries no SecureConnect
/// `ErrorInfo`, [`ErrorReason::Unspecified`] when it names a reason newer than this SDK.
///
/// On the wire the reason is the enum value's name without its `ERROR_REASON_` prefix
/// (`"RATE_LIMITED"` for [`ErrorReason::RateLimited`]), as `type.proto` documents.
pub fn error_reason(status: &tonic::Status) -> Option<ErrorReason> {
    let info = status.get_details_error_info()?;
    if info.domain != ERROR_DOMAIN {
        return None;
    }
    Some(
        ErrorReason::from_str_name(&format!("ERROR_REASON_{}", info.reason))
            .unwrap_or(ErrorReason::Unspecified),
    )
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    #[test]
    fn details_are_decoded_into_the_error() {
        let mut details = ErrorDetails::with_bad_request_violation("content.text", "too long");
        details.set_error_info("RATE_LIMITED", ERROR_DOMAIN, []);
        details.set_retry_info(Some(Duration::from_secs(3)));
        let status = tonic::Status::with_error_details(Code::InvalidArgument, "bad", details);
        let error = Error::from(status);
        assert_eq!(error.code(), Code::InvalidArgument);
        assert_eq!(error.reason(), Some(ErrorReason::RateLimited));
        assert_eq!(error.retry_delay(), Some(Duration::from_secs(3)));
        assert_eq!(
            error.field_violations(),
            [FieldViolation {
                field: "content.text".into(),
                description: "too long".into()
            }]
        );
    }

    #[test]
    fn reasons_from_other_domains_or_newer_servers_are_told_apart() {
        let foreign = ErrorDetails::with_error_info("RATE_LIMITED", "example.com", []);
        let status = tonic::Status::with_error_details(Code::Unavailable, "x", foreign);
        assert_eq!(error_reason(&status), None);
        let newer = ErrorDetails::with_error_info("SOMETHING_NEW", ERROR_DOMAIN, []);
        let status = tonic::Status::with_error_details(Code::Unavailable, "x", newer);
        assert_eq!(error_reason(&status), Some(ErrorReason::Unspecified));
    }
}
