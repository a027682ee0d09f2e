//! Errors as AWS's REST-JSON protocol carries them: an HTTP status, the error code in the
//! `x-amzn-errortype` header, and a JSON body with the message. The generated AWS clients
//! read the code from the header (or the body's `__type` / `code`) and the message from
//! `message` or `Message`.

use durable_core::PAYLOAD_TOO_LARGE_ERROR_TYPE;
use durable_core::service::ServiceError;
use hyper::StatusCode;

pub(crate) const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";
pub(crate) const INVALID_PARAMETER: &str = "InvalidParameterValueException";
pub(crate) const ALREADY_STARTED: &str = "DurableExecutionAlreadyStartedException";
pub(crate) const UNKNOWN_OPERATION: &str = "UnknownOperationException";
pub(crate) const TOO_LARGE: &str = "RequestTooLargeException";
pub(crate) const REQUEST_TIMEOUT: &str = "RequestTimeoutException";
pub(crate) const UNAVAILABLE: &str = "ServiceUnavailableException";

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
    /// Members of the body beside `Type` and `message` (what went wrong, for a program).
    pub(crate) fields: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.to_owned(), message: message.into(), fields: serde_json::Map::new() }
    }

    /// The same error with one more member in its body.
    pub(crate) fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, INVALID_PARAMETER, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, RESOURCE_NOT_FOUND, message)
    }

    /// `Type` of Lambda's error bodies: `User` for the caller's mistakes, `Service` for ours.
    pub(crate) fn fault(&self) -> &'static str {
        if self.status.is_server_error() { "Service" } else { "User" }
    }

    pub(crate) fn body(&self) -> String {
        let mut body = self.fields.clone();
        body.insert("Type".to_owned(), self.fault().into());
        body.insert("message".to_owned(), self.message.clone().into());
        serde_json::Value::Object(body).to_string()
    }
}

/// The HTTP status Lambda answers an error code with.
pub(crate) fn status_of(code: &str) -> StatusCode {
    match code {
        RESOURCE_NOT_FOUND | UNKNOWN_OPERATION => StatusCode::NOT_FOUND,
        INVALID_PARAMETER => StatusCode::BAD_REQUEST,
        ALREADY_STARTED => StatusCode::CONFLICT,
        TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        REQUEST_TIMEOUT => StatusCode::REQUEST_TIMEOUT,
        UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        "TooManyRequestsException" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            // The service reports some refusals as an error object whose type is the code
            // (e.g. a callback naming an execution it does not have).
            ServiceError::InvalidParameter(object) => {
                let code = match object.error_type.as_deref() {
                    Some(RESOURCE_NOT_FOUND) => RESOURCE_NOT_FOUND,
                    // A payload over its limit: Lambda's answer to a request too large.
                    Some(PAYLOAD_TOO_LARGE_ERROR_TYPE) => TOO_LARGE,
                    _ => INVALID_PARAMETER,
                };
                let message = object.error_message.clone().unwrap_or_else(|| object.to_string());
                ApiError::new(status_of(code), code, message)
            }
            other => {
                let code = other.error_code();
                let status = status_of(code);
                if status.is_server_error() {
                    tracing::error!(error = %other, "control plane: service error");
                }
                ApiError::new(status, code, other.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use durable_core::model::ErrorObject;

    use super::*;

    #[test]
    fn service_errors_map_to_aws_codes_and_statuses() {
        let cases: Vec<(ServiceError, StatusCode, &str)> = vec![
            (ServiceError::NotFound("arn:x".into()), StatusCode::NOT_FOUND, RESOURCE_NOT_FOUND),
            (ServiceError::AlreadyStarted("dup".into()), StatusCode::CONFLICT, ALREADY_STARTED),
            (ServiceError::NotRunning("done".into()), StatusCode::BAD_REQUEST, INVALID_PARAMETER),
            (
                ServiceError::InvalidParameter(ErrorObject::new(INVALID_PARAMETER, "bad id")),
                StatusCode::BAD_REQUEST,
                INVALID_PARAMETER,
            ),
            (
                ServiceError::InvalidParameter(ErrorObject::new(RESOURCE_NOT_FOUND, "no execution")),
                StatusCode::NOT_FOUND,
                RESOURCE_NOT_FOUND,
            ),
            (
                ServiceError::InvalidParameter(ErrorObject::new(PAYLOAD_TOO_LARGE_ERROR_TYPE, "the input is 9 bytes")),
                StatusCode::PAYLOAD_TOO_LARGE,
                TOO_LARGE,
            ),
            (
                ServiceError::Store(durable_core::store::StoreError::TooLarge("a record of 9 bytes".into())),
                StatusCode::PAYLOAD_TOO_LARGE,
                TOO_LARGE,
            ),
        ];
        for (error, status, code) in cases {
            let text = error.to_string();
            let api = ApiError::from(error);
            assert_eq!((api.status, api.code.as_str()), (status, code), "{text}");
        }
        let body: serde_json::Value =
            serde_json::from_str(&ApiError::invalid("the callback id is malformed").body()).unwrap();
        assert_eq!(body, serde_json::json!({"Type": "User", "message": "the callback id is malformed"}));
        let outage = ApiError::new(status_of(UNAVAILABLE), UNAVAILABLE, "the store fails").with("Errors", 3);
        let body: serde_json::Value = serde_json::from_str(&outage.body()).unwrap();
        assert_eq!(body, serde_json::json!({"Type": "Service", "message": "the store fails", "Errors": 3}));
        assert_eq!(status_of(REQUEST_TIMEOUT), StatusCode::REQUEST_TIMEOUT);
    }
}
