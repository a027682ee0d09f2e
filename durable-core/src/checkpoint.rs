//! The seam between the replay engine and whatever records its checkpoints.

use std::fmt;

use async_trait::async_trait;

use crate::model::{CheckpointDurableExecutionResponse, ErrorObject, ExecutionState, OperationUpdate};

/// Size limits of a checkpoint backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest result, error or input payload of one operation, in bytes.
    pub max_operation_payload: usize,
    /// The largest child-context or batch result checkpointed inline; larger results are
    /// checkpointed with `ReplayChildren` and rebuilt by replaying the children.
    pub max_context_result: usize,
    /// The largest execution result returned in the invocation output; larger results go
    /// through an `EXECUTION` update first.
    pub max_invocation_result: usize,
    /// Updates per checkpoint batch.
    pub max_batch_updates: usize,
    /// Serialised bytes per checkpoint batch.
    pub max_batch_bytes: usize,
}

impl Limits {
    /// AWS Lambda's managed service: 256 KiB per operation payload, 6 MiB − 50 B
    /// invocation results, batches of 250 updates / 750 KiB.
    pub const AWS: Limits = Limits {
        max_operation_payload: 256 * 1024,
        max_context_result: 256 * 1024,
        max_invocation_result: 6 * 1024 * 1024 - 50,
        max_batch_updates: 250,
        max_batch_bytes: 750 * 1024,
    };
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
