//! Running an execution while it is due, within one Lambda event: the self-hosted side
//! of the shared invocation loop ([`durable_core::invocation`]).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use durable_core::checkpoint::{CheckpointError, Checkpointer, Limits};
use durable_core::engine::{InvocationOutcome, Stopped, run_invocation_until};
use durable_core::invocation::{Host, InvokeError, InvokeOptions, invoke};
use durable_core::model::{
    CheckpointDurableExecutionResponse, DurableExecutionInvocationInput, ExecutionState, ExecutionStatus,
    OperationAction, OperationType, OperationUpdate,
};
use durable_core::service::ServiceError;
use durable_core::store::{ExecutionRecord, StoreError};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};

use super::{Functions, Invocation, SelfHosted, invalid, service_error};

/// How long a lease lasts when the invocation has no deadline (Lambda's longest timeout).
const NO_DEADLINE_LEASE: Duration = Duration::from_mins(15);

/// A resume looks again at most this often after losing a race to another writer.
const MAX_CONFLICTS: u32 = 5;

/// Invocations run back to back in one event at most this often (an execution due again
/// at once, e.g. a callback completed while it ran); then it is queued.
const MAX_INLINE_RUNS: u32 = 20;

impl SelfHosted {
    /// Runs `arn` while it is due: begins a leased invocation, runs it until it suspends,
    /// ends or reaches the deadline margin, records the end, starts chained invokes, and
    /// schedules the next wake-up (or runs again at once when due at once).
    /// `relay` is the wake-up time a relayed `resume` carries (a wake-up beyond the queue's
    /// 15 minutes travels as a chain of delayed messages).
    pub(super) async fn resume(
        &self,
        functions: &Functions,
        inv: &Invocation<'_>,
        arn: &str,
        relay: Option<i64>,
    ) -> Result<Value, Diagnostic> {
        let mut invocations = 0u32;
        let mut conflicts = 0u32;
        // At most a third of the time this event has, so that a function with a short
        // timeout still gets work done instead of queueing itself forever.
        let margin = inv.remaining().map_or(self.deadline_margin, |r| self.deadline_margin.min(r / 3));
        loop {
            let service = self.service(inv);
            let record = match service.get_record(arn).await {
                Ok(record) => record,
                Err(ServiceError::NotFound(_)) => return Err(invalid(format!("no execution {arn}"))),
                Err(e) => return Err(service_error(e)),
            };
            let report = |record: &durable_core::store::ExecutionRecord, invocations: u32| {
                let mut r = json!({
                    "executionArn": arn,
                    "status": record.status,
                    "invocations": invocations,
                });
                if let Some(result) = &record.result
                    && record.status == ExecutionStatus::Succeeded
                {
                    r["result"] = Value::String(result.clone());
                }
                if let Some(error) = &record.error
                    && record.status.is_terminal()
                {
                    r["error"] = serde_json::to_value(error).unwrap_or(Value::Null);
                }
                r
            };
            if record.status.is_terminal() {
                if let Some(parent) = record.invoked_by.as_ref().filter(|_| invocations == 0) {
                    // A child that closed without this event (timed out, stopped, or its
                    // parent's wake-up was lost): the parent goes on if that made it due.
                    self.wake_parent(inv, &parent.arn).await;
                }
                return Ok(report(&record, invocations));
            }
            if *record.function_name != *inv.function_name {
                // Another function's execution (a resume routed through a shared queue); a
                // relay goes on until its time.
                if invocations == 0 {
                    let left = relay.map_or(0, |w| w - self.clock.now().as_millis());
                    let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
                    self.wake(inv, &record.function_name, arn, left).await;
                }
                let mut r = report(&record, invocations);
                r["forwardedTo"] = Value::String(record.function_name.to_string());
                return Ok(r);
            }
            let now = self.clock.now();
            if record.wake_at.is_none_or(|w| w.as_millis() > now.as_millis()) {
                // Not due: waiting, finished meanwhile, or running under a live lease. A
                // relay of the execution's next wake-up goes on towards it; a relay of any
                // other time (a lease, a timer that changed) is dropped, so a duplicated
                // relay dies out with its wake-up instead of multiplying.
                let mut r = report(&record, invocations);
                if invocations == 0
                    && let (Some(relay), Some(wake_at)) = (relay, record.wake_at)
                    && relay == wake_at.as_millis()
                {
                    let left = Duration::from_millis(u64::try_from(relay - now.as_millis()).unwrap_or(0));
                    self.wake(inv, inv.function_name, arn, left).await;
                    r["relayed"] = Value::Bool(true);
                }
                return Ok(r);
            }
            if invocations >= MAX_INLINE_RUNS || (invocations > 0 && inv.remaining().is_some_and(|r| r < margin * 2)) {
                self.wake(inv, inv.function_name, arn, Duration::ZERO).await;
                return Ok(report(&record, invocations));
            }
            let lease = match inv.remaining() {
                Some(r) => r + self.lease_extra,
                None => NO_DEADLINE_LEASE + self.lease_extra,
            };
            let first_event = record.next_event_id;
            let host = DeadlineHost {
                functions,
                stop_at: inv.remaining().map(|r| r.saturating_sub(margin)),
                invoked: Rc::default(),
            };
            let options = InvokeOptions { lease: Some(lease), retry_delay: self.retry_delay };
            let invoked = match invoke(&service, &host, &record, options).await {
                Ok(invoked) => invoked,
                Err(InvokeError::Service(ServiceError::NotRunning(_))) => continue,
                Err(InvokeError::Service(ServiceError::Store(StoreError::Conflict(m))))
                    if conflicts < MAX_CONFLICTS =>
                {
                    // Another invocation is writing (a racing resume began first): look
                    // again; under its lease the execution is not due.
                    conflicts += 1;
                    tracing::debug!(execution_arn = arn, "begin lost a race, looking again: {m}");
                    continue;
                }
                Err(InvokeError::Service(e) | InvokeError::Unended(_, e)) => return Err(service_error(e)),
                Err(InvokeError::NotHosted(function)) => {
                    return Err(functions
                        .handler_for(&function)
                        .err()
                        .unwrap_or_else(|| invalid(format!("no handler for {function}"))));
                }
            };
            invocations += 1;
            let Some(ended) = invoked.ended else {
                // Fenced off: the newer invocation owns the execution.
                return match service.get_record(arn).await {
                    Ok(r) => Ok(report(&r, invocations)),
                    Err(ServiceError::NotFound(_)) => Ok(Value::Null),
                    Err(e) => Err(service_error(e)),
                };
            };
            if host.invoked.get() {
                self.start_children(inv, &service, arn, first_event).await;
            }
            if ended.status.is_terminal() {
                if let Some(parent) = &ended.invoked_by {
                    self.wake_parent(inv, &parent.arn).await;
                }
                return Ok(report(&ended, invocations));
            }
            let Some(wake_at) = ended.wake_at else { return Ok(report(&ended, invocations)) };
            let delay = wake_at.as_millis() - self.clock.now().as_millis();
            if delay > 0 {
                self.wake(inv, inv.function_name, arn, Duration::from_millis(delay as u64)).await;
                return Ok(report(&ended, invocations));
            }
            // Due at once (stopped at the deadline, or completed from outside while it
            // ran): go on here while time allows, else through the queue (the check above).
        }
    }
}

/// The binary's handlers, each invocation stopped `margin` before the Lambda deadline,
/// noting whether it started a chained invoke (whose child must then be invoked).
struct DeadlineHost<'a> {
    functions: &'a Functions,
    /// Time left until the invocation must stop (`None`: no deadline).
    stop_at: Option<Duration>,
    invoked: Rc<Cell<bool>>,
}

#[async_trait(?Send)]
impl Host for DeadlineHost<'_> {
    fn hosts(&self, execution: &ExecutionRecord) -> bool {
        self.functions.handler_for(&execution.function_name).is_ok()
    }

    async fn run(
        &self,
        execution: &ExecutionRecord,
        input: DurableExecutionInvocationInput,
        checkpointer: Rc<dyn Checkpointer>,
    ) -> Result<InvocationOutcome, Stopped> {
        let handler = self.functions.handler_for(&execution.function_name).map_err(|_| Stopped)?;
        let watch = Rc::new(WatchInvokes { inner: checkpointer, invoked: self.invoked.clone() });
        let left = self.stop_at;
        let stop = async move {
            match left {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        run_invocation_until(handler, input, watch, stop).await
    }
}

/// The service's checkpointer, noting whether the invocation started a chained invoke.
struct WatchInvokes {
    inner: Rc<dyn Checkpointer>,
    invoked: Rc<Cell<bool>>,
}

#[async_trait(?Send)]
impl Checkpointer for WatchInvokes {
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        if updates.iter().any(|u| u.op_type == OperationType::ChainedInvoke && u.action == OperationAction::Start) {
            self.invoked.set(true);
        }
        self.inner.checkpoint(arn, token, updates).await
    }

    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError> {
        self.inner.get_state(arn, token, marker).await
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }
}
