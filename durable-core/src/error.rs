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
/// Any `std::error::Error` converts into it with `?`: the message is its `Display`, the
/// stack trace its chain of sources, and the recorded `ErrorType` is **the crate and the
/// name of its type**, without module path or generic arguments: `my_app::Declined` for
/// `my_app::payments::Declined<u32>`, `std::ParseIntError`, `serde_json::Error` (types of
/// `core` and `alloc` read `std`). Moving a type between modules or upgrading the compiler
/// does not change it (a test pins it); renaming the type or the crate does. Retry filters
/// match a type exactly or by its last `::` segment (`Declined`). Errors whose type is
/// erased (`Box<dyn Error>`, `anyhow::Error`, a `String`) are recorded as `Error`.
///
/// To choose the type yourself, build the error with [`Error::new`], rename one with
/// [`Error::with_type`], or name it where it is raised with [`ResultExt::error_type`]:
///
/// ```
/// use durable_core::{Error, Result, ResultExt};
///
/// fn parse(text: &str) -> Result<u32> {
///     let n: u32 = text.parse().error_type("BadQuantity")?;
///     if n == 0 {
///         return Err(Error::new("EmptyOrder", "an order needs at least one item"));
///     }
///     Ok(n)
/// }
///
/// assert_eq!(parse("x").unwrap_err().error_type(), Some("BadQuantity"));
/// assert_eq!(parse("0").unwrap_err().error_type(), Some("EmptyOrder"));
/// ```
///
/// Because a failed step is recorded as an `ErrorObject`, a replay rebuilds exactly the
/// error the first run saw: match on [`Error::error_type`] and [`Error::message`], not on
/// the original Rust type.
///
/// Like `anyhow::Error`, this type does not implement `std::error::Error` itself, which is
/// what lets every error type convert into it; it converts into `Box<dyn std::error::Error
/// + Send + Sync>` (and, with the `anyhow` feature, into `anyhow::Error`) and back without
/// losing anything, so `?` works in functions that return those.
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

    /// Converts any standard error, recording `error_type`, its message and its chain of
    /// sources.
    pub fn from_std<E: std::error::Error + ?Sized>(error: &E, error_type: &str) -> Self {
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
                error_type: Some(error_type.to_owned()),
                error_data: None,
                stack_trace: if chain.is_empty() { None } else { Some(chain) },
            },
        }
    }

    /// Converts any error a durable function may return: [`Error`] itself (unchanged,
    /// also when it travelled boxed or inside an `anyhow::Error`), a standard error (its
    /// type named as described at [`Error`]), or a type-erased one (`Box<dyn Error>`,
    /// `anyhow::Error`, `String`: type `Error`).
    pub fn from_any<E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static>(error: E) -> Self {
        let any: &dyn std::any::Any = &error;
        if let Some(e) = any.downcast_ref::<Error>() {
            return e.clone();
        }
        #[cfg(feature = "anyhow")]
        if let Some(e) = any.downcast_ref::<anyhow::Error>() {
            return Error::from_anyhow(e);
        }
        let erased = any.is::<Box<dyn std::error::Error + Send + Sync>>() || any.is::<String>() || any.is::<&str>();
        let error_type = if erased { "Error".to_owned() } else { type_label(std::any::type_name::<E>()) };
        let boxed: Box<dyn std::error::Error + Send + Sync> = error.into();
        match boxed.downcast::<StdErrorBox>() {
            Ok(original) => original.0,
            Err(other) => Error::from_std(&*other, &error_type),
        }
    }

    /// An `anyhow::Error`: the durable error it carries (its message extended by any
    /// context added on the way), or a new one of type `Error` with the whole chain.
    #[cfg(feature = "anyhow")]
    fn from_anyhow(e: &anyhow::Error) -> Self {
        match e.downcast_ref::<StdErrorBox>() {
            Some(inner) if e.chain().count() == 1 => inner.0.clone(),
            Some(inner) => {
                let mut object = inner.0.object.clone();
                object.error_message = Some(format!("{e:#}"));
                Error { kind: inner.0.kind, object }
            }
            None => {
                let mut error = Error::from_std(&**e, "Error");
                error.object.error_message = Some(format!("{e:#}"));
                error
            }
        }
    }

    /// The same error with another recorded type.
    #[must_use]
    pub fn with_type(mut self, error_type: impl Into<String>) -> Self {
        self.object.error_type = Some(error_type.into());
        self
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

    /// `what` is `size` bytes, more than its `limit` (a [`Limits`](crate::checkpoint::Limits) maximum).
    pub(crate) fn payload_too_large(what: impl fmt::Display, size: usize, limit: usize) -> Self {
        Error { kind: ErrorKind::PayloadTooLarge, object: payload_too_large(what, size, limit) }
    }
}

/// The error of a payload over its limit, as the engine and the service word it.
pub(crate) fn payload_too_large(what: impl fmt::Display, size: usize, limit: usize) -> ErrorObject {
    ErrorObject::new(
        PAYLOAD_TOO_LARGE_ERROR_TYPE,
        format!("{what} is {size} bytes; at most {limit} bytes are accepted"),
    )
}

/// The error type recorded for a value that could not be serialised or deserialised.
pub const SERDES_ERROR_TYPE: &str = "SerDesError";

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::from_std(&e, &type_label(std::any::type_name::<E>()))
    }
}

/// The recorded type of a converted error: the crate and the type's own name, from a
/// full type name (`my_app::payments::Declined<u32>` reads `my_app::Declined`; `core` and
/// `alloc` read `std`).
pub(crate) fn type_label(full: &str) -> String {
    let path = full.split('<').next().unwrap_or(full).trim_start_matches('&');
    let ident = path.rsplit("::").next().unwrap_or(path);
    let krate = match path.split("::").next().unwrap_or(path) {
        "core" | "alloc" => "std",
        k => k,
    };
    if krate == path { ident.to_owned() } else { format!("{krate}::{ident}") }
}

/// Names the error type of a failure where it is raised.
pub trait ResultExt<T> {
    /// The error, converted into an [`Error`] whose recorded type is `error_type`.
    ///
    /// # Errors
    ///
    /// The converted error, when `self` is an error.
    fn error_type(self, error_type: &str) -> Result<T, Error>;
}

impl<T, E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static> ResultExt<T> for Result<T, E> {
    fn error_type(self, error_type: &str) -> Result<T, Error> {
        self.map_err(|e| Error::from_any(e).with_type(error_type))
    }
}

#[cfg(feature = "anyhow")]
impl From<Error> for anyhow::Error {
    fn from(e: Error) -> Self {
        anyhow::Error::new(StdErrorBox(e))
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

/// The error type of a payload over its limit (a step's or the execution's result, an
/// invoke's input, an execution's input or a callback's result refused by the service).
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
        assert_eq!(e.error_type(), Some("durable_core::Declined"), "crate and type, no module path");
        assert_eq!(e.to_string(), "durable_core::Declined: card 7 declined");
    }

    mod deep {
        pub(super) mod inside {
            #[derive(Debug, thiserror::Error)]
            #[error("wrapped")]
            pub(crate) struct Wrapper<T: std::fmt::Debug>(pub(crate) T);
        }
    }

    // The recorded types are stored in histories and matched by retry filters: these
    // pin them (a compiler that renders type names differently fails here, not in
    // production).
    #[test]
    fn recorded_error_types_are_stable() {
        let types = [
            Error::from("x".parse::<u32>().unwrap_err()),
            Error::from(deep::inside::Wrapper(vec![1u8])),
            Error::from(std::io::Error::other("disk")),
            Error::from(serde_json::from_str::<u8>("x").unwrap_err()),
            Error::from(String::from_utf8(vec![0xff]).unwrap_err()),
        ]
        .map(|e| e.error_type().unwrap().to_owned());
        assert_eq!(
            types,
            ["std::ParseIntError", "durable_core::Wrapper", "std::Error", "serde_json::Error", "std::FromUtf8Error"]
        );
        assert_eq!(type_label("Declined"), "Declined");
    }

    #[test]
    fn any_error_a_function_returns_converts_without_loss() {
        let original = Error::new("PaymentDeclined", "card expired").with_data("{}").with_kind(ErrorKind::Step);
        let boxed: Box<dyn std::error::Error + Send + Sync> = original.clone().into();
        assert_eq!(Error::from_any(boxed), original, "a durable error survives a trip through a box");
        assert_eq!(Error::from_any(original.clone()), original);
        let erased: Box<dyn std::error::Error + Send + Sync> = Box::new(Declined(3));
        let e = Error::from_any(erased);
        assert_eq!((e.error_type(), e.message()), (Some("Error"), Some("card 3 declined")));
        let e = Error::from_any(Declined(4));
        assert_eq!(e.error_type(), Some("durable_core::Declined"));
        let e = Error::from_any("no stock".to_owned());
        assert_eq!((e.error_type(), e.message()), (Some("Error"), Some("no stock")));
        let named: Result<u32, Error> = "x".parse::<u32>().error_type("BadCount");
        assert_eq!(named.unwrap_err().error_type(), Some("BadCount"));
    }

    #[cfg(feature = "anyhow")]
    #[test]
    fn anyhow_errors_convert_both_ways() {
        let original = Error::new("PaymentDeclined", "card expired");
        let a: anyhow::Error = original.clone().into();
        assert_eq!(Error::from_any(a), original);
        let with_context = anyhow::Error::from(original).context("charging");
        let e = Error::from_any(with_context);
        assert_eq!(e.error_type(), Some("PaymentDeclined"));
        assert_eq!(e.message(), Some("charging: PaymentDeclined: card expired"));
        let plain = Error::from_any(anyhow::anyhow!("no stock"));
        assert_eq!((plain.error_type(), plain.message()), (Some("Error"), Some("no stock")));
    }

    #[test]
    fn wrappers_keep_the_original_object() {
        let e = Error::new("T", "m").with_data("{\"x\":1}").with_kind(ErrorKind::Step);
        assert_eq!(e.kind(), ErrorKind::Step);
        assert_eq!(e.error_type(), Some("T"));
        assert_eq!(e.data(), Some("{\"x\":1}"));
    }
}
