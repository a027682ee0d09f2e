//! The error type user code sees.

use std::fmt;

use crate::model::ErrorObject;

/// Which durable operation an [`Error`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An error raised by user code (converted with `?` or built with [`Error::new`]).
    User,
    /// A step failed for good (its retries are spent or the filter refused a retry).
    Step,
    /// A child context failed.
    ChildContext,
    /// A step was interrupted mid-attempt (at-most-once semantics) and may not re-run.
    StepInterrupted,
    /// A value could not be serialised or deserialised.
    Serdes,
    /// An argument was invalid (for example a wait of zero seconds).
    Validation,
    /// A wait was cancelled.
    WaitCancelled,
    /// A payload is larger than the checkpoint store accepts.
    PayloadTooLarge,
    /// A callback failed or was cancelled from outside.
    CallbackFailed,
    /// A callback timed out (`Callback.Timeout` or `Callback.Heartbeat`).
    CallbackTimedOut,
    /// The submitter of `wait_for_callback` failed.
    CallbackSubmitter,
    /// A chained invoke failed, timed out or was stopped.
    Invoke,
    /// A `wait_for_condition` check failed.
    WaitForCondition,
    /// A map or parallel batch did not meet its completion criteria.
    BatchCompletion,
    /// Every member of `any` failed.
    Combinator,
    /// One or more saga compensations failed.
    Compensation,
}

/// An error as durable code sees it: an [`ErrorObject`] (type, message, data, stack trace)
/// plus the kind of operation it surfaced from.
///
/// Any `std::error::Error` converts into it with `?`; the error type is recorded as the
/// Rust type name and the message as its `Display`. Because a failed step is recorded as
/// an `ErrorObject`, a replay rebuilds exactly the error the first run saw: match on
/// [`Error::error_type`] and [`Error::message`], not on the original Rust type.
///
/// Like `anyhow::Error`, this type does not implement `std::error::Error` itself, which is
/// what lets every error type convert into it.
pub struct Error {
    kind: ErrorKind,
    object: ErrorObject,
}

impl Error {
    /// An error with a type and a message, e.g. `Error::new("PaymentDeclined", "card expired")`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::User, object: ErrorObject::new(error_type, message) }
    }

    /// An error with only a message; its type is `Error`.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::new("Error", message.to_string())
    }

    /// An error from its protocol form.
    pub fn from_object(kind: ErrorKind, object: ErrorObject) -> Self {
        Error { kind, object }
    }

    /// Converts any standard error, recording its type name, message and source chain.
    pub fn from_std<E: std::error::Error + ?Sized>(error: &E, type_name: &str) -> Self {
        let mut chain = Vec::new();
        let mut source = error.source();
        while let Some(s) = source {
            chain.push(format!("caused by: {s}"));
            source = s.source();
        }
        Error {
            kind: ErrorKind::User,
            object: ErrorObject {
                error_message: Some(error.to_string()),
                error_type: Some(type_name.to_owned()),
                error_data: None,
                stack_trace: if chain.is_empty() { None } else { Some(chain) },
            },
        }
    }

    /// Attaches machine-readable data (for example JSON text).
    pub fn with_data(mut self, data: impl Into<String>) -> Self {
        self.object.error_data = Some(data.into());
        self
    }

    /// Re-labels the kind, keeping the error object (how wrappers keep the original
    /// type, data and stack trace).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The operation kind this error surfaced from.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The recorded error type.
    pub fn error_type(&self) -> Option<&str> {
        self.object.error_type.as_deref()
    }

    /// The recorded message.
    pub fn message(&self) -> Option<&str> {
        self.object.error_message.as_deref()
    }

    /// The recorded data.
    pub fn data(&self) -> Option<&str> {
        self.object.error_data.as_deref()
    }

    /// The protocol form.
    pub fn object(&self) -> &ErrorObject {
        &self.object
    }

    /// Into the protocol form.
    pub fn into_object(self) -> ErrorObject {
        self.object
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Validation, object: ErrorObject::new(VALIDATION_ERROR_TYPE, message) }
    }

    pub(crate) fn serdes(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Serdes, object: ErrorObject::new(SERDES_ERROR_TYPE, message) }
    }
}

/// The error type recorded for a value that could not be serialised or deserialised.
pub const SERDES_ERROR_TYPE: &str = "SerDesError";

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::from_std(&e, std::any::type_name::<E>())
    }
}

impl From<ErrorObject> for Error {
    fn from(object: ErrorObject) -> Self {
        Error { kind: ErrorKind::User, object }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error").field("kind", &self.kind).field("object", &self.object).finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.object, f)
    }
}

impl Clone for Error {
    fn clone(&self) -> Self {
        Error { kind: self.kind, object: self.object.clone() }
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.object == other.object
    }
}

/// A [`std::error::Error`] carrying a durable [`Error`], so it converts into
/// `Box<dyn std::error::Error>` (for `main`, `?` in tests, other error libraries).
struct StdErrorBox(Error);

impl fmt::Debug for StdErrorBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for StdErrorBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StdErrorBox {}

impl From<Error> for Box<dyn std::error::Error + Send + Sync + 'static> {
    fn from(e: Error) -> Self {
        Box::new(StdErrorBox(e))
    }
}

impl From<Error> for Box<dyn std::error::Error + 'static> {
    fn from(e: Error) -> Self {
        Box::new(StdErrorBox(e))
    }
}

/// `Result<T, durable::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error type recorded for a step result larger than the store accepts.
pub const PAYLOAD_TOO_LARGE_ERROR_TYPE: &str = "PayloadTooLargeError";

/// The error type given to the retry strategy when an at-most-once step was interrupted.
pub const STEP_INTERRUPTED_ERROR_TYPE: &str = "StepInterruptedError";

/// The error type of invalid arguments.
pub const VALIDATION_ERROR_TYPE: &str = "ValidationError";

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("card {0} declined")]
    struct Declined(u32);

    #[test]
    fn std_errors_convert_with_their_type_name() {
        let e: Error = Declined(7).into();
        assert_eq!(e.kind(), ErrorKind::User);
        assert_eq!(e.message(), Some("card 7 declined"));
        assert!(e.error_type().unwrap().ends_with("Declined"), "{:?}", e.error_type());
        assert_eq!(e.to_string(), format!("{}: card 7 declined", e.error_type().unwrap()));
    }

    #[test]
    fn wrappers_keep_the_original_object() {
        let e = Error::new("T", "m").with_data("{\"x\":1}").with_kind(ErrorKind::Step);
        assert_eq!(e.kind(), ErrorKind::Step);
        assert_eq!(e.error_type(), Some("T"));
        assert_eq!(e.data(), Some("{\"x\":1}"));
    }
}
