//! Operations: the records of an execution's log (`Operation` in the Lambda API model).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// The kind of a durable operation (`OperationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationType {
    /// The execution itself; its id is the execution id.
    Execution,
    /// A child context: `run_in_child_context`, map, parallel and their branches.
    Context,
    /// A step (also `wait_for_condition` and the deterministic `now`/`random`/`uuid`).
    Step,
    /// A durable timer.
    Wait,
    /// A callback completed from outside the execution.
    Callback,
    /// A chained invoke of another function.
    ChainedInvoke,
}

impl OperationType {
    /// The wire name, e.g. `CHAINED_INVOKE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationType::Execution => "EXECUTION",
            OperationType::Context => "CONTEXT",
            OperationType::Step => "STEP",
            OperationType::Wait => "WAIT",
            OperationType::Callback => "CALLBACK",
            OperationType::ChainedInvoke => "CHAINED_INVOKE",
        }
    }
}

impl fmt::Display for OperationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The status of an operation (`OperationStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationStatus {
    /// Started and not finished.
    Started,
    /// Waiting for a retry timer (steps).
    Pending,
    /// The retry timer fired; the next attempt may start.
    Ready,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled (waits).
    Cancelled,
    /// Timed out (callbacks, chained invokes, executions).
    TimedOut,
    /// Stopped from outside.
    Stopped,
}

impl OperationStatus {
    /// The wire name, e.g. `TIMED_OUT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Started => "STARTED",
            OperationStatus::Pending => "PENDING",
            OperationStatus::Ready => "READY",
            OperationStatus::Succeeded => "SUCCEEDED",
            OperationStatus::Failed => "FAILED",
            OperationStatus::Cancelled => "CANCELLED",
            OperationStatus::TimedOut => "TIMED_OUT",
            OperationStatus::Stopped => "STOPPED",
        }
    }

    /// Whether the operation is finished for good.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            OperationStatus::Succeeded
                | OperationStatus::Failed
                | OperationStatus::Cancelled
                | OperationStatus::TimedOut
                | OperationStatus::Stopped
        )
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An operation's sub-type (`OperationSubType`): the SDK-level kind, or a custom value
/// (1 to 32 characters of `[A-Za-z0-9_-]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubType(Cow<'static, str>);

impl SubType {
    /// `Step`
    pub const STEP: &'static str = "Step";
    /// `Wait`
    pub const WAIT: &'static str = "Wait";
    /// `Callback`
    pub const CALLBACK: &'static str = "Callback";
    /// `RunInChildContext`
    pub const RUN_IN_CHILD_CONTEXT: &'static str = "RunInChildContext";
    /// `Map`
    pub const MAP: &'static str = "Map";
    /// `MapIteration`
    pub const MAP_ITERATION: &'static str = "MapIteration";
    /// `Parallel`
    pub const PARALLEL: &'static str = "Parallel";
    /// `ParallelBranch`
    pub const PARALLEL_BRANCH: &'static str = "ParallelBranch";
    /// `WaitForCallback`
    pub const WAIT_FOR_CALLBACK: &'static str = "WaitForCallback";
    /// `WaitForCondition`
    pub const WAIT_FOR_CONDITION: &'static str = "WaitForCondition";
    /// `ChainedInvoke`
    pub const CHAINED_INVOKE: &'static str = "ChainedInvoke";

    /// A sub-type from any string (not validated; see [`SubType::validate`]). Static
    /// strings are not copied.
    pub fn new(s: impl Into<Cow<'static, str>>) -> Self {
        SubType(s.into())
    }

    /// The sub-type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the service's rule for sub-types: 1 to 32 characters of `[A-Za-z0-9_-]`.
    pub fn validate(s: &str) -> Result<(), String> {
        if s.is_empty() || s.len() > 32 {
            return Err(format!("sub-type {s:?} must be 1 to 32 characters long"));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("sub-type {s:?} may only contain [A-Za-z0-9_-]"));
        }
        Ok(())
    }
}

impl From<&str> for SubType {
    fn from(s: &str) -> Self {
        SubType(Cow::Owned(s.to_owned()))
    }
}

impl From<String> for SubType {
    fn from(s: String) -> Self {
        SubType(Cow::Owned(s))
    }
}

impl PartialEq<str> for SubType {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for SubType {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for SubType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// An error as the protocol carries it (`ErrorObject`). Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorObject {
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The error's type, e.g. `myapp::PaymentDeclined` or `Callback.Timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Extra machine-readable data (often JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<String>,
    /// Stack trace lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<Vec<String>>,
}

impl ErrorObject {
    /// An error with a type and a message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorObject {
            error_message: Some(message.into()),
            error_type: Some(error_type.into()),
            error_data: None,
            stack_trace: None,
        }
    }

    /// The approximate serialised size, for payload limits.
    pub fn approx_size(&self) -> usize {
        self.error_message.as_ref().map_or(0, String::len)
            + self.error_type.as_ref().map_or(0, String::len)
            + self.error_data.as_ref().map_or(0, String::len)
            + self.stack_trace.as_ref().map_or(0, |v| v.iter().map(String::len).sum())
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.error_type, &self.error_message) {
            (Some(t), Some(m)) => write!(f, "{t}: {m}"),
            (Some(t), None) => f.write_str(t),
            (None, Some(m)) => f.write_str(m),
            (None, None) => f.write_str("unknown error"),
        }
    }
}

/// `ExecutionDetails`: the input of the execution.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionDetails {
    /// The input payload as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_payload: Option<Arc<str>>,
}

/// `ContextDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContextDetails {
    /// Replay must re-run the body to rebuild the result (large results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_children: Option<bool>,
    /// The context's result payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Arc<str>>,
    /// The context's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `StepDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepDetails {
    /// The number of the current (or last) attempt, 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// When a pending retry becomes ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_timestamp: Option<Timestamp>,
    /// The step's result payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Arc<str>>,
    /// The step's (last) error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `WaitDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitDetails {
    /// When the wait ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_end_timestamp: Option<Timestamp>,
}

/// `CallbackDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallbackDetails {
    /// The id to complete the callback with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    /// The result sent with the success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Arc<str>>,
    /// The error sent with the failure, or the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `ChainedInvokeDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChainedInvokeDetails {
    /// The invoked function's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Arc<str>>,
    /// The invoked function's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// One operation of an execution (`Operation`).
///
/// The details blocks are boxed: an operation carries at most one, and keeping the record
/// small keeps large executions' replays cache-friendly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Operation {
    /// The operation id (1 to 64 characters of `[A-Za-z0-9_-]`).
    pub id: Arc<str>,
    /// The enclosing CONTEXT operation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<Arc<str>>,
    /// The user-given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    /// The operation kind.
    #[serde(rename = "Type")]
    pub op_type: OperationType,
    /// The SDK-level kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<SubType>,
    /// When the operation started.
    pub start_timestamp: Timestamp,
    /// When the operation ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<Timestamp>,
    /// The current status.
    pub status: OperationStatus,
    /// Details of an EXECUTION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_details: Option<Box<ExecutionDetails>>,
    /// Details of a CONTEXT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_details: Option<Box<ContextDetails>>,
    /// Details of a STEP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_details: Option<Box<StepDetails>>,
    /// Details of a WAIT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_details: Option<Box<WaitDetails>>,
    /// Details of a CALLBACK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_details: Option<Box<CallbackDetails>>,
    /// Details of a CHAINED_INVOKE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chained_invoke_details: Option<Box<ChainedInvokeDetails>>,
}

impl Operation {
    /// A new operation record with no details.
    pub fn new(id: impl Into<Arc<str>>, op_type: OperationType, status: OperationStatus, start: Timestamp) -> Self {
        Operation {
            id: id.into(),
            parent_id: None,
            name: None,
            op_type,
            sub_type: None,
            start_timestamp: start,
            end_timestamp: None,
            status,
            execution_details: None,
            context_details: None,
            step_details: None,
            wait_details: None,
            callback_details: None,
            chained_invoke_details: None,
        }
    }

    /// The result payload recorded on this operation, whatever its type.
    pub fn result_payload(&self) -> Option<&str> {
        match self.op_type {
            OperationType::Step => self.step_details.as_ref()?.result.as_deref(),
            OperationType::Context => self.context_details.as_ref()?.result.as_deref(),
            OperationType::Callback => self.callback_details.as_ref()?.result.as_deref(),
            OperationType::ChainedInvoke => self.chained_invoke_details.as_ref()?.result.as_deref(),
            OperationType::Execution | OperationType::Wait => None,
        }
    }

    /// The error recorded on this operation, whatever its type.
    pub fn error(&self) -> Option<&ErrorObject> {
        match self.op_type {
            OperationType::Step => self.step_details.as_ref()?.error.as_ref(),
            OperationType::Context => self.context_details.as_ref()?.error.as_ref(),
            OperationType::Callback => self.callback_details.as_ref()?.error.as_ref(),
            OperationType::ChainedInvoke => self.chained_invoke_details.as_ref()?.error.as_ref(),
            OperationType::Execution | OperationType::Wait => None,
        }
    }

    /// The approximate serialised size of this record, for paging by bytes.
    pub fn approx_size(&self) -> usize {
        let details = self.execution_details.as_ref().map_or(0, |d| d.input_payload.as_ref().map_or(0, |p| p.len()))
            + self.result_payload().map_or(0, str::len)
            + self.error().map_or(0, ErrorObject::approx_size);
        200 + self.id.len()
            + self.parent_id.as_ref().map_or(0, |p| p.len())
            + self.name.as_ref().map_or(0, |n| n.len())
            + details
    }
}

/// Checks the service's rule for operation ids: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub fn validate_operation_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("operation id {id:?} must be 1 to 64 characters long"));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(format!("operation id {id:?} may only contain [A-Za-z0-9_-]"));
    }
    Ok(())
}

/// Checks the service's rule for names: 1 to 256 printable ASCII characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 256 {
        return Err(format!("name {name:?} must be 1 to 256 characters long"));
    }
    if !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("name {name:?} may only contain printable ASCII characters"));
    }
    Ok(())
}
