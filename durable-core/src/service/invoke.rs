//! Chained invokes: every target runs as a child execution of the service, linked to the
//! invoking operation, so a chained invoke is as durable as anything else. The checkpoint
//! that starts an invoke names its child; the child is created right after that commit
//! ([`CheckpointService::dispatch_invokes`]), and its end completes the invoke
//! ([`CheckpointService::report_to_parent`]).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::CheckpointService;
use super::error::ServiceError;
use super::events::op_event;
use super::start::StartExecution;
use super::state::ExecState;
use super::txn::{Change, Write};
use crate::model::{ChainedInvokeDetails, EventDetails, EventType, ExecutionStatus, OperationStatus, OperationType};
use crate::store::{ExecutionRecord, InvokedBy};

/// The child execution's id: derived from the parent and the operation, so dispatching
/// the same invoke twice finds the same child.
pub(crate) fn child_id(parent_arn: &str, op_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"durable-invoke-v1\x1f");
    h.update(parent_arn.as_bytes());
    h.update(b"\x1f");
    h.update(op_id.as_bytes());
    h.finalize()[..16].iter().fold(String::with_capacity(32), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The function part of a function name or ARN, without a qualifier (`echo:$LATEST` is
/// `echo`; `arn:aws:lambda:r:a:function:echo:1` is `echo`).
pub(crate) fn function_of(function_name: &str) -> &str {
    let tail = function_name.rsplit_once(":function:").map_or(function_name, |(_, t)| t);
    tail.split(':').next().unwrap_or(tail)
}

/// The ARN the child execution will have.
pub(crate) fn child_arn(parent: &ExecutionRecord, op_id: &str, function_name: &str) -> Arc<str> {
    let id = child_id(&parent.arn, op_id);
    // The region and account of the parent's ARN.
    let prefix = parent.arn.split(":function:").next().unwrap_or("arn:aws:lambda:local:000000000000");
    format!("{prefix}:function:{}:$LATEST/durable-execution/{}/{id}", function_of(function_name), child_name(&id))
        .into()
}

/// The child execution's name.
pub(crate) fn child_name(child_id: &str) -> String {
    format!("invoke-{child_id}")
}

impl CheckpointService {
    /// Creates the child executions of chained invokes whose START is committed but whose
    /// child does not exist yet, and records that they do. Runs under the parent's lock,
    /// after the commit that started the invokes: a child is never created for an invoke
    /// that was not recorded, and one created by a dispatch whose record was then lost is
    /// found again (its id is derived from the invoke) by the next.
    pub(super) async fn dispatch_invokes(&self, state: &mut ExecState) -> Result<(), ServiceError> {
        if state.undispatched.is_empty() {
            return Ok(());
        }
        let mut done = Vec::new();
        for id in state.undispatched.clone() {
            let Some(stored) = state.ops.get(&id) else { continue };
            let (Some(child_arn), Some(function)) = (&stored.meta.child_arn, &stored.meta.invoke_function) else {
                continue;
            };
            let child_id = child_arn.rsplit('/').next().unwrap_or_default().to_owned();
            let req = StartExecution {
                function_name: function_of(function).to_owned(),
                name: Some(child_name(&child_id)),
                input: stored.meta.invoke_input.as_deref().map(str::to_owned),
                timeout_seconds: None,
                execution_id: Some(child_id),
                invoked_by: Some(InvokedBy { arn: state.record.arn.clone(), operation_id: id.clone() }),
            };
            match Box::pin(self.start_execution(req)).await {
                Ok(_) | Err(ServiceError::AlreadyStarted(_)) => {}
                Err(ServiceError::InvalidParameter(e)) => {
                    // The target cannot be started at all (an invalid function name): the
                    // invoke fails instead of waiting forever.
                    tracing::warn!(error = %e, "chained invoke target rejected");
                }
                Err(e) => return Err(e),
            }
            let mut next = stored.clone();
            next.meta.dispatched = true;
            next.meta.invoke_input = None;
            done.push(next);
        }
        if done.is_empty() {
            return Ok(());
        }
        let mut write = Write::on(state);
        write.ops = done;
        self.commit(state, write).await
    }

    /// Reports a child execution's end to the chained invoke that started it. Idempotent:
    /// an operation already completed is left alone.
    pub(super) async fn report_to_parent(&self, child: &ExecutionRecord) -> Result<(), ServiceError> {
        let Some(parent) = &child.invoked_by else { return Ok(()) };
        let op_id = parent.operation_id.clone();
        let result = self
            .mutate(&parent.arn, &mut |state: &ExecState, now| {
                let Some(stored) = state.ops.get(&op_id) else { return Ok(None) };
                if stored.operation.op_type != OperationType::ChainedInvoke
                    || stored.operation.status != OperationStatus::Started
                {
                    return Ok(None);
                }
                let mut write = Write::on(state);
                let mut next = stored.clone();
                let op = Arc::make_mut(&mut next.operation);
                op.end_timestamp = Some(now);
                let (op_status, event, details) = match child.status {
                    ExecutionStatus::Succeeded => {
                        let payload: Option<Arc<str>> = child.result.as_deref().map(Into::into);
                        (
                            OperationStatus::Succeeded,
                            EventType::ChainedInvokeSucceeded,
                            EventDetails::with_result(payload),
                        )
                    }
                    ExecutionStatus::TimedOut => (
                        OperationStatus::TimedOut,
                        EventType::ChainedInvokeTimedOut,
                        EventDetails::with_error(child.error.clone()),
                    ),
                    ExecutionStatus::Stopped => (
                        OperationStatus::Stopped,
                        EventType::ChainedInvokeStopped,
                        EventDetails::with_error(child.error.clone()),
                    ),
                    _ => (
                        OperationStatus::Failed,
                        EventType::ChainedInvokeFailed,
                        EventDetails::with_error(child.error.clone()),
                    ),
                };
                op.status = op_status;
                let succeeded = op_status == OperationStatus::Succeeded;
                op.chained_invoke_details = Some(Box::new(ChainedInvokeDetails {
                    result: if succeeded { child.result.as_deref().map(Into::into) } else { None },
                    error: if succeeded { None } else { child.error.clone() },
                }));
                write.events.push(op_event(&mut write.record, event, now, op, details));
                write.ops.push(next);
                Ok(Some(Change { write, wake: true, notify: Some(op_id.clone()) }))
            })
            .await;
        match result {
            // A parent that ended meanwhile (stopped, timed out) no longer waits.
            Ok(()) | Err(ServiceError::NotRunning(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_lose_their_qualifier() {
        assert_eq!(function_of("echo"), "echo");
        assert_eq!(function_of("echo:$LATEST"), "echo");
        assert_eq!(function_of("arn:aws:lambda:us-east-1:123:function:echo:7"), "echo");
        assert_eq!(child_id("a", "b"), child_id("a", "b"));
        assert_ne!(child_id("a", "b"), child_id("a", "c"));
        assert_eq!(child_id("a", "b").len(), 32);
    }
}
