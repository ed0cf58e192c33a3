//! The one domain error type and its single mapping to `tonic::Status`.
//!
//! Domain code returns [`Error`]; the API adapters convert it exactly once. Causes from
//! lower layers (database, I/O) are logged and become a generic `INTERNAL`: clients never
//! see internals.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `google.rpc.ErrorInfo.domain` of every error this server returns.
pub const ERROR_DOMAIN: &str = "secureconnect.io";

/// Machine-readable reasons, mirrored by `secureconnect.type.v1.ErrorReason`
/// (tests keep the two in step, through the SDK's decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InvalidToken,
    InvalidCredentials,
    RefreshTokenReused,
    RateLimited,
    EmailTaken,
    UsernameTaken,
    Blocked,
    InsufficientRole,
    NotAuthor,
    MessageDeleted,
    EncryptionMismatch,
    LastOwner,
    AlreadyContacts,
    RequestIdReused,
    RequestTooLarge,
    ServerBusy,
    PollClosed,
    VoteFinal,
    PollMessage,
    AnonymousPoll,
    ResultsHidden,
    QuotaExceeded,
    UploadOffsetMismatch,
    UploadIncomplete,
    NameTaken,
    FolderCycle,
    DirectUrlUnavailable,
    LinkExhausted,
    LinkPassword,
    DirectUpload,
    CallInProgress,
    CallFull,
    CallEnded,
    NotInCall,
    StaleOffer,
    CallMessage,
}

impl Reason {
    /// Every reason, for the tests that keep this list and the proto enum in step.
    pub const ALL: [Reason; 36] = [
        Reason::InvalidToken,
        Reason::InvalidCredentials,
        Reason::RefreshTokenReused,
        Reason::RateLimited,
        Reason::EmailTaken,
        Reason::UsernameTaken,
        Reason::Blocked,
        Reason::InsufficientRole,
        Reason::NotAuthor,
        Reason::MessageDeleted,
        Reason::EncryptionMismatch,
        Reason::LastOwner,
        Reason::AlreadyContacts,
        Reason::RequestIdReused,
        Reason::RequestTooLarge,
        Reason::ServerBusy,
        Reason::PollClosed,
        Reason::VoteFinal,
        Reason::PollMessage,
        Reason::AnonymousPoll,
        Reason::ResultsHidden,
        Reason::QuotaExceeded,
        Reason::UploadOffsetMismatch,
        Reason::UploadIncomplete,
        Reason::NameTaken,
        Reason::FolderCycle,
        Reason::DirectUrlUnavailable,
        Reason::LinkExhausted,
        Reason::LinkPassword,
        Reason::DirectUpload,
        Reason::CallInProgress,
        Reason::CallFull,
        Reason::CallEnded,
        Reason::NotInCall,
        Reason::StaleOffer,
        Reason::CallMessage,
    ];

    /// The `ErrorInfo.reason` string: the proto enum value's name without its
    /// `ERROR_REASON_` prefix (the spelling `type.proto` documents).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidToken => "INVALID_TOKEN",
            Reason::InvalidCredentials => "INVALID_CREDENTIALS",
            Reason::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::EmailTaken => "EMAIL_TAKEN",
            Reason::UsernameTaken => "USERNAME_TAKEN",
            Reason::Blocked => "BLOCKED",
            Reason::InsufficientRole => "INSUFFICIENT_ROLE",
            Reason::NotAuthor => "NOT_AUTHOR",
            Reason::MessageDeleted => "MESSAGE_DELETED",
            Reason::EncryptionMismatch => "ENCRYPTION_MISMATCH",
            Reason::LastOwner => "LAST_OWNER",
            Reason::AlreadyContacts => "ALREADY_CONTACTS",
            Reason::RequestIdReused => "REQUEST_ID_REUSED",
            Reason::RequestTooLarge => "REQUEST_TOO_LARGE",
            Reason::ServerBusy => "SERVER_BUSY",
            Reason::PollClosed => "POLL_CLOSED",
            Reason::VoteFinal => "VOTE_FINAL",
            Reason::PollMessage => "POLL_MESSAGE",
            Reason::AnonymousPoll => "ANONYMOUS_POLL",
            Reason::ResultsHidden => "RESULTS_HIDDEN",
            Reason::QuotaExceeded => "QUOTA_EXCEEDED",
            Reason::UploadOffsetMismatch => "UPLOAD_OFFSET_MISMATCH",
            Reason::UploadIncomplete => "UPLOAD_INCOMPLETE",
            Reason::NameTaken => "NAME_TAKEN",
            Reason::FolderCycle => "FOLDER_CYCLE",
            Reason::DirectUrlUnavailable => "DIRECT_URL_UNAVAILABLE",
            Reason::LinkExhausted => "LINK_EXHAUSTED",
            Reason::LinkPassword => "LINK_PASSWORD",
            Reason::DirectUpload => "DIRECT_UPLOAD",
            Reason::CallInProgress => "CALL_IN_PROGRESS",
            Reason::CallFull => "CALL_FULL",
            Reason::CallEnded => "CALL_ENDED",
            Reason::NotInCall => "NOT_IN_CALL",
            Reason::StaleOffer => "STALE_OFFER",
            Reason::CallMessage => "CALL_MESSAGE",
        }
    }
}

/// One invalid request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `content.text`.
    pub field: String,
    /// What is wrong, for the developer.
    pub description: String,
}

/// Everything a domain operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Unauthenticated {
        reason: Reason,
        message: &'static str,
    },
    #[error("{message}")]
    PermissionDenied {
        reason: Reason,
        message: &'static str,
    },
    #[error("{message}")]
    AlreadyExists {
        reason: Reason,
        message: &'static str,
    },
    #[error("{message}")]
    FailedPrecondition {
        reason: Reason,
        message: &'static str,
    },
    /// A limit of the server's, not a rate (`RESOURCE_EXHAUSTED`).
    #[error("{message}")]
    Exhausted {
        reason: Reason,
        message: &'static str,
    },
    /// The conversation has a call going on already.
    #[error("the conversation has a call going on")]
    CallInProgress { call_id: uuid::Uuid },
    #[error("too many requests")]
    RateLimited { retry_after: std::time::Duration },
    /// The server has no capacity for this work right now (not the caller's fault).
    #[error("{message}")]
    Busy {
        message: &'static str,
        retry_after: std::time::Duration,
    },
    #[error("{message}")]
    QuotaExceeded { message: String },
    #[error("the upload has {received} bytes")]
    OffsetMismatch { received: u64 },
    #[error("a backend is unavailable")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of a domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A single-field `InvalidArgument`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// An internal failure whose cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Internal(cause.to_string())
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        if database_unavailable(&err) {
            Error::Unavailable(err.to_string())
        } else {
            Error::internal(err)
        }
    }
}

/// SQLite through rusqlite (the embedded default's send writer and page reads): busy or
/// locked past the busy timeout is "retry later", anything else a fault of ours.
impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Unavailable(err.to_string())
            }
            _ => Error::internal(err),
        }
    }
}

/// Whether a database error means "not reachable or too slow right now" (retry later)
/// rather than a bug: no connection to be had, a dropped connection, a statement timeout,
/// a server that is shutting down or starting up, or a transaction the database rolled
/// back to resolve contention (what CockroachDB, always SERIALIZABLE, asks clients to
/// retry; every write here is safe to retry — sends carry request ids).
fn database_unavailable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        // (sea-orm keeps the driver error out of `source()`: match it where it sits.)
        DbErr::Exec(RuntimeErr::SqlxError(sqlx_err))
        | DbErr::Query(RuntimeErr::SqlxError(sqlx_err)) => match sqlx_err.as_ref() {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // 57014 statement timeout / query cancelled; 57P0x shutdown, crash, or
            // starting up; class 08 connection exceptions; 40001 serialization failure,
            // 40P01 deadlock.
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code == "57014"
                    || code.starts_with("57P")
                    || code.starts_with("08")
                    || code == "40001"
                    || code == "40P01"
            }),
            _ => false,
        },
        _ => false,
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let info = |reason: Reason| {
            ErrorDetails::with_error_info(
                reason.as_str(),
                ERROR_DOMAIN,
                std::collections::HashMap::<String, String>::new(),
            )
        };
        match err {
            Error::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                let summary = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                Status::with_error_details(Code::InvalidArgument, summary, details)
            }
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::Unauthenticated { reason, message } => {
                Status::with_error_details(Code::Unauthenticated, message, info(reason))
            }
            Error::PermissionDenied { reason, message } => {
                Status::with_error_details(Code::PermissionDenied, message, info(reason))
            }
            Error::AlreadyExists { reason, message } => {
                Status::with_error_details(Code::AlreadyExists, message, info(reason))
            }
            Error::FailedPrecondition { reason, message } => {
                Status::with_error_details(Code::FailedPrecondition, message, info(reason))
            }
            Error::Exhausted { reason, message } => {
                Status::with_error_details(Code::ResourceExhausted, message, info(reason))
            }
            Error::CallInProgress { call_id } => {
                let details = ErrorDetails::with_error_info(
                    Reason::CallInProgress.as_str(),
                    ERROR_DOMAIN,
                    [("call_id".to_owned(), call_id.to_string())],
                );
                Status::with_error_details(
                    Code::FailedPrecondition,
                    "the conversation has a call going on: join it",
                    details,
                )
            }
            Error::RateLimited { retry_after } => {
                let mut details = info(Reason::RateLimited);
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(Code::ResourceExhausted, "too many requests", details)
            }
            Error::Busy {
                message,
                retry_after,
            } => {
                let mut details = info(Reason::ServerBusy);
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            Error::QuotaExceeded { message } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                info(Reason::QuotaExceeded),
            ),
            Error::OffsetMismatch { received } => {
                let details = ErrorDetails::with_error_info(
                    Reason::UploadOffsetMismatch.as_str(),
                    ERROR_DOMAIN,
                    [("received_bytes".to_owned(), received.to_string())],
                );
                Status::with_error_details(
                    Code::FailedPrecondition,
                    format!(
                        "the upload has received {received} bytes: send the chunk at that offset"
                    ),
                    details,
                )
            }
            Error::Unavailable(cause) => {
                tracing::warn!(%cause, "backend unavailable");
                Status::unavailable("a backend is temporarily unavailable; retry")
            }
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use secureconnect_proto::types::v1::ErrorReason;

    use super::Reason;

    #[test]
    fn every_reason_is_declared_in_the_proto_enum_and_vice_versa() {
        for reason in Reason::ALL {
            let name = format!("ERROR_REASON_{}", reason.as_str());
            assert!(
                ErrorReason::from_str_name(&name).is_some(),
                "{name} missing from type.proto"
            );
        }
        // Every proto value but UNSPECIFIED is one the server can send.
        let declared = (1..).map_while(|n| ErrorReason::try_from(n).ok()).count();
        assert_eq!(
            declared,
            Reason::ALL.len(),
            "type.proto has reasons the server lacks"
        );
    }
}
