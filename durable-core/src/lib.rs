//! The core of **durable**: the execution model of AWS Lambda durable functions, the
//! replay engine, the self-hosted checkpoint service and its stores.
//!
//! Most users depend on the `durable` crate, which re-exports this one; see its
//! documentation for a tour. This crate knows nothing about Lambda.

#![forbid(unsafe_code)]

// Lets `#[durable]` (whose output names `::durable::__private`) be used inside this
// crate's own tests and doctests.
#[allow(unused_extern_crates)]
extern crate self as durable;

pub mod checkpoint;
pub mod clock;
mod context;
pub mod engine;
mod error;
mod free;
pub mod handler;
pub mod id;
pub mod invocation;
mod log;
pub mod model;
pub mod plugin;
pub mod replay;
pub mod retry;
pub mod serdes;
pub mod service;
pub mod store;
pub mod testing;

pub use context::{
    ALL_FAILED_ERROR_TYPE, BatchItem, BatchResult, COMPENSATION_FAILED_ERROR_TYPE, Callback, ChildContext,
    CompletionConfig, CompletionReason, CreateCallback, DurableContext, Invoke, ItemStatus, Map, Members, Name,
    Nesting, Now, PATCH_SUB_TYPE, Parallel, PollUntil, Random, Saga, SagaStep, Step, StepContext, StepSemantics, Uuid,
    Wait, WaitDecision, WaitForCallback, WaitForCondition, WaitStrategy, poll_until,
};
pub use durable_macros::durable;
pub use error::{
    Error, ErrorKind, PAYLOAD_TOO_LARGE_ERROR_TYPE, Result, ResultExt, SERDES_ERROR_TYPE, STEP_INTERRUPTED_ERROR_TYPE,
    VALIDATION_ERROR_TYPE,
};
pub use handler::{DurableFn, FnHandler, Handler, handler};

/// Support code for `#[durable]` and the logging macros. **Not public API**: anything
/// here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::id::Site;
    pub use tracing;

    use crate::context::{DurableContext, StepContext};

    /// Something `#[durable]` may attach a call site to: a context, or a reference to one.
    pub trait ContextRef {
        /// The context.
        fn __durable_context(&self) -> &DurableContext;
    }

    impl ContextRef for DurableContext {
        fn __durable_context(&self) -> &DurableContext {
            self
        }
    }

    impl<T: ContextRef + ?Sized> ContextRef for &T {
        fn __durable_context(&self) -> &DurableContext {
            (**self).__durable_context()
        }
    }

    impl<T: ContextRef + ?Sized> ContextRef for &mut T {
        fn __durable_context(&self) -> &DurableContext {
            (**self).__durable_context()
        }
    }

    /// `ctx` with the compile-time call site `site` attached; the durable method called
    /// on the result takes its operation id from the site.
    pub fn at<C: ContextRef + ?Sized>(ctx: &C, site: &'static Site) -> DurableContext {
        ctx.__durable_context().__at(site)
    }

    /// What the logging macros accept: a context or a step context.
    pub trait LogContext {
        /// Whether to suppress the line (the code is replaying).
        fn __is_replaying(&self) -> bool;
        /// The execution ARN, for the log fields.
        fn __execution_arn(&self) -> &str;
        /// The operation the line belongs to (the parent context, or the step).
        fn __operation_id(&self) -> Option<&str>;
    }

    impl LogContext for DurableContext {
        fn __is_replaying(&self) -> bool {
            self.is_replaying()
        }
        fn __execution_arn(&self) -> &str {
            self.execution_arn()
        }
        fn __operation_id(&self) -> Option<&str> {
            self.parent_id()
        }
    }

    impl LogContext for StepContext {
        fn __is_replaying(&self) -> bool {
            false
        }
        fn __execution_arn(&self) -> &str {
            self.execution_arn()
        }
        fn __operation_id(&self) -> Option<&str> {
            Some(self.operation_id())
        }
    }

    impl<T: LogContext + ?Sized> LogContext for &T {
        fn __is_replaying(&self) -> bool {
            (**self).__is_replaying()
        }
        fn __execution_arn(&self) -> &str {
            (**self).__execution_arn()
        }
        fn __operation_id(&self) -> Option<&str> {
            (**self).__operation_id()
        }
    }
}
