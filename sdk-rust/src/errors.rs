//! Reading the machine-readable part of an error, so no app decodes status details by hand.

use secureconnect_proto::types::v1::ErrorReason;
use tonic_types::StatusExt;

/// `google.rpc.ErrorInfo.domain` of the errors SecureConnect servers send.
pub const ERROR_DOMAIN: &str = "secureconnect.io";

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
