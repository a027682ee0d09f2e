//! The seam between the replay engine and whatever records its checkpoints.

use std::fmt;

use async_trait::async_trait;

use crate::model::{CheckpointDurableExecutionResponse, ErrorObject, ExecutionState, OperationUpdate};

/// The size limits of a checkpoint backend, in bytes of payload text (UTF-8): one
/// documented maximum for each kind of payload, which the engine respects before sending
/// and the service enforces on receipt. The engine reads them from
/// [`Checkpointer::limits`]; the self-hosted
/// [`CheckpointService`](crate::service::CheckpointService) derives the ones it enforces
/// and advertises with [`Limits::within_store`]. README.md ("Limits") has the table.
///
/// | payload | maximum | beyond it |
/// |---|---|---|
/// | an execution's input | [`max_input`](Self::max_input) | the start is refused |
/// | a step's result, a `wait_for_condition` state | [`max_operation_payload`](Self::max_operation_payload) | the step fails with `PayloadTooLargeError` |
/// | a child context's (or batch's) result recorded inline | [`max_context_result`](Self::max_context_result) | recorded with `ReplayChildren` instead |
/// | a callback's result or error | [`max_callback_result`](Self::max_callback_result) | the callback call is refused; the callback stays pending |
/// | an invoke's input | [`max_invoke_input`](Self::max_invoke_input) | the invoke fails with `PayloadTooLargeError` |
/// | an invoke's result | the target's [`max_execution_result`](Self::max_execution_result) | the target fails |
/// | an error object | [`max_operation_payload`](Self::max_operation_payload) | shortened to fit |
/// | the execution's result | [`max_execution_result`](Self::max_execution_result) | the execution fails with `PayloadTooLargeError` |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest execution input.
    pub max_input: usize,
    /// The largest payload of one operation: a step's result, a `wait_for_condition`
    /// state, an invoke's input, an error object.
    pub max_operation_payload: usize,
    /// The largest child-context or batch result checkpointed inline; larger results are
    /// checkpointed with `ReplayChildren` and rebuilt by replaying the children.
    pub max_context_result: usize,
    /// The largest callback result (or error) accepted from outside.
    pub max_callback_result: usize,
    /// The largest execution result.
    pub max_execution_result: usize,
    /// The largest execution result returned in the invocation output; larger results go
    /// through an `EXECUTION` update first. Not a maximum: a threshold of the protocol.
    pub max_invocation_result: usize,
    /// Updates per checkpoint batch.
    pub max_batch_updates: usize,
    /// Serialised bytes per checkpoint batch.
    pub max_batch_bytes: usize,
}

impl Limits {
    /// AWS Lambda's managed service: 6 MiB inputs (a synchronous `Invoke`'s request),
    /// 256 KiB per operation payload, 1 MiB callback results, 6 MiB execution results
    /// (those over 6 MiB − 50 B go through an `EXECUTION` update, as AWS's SDKs do),
    /// batches of 250 updates / 750 KiB.
    pub const AWS: Limits = Limits {
        max_input: 6 * 1024 * 1024,
        max_operation_payload: 256 * 1024,
        max_context_result: 256 * 1024,
        max_callback_result: 1024 * 1024,
        max_execution_result: 6 * 1024 * 1024,
        max_invocation_result: 6 * 1024 * 1024 - 50,
        max_batch_updates: 250,
        max_batch_bytes: 750 * 1024,
    };

    /// The limits a service over a store enforces, given the largest payload one record
    /// of the store holds (`Store::max_payload_bytes`): every maximum is capped by it (each
    /// payload is stored in a record: a step's result in its operation, the execution's
    /// result in the execution's record), and the maxima are made coherent with each
    /// other: an inline context result is an operation payload. This is the one place the
    /// self-hosted service computes its limits; it enforces what this returns and tells the
    /// engine the same.
    #[must_use]
    pub fn within_store(self, store_max_payload: usize) -> Limits {
        let cap = |n: usize| n.min(store_max_payload);
        let max_operation_payload = cap(self.max_operation_payload);
        Limits {
            max_input: cap(self.max_input),
            max_operation_payload,
            max_context_result: self.max_context_result.min(max_operation_payload),
            max_callback_result: cap(self.max_callback_result),
            max_execution_result: cap(self.max_execution_result),
            ..self
        }
    }

    /// The largest input of a chained invoke: an operation payload, and the input of the
    /// execution it starts.
    pub fn max_invoke_input(&self) -> usize {
        self.max_operation_payload.min(self.max_input)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::AWS
    }
}

/// Why a checkpoint call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// A transient infrastructure problem (throttling, 5xx, network): the invocation
    /// should be retried; nothing of this batch was applied.
    Retryable(String),
    /// The checkpoint token is stale: another invocation owns the execution now (or the
    /// execution ended). This invocation must stop without touching anything else.
    InvalidToken(String),
    /// The batch was refused for good (an illegal transition, an invalid field). The
    /// execution fails with this error.
    Rejected(ErrorObject),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Retryable(m) => write!(f, "checkpoint failed (retryable): {m}"),
            CheckpointError::InvalidToken(m) => write!(f, "checkpoint token is no longer valid: {m}"),
            CheckpointError::Rejected(e) => write!(f, "checkpoint rejected: {e}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// What the replay engine checkpoints through: the self-hosted
/// [`CheckpointService`](crate::service::CheckpointService), or AWS's
/// `CheckpointDurableExecution` / `GetDurableExecutionState`.
#[async_trait(?Send)]
pub trait Checkpointer {
    /// Applies a batch of updates, all or nothing, and returns the new token and the
    /// operations changed since the last call.
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError>;

    /// Pages the execution's operations.
    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError>;

    /// The backend's size limits.
    fn limits(&self) -> Limits {
        Limits::AWS
    }
}
