//! Operation updates: what the function sends in a checkpoint (`OperationUpdate`).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ErrorObject, OperationType, SubType};

/// What an update does (`OperationAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationAction {
    /// Create the operation (or start the next attempt of a READY step).
    Start,
    /// Finish with a result.
    Succeed,
    /// Finish with an error.
    Fail,
    /// Record a failed attempt (or a `wait_for_condition` poll) and schedule the next one.
    Retry,
    /// Cancel (waits).
    Cancel,
}

impl OperationAction {
    /// The wire name, e.g. `SUCCEED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationAction::Start => "START",
            OperationAction::Succeed => "SUCCEED",
            OperationAction::Fail => "FAIL",
            OperationAction::Retry => "RETRY",
            OperationAction::Cancel => "CANCEL",
        }
    }
}

impl fmt::Display for OperationAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `ContextOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContextOptions {
    /// Replay re-runs the children to rebuild the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_children: Option<bool>,
}

/// `StepOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepOptions {
    /// Delay before the next attempt, 1 to 31,622,400 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_delay_seconds: Option<u32>,
}

/// `WaitOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitOptions {
    /// How long to wait, 1 to 31,622,400 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u32>,
}

/// `CallbackOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallbackOptions {
    /// Overall timeout in seconds (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Heartbeat timeout in seconds (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_seconds: Option<u32>,
}

/// `ChainedInvokeOptions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChainedInvokeOptions {
    /// The function to invoke (name or ARN).
    pub function_name: String,
    /// The tenant the invoke runs for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The X-Ray trace header to pass on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xamzn_trace_id: Option<String>,
}

/// One update in a checkpoint batch (`OperationUpdate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationUpdate {
    /// The operation id.
    pub id: Arc<str>,
    /// The enclosing CONTEXT operation.
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
    /// What to do.
    pub action: OperationAction,
    /// The result (SUCCEED, RETRY of a poll) or the input (START of a chained invoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Arc<str>>,
    /// The error (FAIL, RETRY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// Options of a CONTEXT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_options: Option<ContextOptions>,
    /// Options of a STEP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_options: Option<StepOptions>,
    /// Options of a WAIT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_options: Option<WaitOptions>,
    /// Options of a CALLBACK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_options: Option<CallbackOptions>,
    /// Options of a CHAINED_INVOKE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chained_invoke_options: Option<ChainedInvokeOptions>,
}

impl OperationUpdate {
    /// A bare update with no payload or options.
    pub fn new(id: impl Into<Arc<str>>, op_type: OperationType, action: OperationAction) -> Self {
        OperationUpdate {
            id: id.into(),
            parent_id: None,
            name: None,
            op_type,
            sub_type: None,
            action,
            payload: None,
            error: None,
            context_options: None,
            step_options: None,
            wait_options: None,
            callback_options: None,
            chained_invoke_options: None,
        }
    }

    /// The approximate serialised size, for batch limits.
    pub fn approx_size(&self) -> usize {
        120 + self.id.len()
            + self.parent_id.as_ref().map_or(0, |p| p.len())
            + self.name.as_ref().map_or(0, |n| n.len())
            + self.payload.as_ref().map_or(0, |p| p.len())
            + self.error.as_ref().map_or(0, ErrorObject::approx_size)
    }
}
