//! # durable: durable functions for Rust
//!
//! Write an ordinary `async fn`, put [`#[durable]`](durable) on it, and call durable
//! operations on its [`DurableContext`]: [`step`](DurableContext::step),
//! [`wait`](DurableContext::wait), [`run_in_child_context`](DurableContext::run_in_child_context),
//! [`now`](DurableContext::now), [`random`](DurableContext::random),
//! [`uuid`](DurableContext::uuid). Each operation's outcome is checkpointed. When the
//! process dies, times out, or suspends to wait an hour, the function is invoked again,
//! replays from the top with the recorded results instead of re-running finished work, and
//! goes on.
//!
//! The execution model is AWS Lambda durable functions', field for field: the same
//! operations, statuses, updates and history events ([`model`]).
//!
//! This crate is the one to depend on: it re-exports the engine (`durable-core`) and the
//! runners (`durable-runtime`).

#![forbid(unsafe_code)]

pub use durable_core::{
    ALL_FAILED_ERROR_TYPE, BatchItem, BatchResult, COMPENSATION_FAILED_ERROR_TYPE, Callback, ChildContext,
    CompletionConfig, CompletionReason, CreateCallback, DurableContext, DurableFn, Error, ErrorKind, FnHandler,
    Handler, Invoke, ItemStatus, Map, Members, Name, Nesting, Now, PATCH_SUB_TYPE, Parallel, PollUntil, Random, Result,
    ResultExt, Saga, SagaStep, Step, StepContext, StepSemantics, Uuid, Wait, WaitDecision, WaitForCallback,
    WaitForCondition, WaitStrategy, checkpoint, clock, durable, engine, handler, id, invocation, model, plugin,
    poll_until, retry, serdes, service, store, testing,
};
pub use durable_core::{debug, error, info, log, trace, warn};
/// AWS Lambda: the entry point of a `cargo lambda` binary (feature `lambda`).
#[cfg(feature = "lambda")]
pub use durable_runtime::lambda;
pub use durable_runtime::{
    LocalRunner, LocalRunnerBuilder, RunnerError, client, control_plane, health, inspect, local,
};

#[doc(hidden)]
pub use durable_core::__private;

/// The replay tester: does the current code still replay a recorded execution? The check
/// (`check`, `RecordedExecution`, the report) and its command line (`cli`,
/// `cli_with_args`).
pub mod replay {
    pub use durable_core::replay::*;
    pub use durable_runtime::replay::{cli, cli_with_args};
}

/// The names most durable code needs: `use durable::prelude::*;`.
pub mod prelude {
    pub use crate::retry::{Backoff, Jitter, presets};
    pub use crate::{
        CompletionConfig, DurableContext, Error, Handler, LocalRunner, Name, Nesting, Result, ResultExt, StepContext,
        StepSemantics, durable, handler,
    };
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
