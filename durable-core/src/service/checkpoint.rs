//! What a running invocation asks of the service: checkpoints (`CheckpointDurableExecution`)
//! and pages of its execution's state (`GetDurableExecutionState`), and the
//! [`Checkpointer`] that lets the engine ask them in process.

use std::rc::Rc;
use std::sync::Arc;

use async_trait::async_trait;

use super::CheckpointService;
use super::apply::apply_batch;
use super::error::ServiceError;
use super::state::ExecState;
use super::token;
use super::txn::{Plan, Writer};
use crate::checkpoint::{CheckpointError, Checkpointer, Limits};
use crate::model::{
    CheckpointDurableExecutionResponse, ExecutionState, Operation, OperationStatus, OperationType, OperationUpdate,
};

impl CheckpointService {
    /// Applies a checkpoint batch (`CheckpointDurableExecution`).
    pub async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: &[OperationUpdate],
    ) -> Result<CheckpointDurableExecutionResponse, ServiceError> {
        // After a lost commit (another writer, a callback or a stop, changed the
        // execution), the batch is validated again against what is there now.
        let mut locked = self.lock(arn, Writer::Invocation { token, latest: true }).await;
        let changed = locked
            .run(|state, now| {
                let mut write =
                    apply_batch(state, updates, now, &self.config.limits).map_err(ServiceError::InvalidParameter)?;
                write.record.checkpoint_seq += 1;
                // Report back what the function cannot know from its own updates:
                // operations that carry service-made data (a wait's end, a retry's next
                // attempt, a callback id, an invoke's outcome), and what the service changed
                // since the last call. Steps and contexts the batch itself started or
                // finished are not echoed.
                let changed: Vec<Arc<Operation>> =
                    write.ops.iter().filter(|o| reports_back(&o.operation)).map(|o| o.operation.clone()).collect();
                Ok(Plan::Commit(write, changed))
            })
            .await?;
        let state = locked.state();
        self.dispatch_invokes(state).await?;
        let mut operations: Vec<Operation> = changed.iter().map(|o| Operation::clone(o)).collect();
        for id in state.notify.drain(..) {
            if !operations.iter().any(|o| o.id == id)
                && let Some(o) = state.ops.get(&id)
            {
                operations.push(Operation::clone(&o.operation));
            }
        }
        Ok(CheckpointDurableExecutionResponse {
            checkpoint_token: Some(token::encode(
                &state.record.execution_id,
                state.record.invocation,
                state.record.checkpoint_seq,
            )),
            new_execution_state: ExecutionState { operations, next_marker: None },
        })
    }

    /// Pages the execution state (`GetDurableExecutionState`).
    pub async fn get_state(
        &self,
        arn: &str,
        token: &str,
        marker: Option<&str>,
    ) -> Result<ExecutionState, ServiceError> {
        let mut locked = self.lock(arn, Writer::Invocation { token, latest: false }).await;
        let state = locked.checked().await?;
        let marker = match marker.filter(|m| !m.is_empty()) {
            Some(m) => Some(m.parse::<u64>().map_err(|_| ServiceError::invalid(format!("bad marker {m:?}")))?),
            None => None,
        };
        Ok(self.page(state, marker))
    }

    /// A page of operations in sequence order, starting after `marker`.
    pub(super) fn page(&self, state: &ExecState, marker: Option<u64>) -> ExecutionState {
        let max_items = self.config.state_page_items.max(1);
        let max_bytes = 5 * 1024 * 1024;
        let mut operations = Vec::new();
        let mut bytes = 0;
        let mut last = None;
        let range = match marker {
            Some(m) => state.by_seq.range(m.saturating_add(1)..),
            None => state.by_seq.range(..),
        };
        let mut more = false;
        for (seq, op) in range {
            let size = op.approx_size();
            if !operations.is_empty() && (operations.len() >= max_items || bytes + size > max_bytes) {
                more = true;
                break;
            }
            bytes += size;
            operations.push(Operation::clone(op));
            last = Some(*seq);
        }
        ExecutionState { operations, next_marker: if more { last.map(|s| s.to_string()) } else { None } }
    }

    /// A [`Checkpointer`] that sends the engine's checkpoints to this service.
    pub fn checkpointer(self: &Arc<Self>) -> Rc<dyn Checkpointer> {
        Rc::new(ServiceCheckpointer { service: self.clone() })
    }
}

/// Whether a checkpoint response reports an operation the batch touched: only when the
/// service added something the function did not send.
fn reports_back(op: &Operation) -> bool {
    match op.op_type {
        OperationType::Step => op.status == OperationStatus::Pending || op.status == OperationStatus::Ready,
        OperationType::Context | OperationType::Execution => false,
        OperationType::Wait | OperationType::Callback | OperationType::ChainedInvoke => true,
    }
}

/// The engine's view of a [`CheckpointService`] in the same process.
pub struct ServiceCheckpointer {
    /// The service checkpoints go to.
    service: Arc<CheckpointService>,
}

#[async_trait(?Send)]
impl Checkpointer for ServiceCheckpointer {
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        self.service.checkpoint(arn, token, &updates).await.map_err(ServiceError::into_checkpoint_error)
    }

    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError> {
        self.service.get_state(arn, token, Some(marker)).await.map_err(ServiceError::into_checkpoint_error)
    }

    fn limits(&self) -> Limits {
        self.service.config.limits
    }
}
