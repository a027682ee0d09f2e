//! Plugins: lifecycle hooks for instrumentation (tracing spans, metrics, audit logs).
//!
//! A [`Plugin`] sees each invocation start and end, each operation start and end, and
//! each attempt of a step body (and of a `wait_for_condition` check). Plugins observe:
//! whatever a hook does, returns or panics with, the execution goes on exactly as it
//! would without it. A failing or panicking hook is logged (`tracing`, target
//! `durable::plugin`) and skipped; the other plugins still run.
//!
//! Plugins are attached to a handler ([`FnHandler::plugin`](crate::FnHandler::plugin)),
//! so every runner (local, test, Lambda) calls them the same way.
//!
//! ```
//! use std::sync::Arc;
//! use durable_core::plugin::{InvocationEnd, InvocationStart, Plugin, PluginResult};
//! use durable_core::{DurableContext, Error, handler};
//!
//! struct Audit;
//!
//! impl Plugin for Audit {
//!     fn on_invocation_start(&self, e: &InvocationStart<'_>) -> PluginResult {
//!         println!("{} starts (first: {})", e.execution_arn, e.first_invocation);
//!         Ok(())
//!     }
//!     fn on_invocation_end(&self, e: &InvocationEnd<'_>) -> PluginResult {
//!         println!("{} ends {}", e.execution_arn, e.status);
//!         Ok(())
//!     }
//! }
//!
//! async fn greet(ctx: DurableContext, name: String) -> Result<String, Error> {
//!     ctx.step("greet", async |_| Ok(format!("Hello, {name}!"))).await
//! }
//!
//! let h = handler(greet).plugin(Arc::new(Audit));
//! # let _ = h;
//! ```

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::engine::panic_message;
use crate::model::{ErrorObject, OperationStatus, OperationType};

/// What a hook returns: an error is logged and ignored.
pub type PluginResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Lifecycle hooks. Every method has a default that does nothing; implement the ones you
/// need. Hooks run on the invocation's task, synchronously: keep them quick (hand slow
/// work to a channel). A plugin is shared by every execution of its handler, which may
/// run on several threads at once: hence `Send + Sync`.
pub trait Plugin: Send + Sync + 'static {
    /// A name for log lines about this plugin's failures.
    #[allow(clippy::unnecessary_literal_bound, reason = "implementations may return a name they own")]
    fn name(&self) -> &str {
        "plugin"
    }

    /// The invocation loaded the execution's state and is about to run the function.
    fn on_invocation_start(&self, event: &InvocationStart<'_>) -> PluginResult {
        let _ = event;
        Ok(())
    }

    /// The invocation ended (after its last checkpoint).
    fn on_invocation_end(&self, event: &InvocationEnd<'_>) -> PluginResult {
        let _ = event;
        Ok(())
    }

    /// An operation's START was checkpointed by this invocation (a retried step starts
    /// again for each attempt).
    fn on_operation_start(&self, event: &OperationEvent<'_>) -> PluginResult {
        let _ = event;
        Ok(())
    }

    /// An operation reached a terminal status in this invocation: by its own checkpoint,
    /// or as the service reported it (a wait that elapsed, a callback completed from
    /// outside, an invoked function that finished). Fires once per operation and
    /// invocation; an operation that finished in an earlier invocation and only replays
    /// does not fire again.
    fn on_operation_end(&self, event: &OperationEvent<'_>) -> PluginResult {
        let _ = event;
        Ok(())
    }

    /// A step body (or a `wait_for_condition` check) is about to run an attempt.
    fn on_attempt_start(&self, event: &AttemptEvent<'_>) -> PluginResult {
        let _ = event;
        Ok(())
    }

    /// A step body (or check) finished an attempt.
    fn on_attempt_end(&self, event: &AttemptEvent<'_>) -> PluginResult {
        let _ = event;
        Ok(())
    }
}

/// An invocation starts.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct InvocationStart<'a> {
    /// The execution's ARN.
    pub execution_arn: &'a str,
    /// Whether this is the execution's first invocation (nothing recorded yet besides the
    /// execution itself).
    pub first_invocation: bool,
    /// How many operations were recorded before this invocation.
    pub recorded_operations: usize,
}

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvocationEndStatus {
    /// The execution finished with a result.
    Succeeded,
    /// The execution finished with an error.
    Failed,
    /// The execution is suspended (a wait, a retry delay, a callback, an invoke).
    Pending,
    /// A checkpoint failed transiently: the invocation will be retried.
    Retry,
    /// Another invocation owns the execution now: this one stopped without effect.
    Revoked,
    /// The invocation's stop signal fired (its deadline neared): it stopped taking new work
    /// and will be invoked again.
    Stopped,
}

impl InvocationEndStatus {
    /// The status token: `SUCCEEDED`, `FAILED`, `PENDING`, `RETRY`, `REVOKED` or `STOPPED`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationEndStatus::Succeeded => "SUCCEEDED",
            InvocationEndStatus::Failed => "FAILED",
            InvocationEndStatus::Pending => "PENDING",
            InvocationEndStatus::Retry => "RETRY",
            InvocationEndStatus::Revoked => "REVOKED",
            InvocationEndStatus::Stopped => "STOPPED",
        }
    }

    /// Whether the execution ended with this invocation.
    pub fn is_terminal(self) -> bool {
        matches!(self, InvocationEndStatus::Succeeded | InvocationEndStatus::Failed)
    }
}

impl fmt::Display for InvocationEndStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An invocation ended.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct InvocationEnd<'a> {
    /// The execution's ARN.
    pub execution_arn: &'a str,
    /// How it ended.
    pub status: InvocationEndStatus,
    /// The execution's error, when it failed.
    pub error: Option<&'a ErrorObject>,
}

/// An operation started or ended.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct OperationEvent<'a> {
    /// The execution's ARN.
    pub execution_arn: &'a str,
    /// The operation's id, as the history records it.
    pub operation_id: &'a str,
    /// The id of its parent context, if any.
    pub parent_id: Option<&'a str>,
    /// Its name, if any.
    pub name: Option<&'a str>,
    /// Its type.
    pub op_type: OperationType,
    /// Its sub-type (`Step`, `Wait`, `Map`...).
    pub sub_type: Option<&'a str>,
    /// `STARTED` for a start; the terminal status for an end.
    pub status: OperationStatus,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The body returned a value.
    Succeeded,
    /// The body returned an error or panicked.
    Failed,
}

impl AttemptOutcome {
    /// `SUCCEEDED` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "SUCCEEDED",
            AttemptOutcome::Failed => "FAILED",
        }
    }
}

/// An attempt of a step body (or of a `wait_for_condition` check) starts or ends.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AttemptEvent<'a> {
    /// The execution's ARN.
    pub execution_arn: &'a str,
    /// The operation's id.
    pub operation_id: &'a str,
    /// The id of its parent context, if any.
    pub parent_id: Option<&'a str>,
    /// Its name, if any.
    pub name: Option<&'a str>,
    /// Its type (`STEP`).
    pub op_type: OperationType,
    /// Its sub-type (`Step`, `WaitForCondition`...).
    pub sub_type: Option<&'a str>,
    /// The attempt number, 1-based.
    pub attempt: u32,
    /// `None` at the start; the outcome at the end.
    pub outcome: Option<AttemptOutcome>,
    /// The attempt's error, when it failed.
    pub error: Option<&'a ErrorObject>,
}

/// The plugins of one handler, called in registration order with failures contained.
#[derive(Clone, Default)]
pub struct Plugins(Arc<[Arc<dyn Plugin>]>);

impl Plugins {
    /// A set of plugins.
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Plugins(plugins.into())
    }

    /// Whether there are none (the engine then skips building events).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The plugins.
    pub fn as_slice(&self) -> &[Arc<dyn Plugin>] {
        &self.0
    }

    /// Calls `hook` on every plugin; an error or a panic is logged and the next plugin
    /// runs.
    pub(crate) fn each(&self, hook: &'static str, call: impl Fn(&dyn Plugin) -> PluginResult) {
        for plugin in self.0.iter() {
            match std::panic::catch_unwind(AssertUnwindSafe(|| call(&**plugin))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(target: "durable::plugin", plugin = plugin.name(), hook, error = %e,
                        "plugin hook failed; the execution goes on");
                }
                Err(panic) => {
                    tracing::warn!(target: "durable::plugin", plugin = plugin.name(), hook,
                        panic = %panic_message(panic.as_ref()), "plugin hook panicked; the execution goes on");
                }
            }
        }
    }
}

impl fmt::Debug for Plugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|p| p.name())).finish()
    }
}
