//! How DynamoDB's errors map to the store's error kinds.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

/// Maps an error DynamoDB answered with (its error code, e.g. `ThrottlingException`, and
/// HTTP status) to the store's error kinds:
///
/// | DynamoDB | store |
/// |---|---|
/// | `ConditionalCheckFailedException` | [`StoreError::Conflict`] |
/// | throttling (`ThrottlingException`, `ProvisionedThroughputExceededException`, `RequestLimitExceeded`), `InternalServerError`, `ServiceUnavailable`, `TransactionInProgressException`, `TransactionConflictException`, any 5xx | [`StoreError::Backend`], retryable |
/// | `ValidationException` about an item's size | [`StoreError::TooLarge`] |
/// | other `ValidationException`s, `SerializationException` | [`StoreError::Invalid`] |
/// | anything else (`ResourceNotFoundException`, `AccessDeniedException`, ...) | [`StoreError::Backend`], not retryable |
///
/// The SDK has already retried the retryable ones with backoff when the store sees them.
pub fn map_error_code(code: Option<&str>, http_status: Option<u16>, message: &str) -> StoreError {
    let code_text = code.unwrap_or("unknown error");
    let detail = if message.is_empty() { code_text.to_owned() } else { format!("{code_text}: {message}") };
    match code {
        Some("ConditionalCheckFailedException") => StoreError::Conflict(detail),
        Some(
            "ThrottlingException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionInProgressException"
            | "TransactionConflictException",
        ) => StoreError::backend(detail, true),
        Some("ValidationException") if message.contains("Item size") || message.contains("item size") => {
            StoreError::TooLarge(detail)
        }
        Some("ValidationException" | "SerializationException") => StoreError::Invalid(detail),
        Some("ResourceNotFoundException") => StoreError::backend(
            format!("{detail} (does the table exist? `DynamoStore::create_table` creates it)"),
            false,
        ),
        _ => StoreError::backend(detail, http_status.is_some_and(|s| s >= 500)),
    }
}

/// Maps an SDK error of request `what` (e.g. `TransactWriteItems`).
pub(super) fn sdk_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, retryable) = match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let e = ctx.err();
            let mapped = map_error_code(e.code(), Some(status), e.message().unwrap_or_default());
            return match mapped {
                StoreError::Backend { message, retryable, .. } => StoreError::Backend {
                    message: format!("DynamoDB {what}: {message}"),
                    retryable,
                    source: Some(Box::new(err)),
                },
                StoreError::Conflict(m) => StoreError::Conflict(format!("DynamoDB {what}: {m}")),
                StoreError::TooLarge(m) => StoreError::TooLarge(format!("DynamoDB {what}: {m}")),
                StoreError::Invalid(m) => StoreError::Invalid(format!("DynamoDB {what}: {m}")),
                other => other,
            };
        }
        // Timeouts, connection failures and unreadable responses: the request may not have
        // arrived, or its answer was lost. Commits are safe to retry (see `write`).
        SdkError::TimeoutError(_) => (format!("DynamoDB {what} timed out"), true),
        SdkError::DispatchFailure(e) => (format!("DynamoDB {what} could not be sent: {e:?}"), true),
        SdkError::ResponseError(_) => (format!("DynamoDB {what}: the response could not be read"), true),
        SdkError::ConstructionFailure(_) => (format!("DynamoDB {what}: the request could not be built"), false),
        _ => (format!("DynamoDB {what} failed"), false),
    };
    StoreError::Backend { message, retryable, source: Some(Box::new(err)) }
}

/// An error building a request (a missing required field: a bug, never retryable).
pub(super) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend { message: format!("DynamoDB request: {e}"), retryable: false, source: Some(Box::new(e)) }
}
