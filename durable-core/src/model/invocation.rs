//! The invocation protocol and the control-plane documents of the Lambda durable API.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ErrorObject, Event, Operation, OperationUpdate, Timestamp};

/// A page of operations: `InitialExecutionState`, `NewExecutionState` and the response
/// of `GetDurableExecutionState` share this shape.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionState {
    /// The operations of this page.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Where the next page starts; absent or empty on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

impl ExecutionState {
    /// The marker of the next page, treating `""` as none.
    pub fn next_page(&self) -> Option<&str> {
        self.next_marker.as_deref().filter(|m| !m.is_empty())
    }
}

/// What a durable function receives on each invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DurableExecutionInvocationInput {
    /// The execution's ARN.
    pub durable_execution_arn: String,
    /// The token for the first checkpoint of this invocation.
    pub checkpoint_token: String,
    /// The recorded operations (first page).
    pub initial_execution_state: ExecutionState,
    /// Operations the service changed since the last invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_operation_ids: Option<Vec<String>>,
}

/// How an invocation ended (`InvocationStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvocationStatus {
    /// The execution finished with a result.
    Succeeded,
    /// The execution finished with an error.
    Failed,
    /// The execution is suspended, waiting on a timer, a retry, a callback or an invoke.
    Pending,
}

impl fmt::Display for InvocationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            InvocationStatus::Succeeded => "SUCCEEDED",
            InvocationStatus::Failed => "FAILED",
            InvocationStatus::Pending => "PENDING",
        })
    }
}

/// What a durable function returns from an invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DurableExecutionInvocationOutput {
    /// How the invocation ended.
    pub status: InvocationStatus,
    /// The result as JSON text (`SUCCEEDED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The error (`FAILED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

impl DurableExecutionInvocationOutput {
    /// `{"Status":"PENDING"}`.
    pub fn pending() -> Self {
        DurableExecutionInvocationOutput { status: InvocationStatus::Pending, result: None, error: None }
    }

    /// `{"Status":"SUCCEEDED","Result":...}`.
    pub fn succeeded(result: Option<String>) -> Self {
        DurableExecutionInvocationOutput { status: InvocationStatus::Succeeded, result, error: None }
    }

    /// `{"Status":"FAILED","Error":...}`.
    pub fn failed(error: Option<ErrorObject>) -> Self {
        DurableExecutionInvocationOutput { status: InvocationStatus::Failed, result: None, error }
    }
}

/// The body of `CheckpointDurableExecution` (the ARN travels in the path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointDurableExecutionRequest {
    /// The current token.
    pub checkpoint_token: String,
    /// The updates, applied in order, all or nothing.
    #[serde(default)]
    pub updates: Vec<OperationUpdate>,
    /// Idempotency token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// The response of `CheckpointDurableExecution`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointDurableExecutionResponse {
    /// The token for the next checkpoint; absent once the execution finished or the
    /// token was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_token: Option<String>,
    /// Operations changed by this batch or by the service since the last call.
    #[serde(default)]
    pub new_execution_state: ExecutionState,
}

/// The response of `GetDurableExecutionHistory`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDurableExecutionHistoryResponse {
    /// The events of this page.
    #[serde(default)]
    pub events: Vec<Event>,
    /// Where the next page starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// The status of an execution (`ExecutionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Not finished.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Ran out of its execution timeout.
    TimedOut,
    /// Stopped from outside.
    Stopped,
}

impl ExecutionStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Stopped => "STOPPED",
        }
    }

    /// Whether the execution is over.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, ExecutionStatus::Running)
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RUNNING" => ExecutionStatus::Running,
            "SUCCEEDED" => ExecutionStatus::Succeeded,
            "FAILED" => ExecutionStatus::Failed,
            "TIMED_OUT" => ExecutionStatus::TimedOut,
            "STOPPED" => ExecutionStatus::Stopped,
            _ => return None,
        })
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The response of `GetDurableExecution`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDurableExecutionResponse {
    /// The execution's ARN.
    pub durable_execution_arn: String,
    /// The execution's name.
    pub durable_execution_name: String,
    /// The function's ARN.
    pub function_arn: String,
    /// The input as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_payload: Option<String>,
    /// The result as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// When it started.
    pub start_timestamp: Timestamp,
    /// Its status.
    pub status: ExecutionStatus,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<Timestamp>,
    /// The function version it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The X-Ray trace header the execution was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<TraceHeader>,
    /// Whether `InputPayload`, `Result` and `Error` are included (`IncludeExecutionData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_data_included: Option<bool>,
    /// The function's durable configuration, as the execution runs under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_config: Option<DurableConfig>,
    /// When the execution times out unless it ends first (its start plus
    /// `DurableConfig.ExecutionTimeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_execution_timeout_timestamp: Option<Timestamp>,
}

/// A trace header (`TraceHeader` of `GetDurableExecution`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// The `X-Amzn-Trace-Id` value.
    #[serde(rename = "XAmznTraceId", default, skip_serializing_if = "Option::is_none")]
    pub x_amzn_trace_id: Option<String>,
}

/// A durable function's configuration (`DurableConfig`): set when the function is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DurableConfig {
    /// How long an execution may run, in seconds (1 to 31,622,400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<u64>,
    /// How many days a closed execution's history is kept (1 to 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_period_in_days: Option<u32>,
    /// The KMS key that encrypts the execution's data, when not AWS's own.
    #[serde(rename = "KMSKeyArn", default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
}

/// One entry of `ListDurableExecutionsByFunction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DurableExecutionSummary {
    /// The execution's ARN.
    pub durable_execution_arn: String,
    /// The execution's name.
    pub durable_execution_name: String,
    /// The function's ARN.
    pub function_arn: String,
    /// Its status.
    pub status: ExecutionStatus,
    /// When it started.
    pub start_timestamp: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<Timestamp>,
}

/// The response of `ListDurableExecutionsByFunction`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListDurableExecutionsResponse {
    /// The executions of this page.
    #[serde(default)]
    pub durable_executions: Vec<DurableExecutionSummary>,
    /// Where the next page starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}
