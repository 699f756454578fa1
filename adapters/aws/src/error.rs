//! SDK errors classified as port errors: throttling, timeouts and connection failures are
//! [`PortError::Unavailable`] (retry later), everything else [`PortError::Backend`].

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use traffic_ports::PortError;

/// Error codes (of any AWS service) that mean "try again later".
pub(crate) fn is_transient_code(code: &str) -> bool {
    const TRANSIENT: [&str; 12] = [
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "Throttled",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "LimitExceededException",
        "KMSThrottlingException",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
    ];
    TRANSIENT.contains(&code)
        || code.starts_with("InternalServer")
        || code.starts_with("InternalFailure")
        || code == "InternalError"
        || code.starts_with("ServiceUnavailable")
}

/// Whether an SDK error is worth retrying: no response (timeout, connection refused or
/// reset), an unreadable response, or a service error with a transient code.
pub(crate) fn is_transient<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => s.err().code().is_some_and(is_transient_code),
        _ => false,
    }
}

/// Whether the service answered with a 5xx: an internal error, which the SDK retries but
/// cannot always name (a body that is not JSON).
pub(crate) fn is_server_error<E>(
    e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    e.raw_response()
        .is_some_and(|r| r.status().is_server_error())
}

/// The service error code, if the error is a service error.
pub(crate) fn code_of<E, R>(e: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// A port error for an SDK error, with what was being done.
pub(crate) fn port_error<E, R>(context: impl Into<String>, e: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let context = format!("{}: {}", context.into(), DisplayErrorContext(&e));
    if is_transient(&e) {
        PortError::Unavailable {
            context,
            source: Box::new(e),
        }
    } else {
        PortError::Backend {
            context,
            source: Box::new(e),
        }
    }
}

/// A port error for an item that cannot be mapped to or from its attributes.
pub(crate) fn mapping(what: &str, e: serde_dynamo::Error) -> PortError {
    PortError::Corrupt(format!("{what}: {e}"))
}

/// A port error for a request that could not be built (a bug, not an outage).
pub(crate) fn build(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::backend(format!("building {what}"), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient_and_conditions_are_not() {
        for c in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "InternalServerError",
            "ServiceUnavailableException",
            "RequestLimitExceeded",
        ] {
            assert!(is_transient_code(c), "{c}");
        }
        for c in [
            "ConditionalCheckFailedException",
            "ValidationException",
            "ResourceNotFoundException",
        ] {
            assert!(!is_transient_code(c), "{c}");
        }
    }
}
