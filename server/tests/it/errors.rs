//! Error reasons as clients read them: every reason the server can send decodes, through
//! the SDK, to the `ErrorReason` value of the same name.

use secureconnect_proto::types::v1::ErrorReason;
use secureconnect_server::error::{Error, Reason};
use tonic::Status;

#[test]
fn every_server_reason_decodes_to_its_error_reason_through_the_sdk() {
    for reason in Reason::ALL {
        let status = Status::from(Error::FailedPrecondition {
            reason,
            message: "test",
        });
        let decoded = secureconnect_sdk::error_reason(&status);
        let expected = ErrorReason::from_str_name(&format!("ERROR_REASON_{}", reason.as_str()));
        assert!(
            decoded.is_some_and(|d| d != ErrorReason::Unspecified),
            "{reason:?} does not decode: {decoded:?}"
        );
        assert_eq!(decoded, expected, "{reason:?}");
    }
}

#[test]
fn rate_limits_and_busy_servers_decode_with_their_retry_delay() {
    use tonic_types::StatusExt;
    let delay = std::time::Duration::from_millis(1500);
    for (error, want) in [
        (
            Error::RateLimited { retry_after: delay },
            ErrorReason::RateLimited,
        ),
        (
            Error::Busy {
                message: "busy",
                retry_after: delay,
            },
            ErrorReason::ServerBusy,
        ),
    ] {
        let status = Status::from(error);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(secureconnect_sdk::error_reason(&status), Some(want));
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(delay));
    }
}

#[test]
fn statuses_without_our_error_info_have_no_reason() {
    assert_eq!(
        secureconnect_sdk::error_reason(&Status::not_found("x")),
        None
    );
}
