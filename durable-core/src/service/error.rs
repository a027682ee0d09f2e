//! What the service fails with, and how each failure reads as an AWS error code and as a
//! checkpoint error the engine understands.

use std::fmt;

use crate::checkpoint::CheckpointError;
use crate::model::ErrorObject;
use crate::store::StoreError;

/// What the service can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceError {
    /// No such execution.
    NotFound(String),
    /// An execution with this name exists with a different input
    /// (`DurableExecutionAlreadyStartedException`).
    AlreadyStarted(String),
    /// The checkpoint token is stale or malformed.
    InvalidToken(String),
    /// A request or update was invalid (`InvalidParameterValueException`).
    InvalidParameter(ErrorObject),
    /// The execution is not running any more.
    NotRunning(String),
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::NotFound(m) => write!(f, "execution not found: {m}"),
            ServiceError::AlreadyStarted(m) => write!(f, "{m}"),
            ServiceError::InvalidToken(m) => write!(f, "invalid checkpoint token: {m}"),
            ServiceError::InvalidParameter(e) => write!(f, "{e}"),
            ServiceError::NotRunning(m) => write!(f, "execution is not running: {m}"),
            ServiceError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServiceError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Store(e)
    }
}

impl ServiceError {
    /// The AWS error code this maps to.
    pub fn error_code(&self) -> &'static str {
        match self {
            ServiceError::NotFound(_) => "ResourceNotFoundException",
            ServiceError::AlreadyStarted(_) => "DurableExecutionAlreadyStartedException",
            ServiceError::InvalidParameter(e)
                if e.error_type.as_deref() == Some(crate::PAYLOAD_TOO_LARGE_ERROR_TYPE) =>
            {
                REQUEST_TOO_LARGE
            }
            ServiceError::Store(StoreError::TooLarge(_)) => REQUEST_TOO_LARGE,
            ServiceError::InvalidToken(_) | ServiceError::InvalidParameter(_) | ServiceError::NotRunning(_) => {
                "InvalidParameterValueException"
            }
            ServiceError::Store(e) if e.is_retryable() => "TooManyRequestsException",
            ServiceError::Store(_) => "ServiceException",
        }
    }

    /// The error as the engine sees it.
    pub fn into_checkpoint_error(self) -> CheckpointError {
        match self {
            ServiceError::InvalidToken(m) | ServiceError::NotRunning(m) | ServiceError::NotFound(m) => {
                CheckpointError::InvalidToken(m)
            }
            ServiceError::InvalidParameter(e) => CheckpointError::Rejected(e),
            ServiceError::AlreadyStarted(m) => {
                CheckpointError::Rejected(ErrorObject::new("InvalidParameterValueException", m))
            }
            ServiceError::Store(StoreError::TooLarge(m)) => {
                CheckpointError::Rejected(ErrorObject::new(crate::PAYLOAD_TOO_LARGE_ERROR_TYPE, m))
            }
            ServiceError::Store(e) => CheckpointError::Retryable(e.to_string()),
        }
    }

    /// An `InvalidParameterValueException` saying `message`.
    pub(super) fn invalid(message: impl Into<String>) -> ServiceError {
        ServiceError::InvalidParameter(ErrorObject::new("InvalidParameterValueException", message.into()))
    }
}

/// The AWS error code of a request refused for a payload over its limit (Lambda's, HTTP 413).
const REQUEST_TOO_LARGE: &str = "RequestTooLargeException";
