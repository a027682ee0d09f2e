//! An execution's life after its start: invocations begin (firing due timers, fencing off
//! the previous invocation) and end (recording how, and when the execution is due next),
//! until the function finishes it, it is stopped, or it times out.

use std::sync::Arc;

use super::CheckpointService;
use super::callback;
use super::error::ServiceError;
use super::events::{invocation_completed, op_event};
use super::state::{ExecState, TimerKind};
use super::token;
use super::txn::{Plan, Write, Writer};
use crate::engine::fit_error;
use crate::model::{
    DurableExecutionInvocationInput, DurableExecutionInvocationOutput, ErrorObject, EventDetails, EventType,
    ExecutionStatus, InvocationStatus, OperationStatus, Timestamp,
};
use crate::store::{ExecutionRecord, StoreError, StoredOperation};

/// The error recorded on `InvocationCompleted` when an invocation never reported back.
pub const INVOCATION_LOST_ERROR_TYPE: &str = "Runtime.ExitError";

/// How an invocation ended, as a runner reports it.
#[derive(Debug, Clone)]
pub enum InvocationEnd {
    /// The function returned this output.
    Output(DurableExecutionInvocationOutput),
    /// The invocation died or must be retried: it is recorded with this error and the
    /// execution is due again at `retry_at`.
    Crashed {
        /// The error recorded on `InvocationCompleted` (e.g. `Runtime.ExitError`).
        error: ErrorObject,
        /// When to invoke again.
        retry_at: Timestamp,
    },
}

impl InvocationEnd {
    /// The execution fails with `error`, a `PayloadTooLargeError`.
    fn too_large(error: ErrorObject) -> Self {
        InvocationEnd::Output(DurableExecutionInvocationOutput::failed(Some(error)))
    }
}

/// What beginning an invocation came to.
enum Begun {
    /// The invocation began; the execution's operations the service changed since the
    /// function last heard (its `UpdatedOperationIds`).
    Invocation(Vec<String>),
    /// The execution's time was up: it timed out instead.
    TimedOut,
}

/// How an execution ends.
enum Ending {
    /// The function returned this result.
    Succeeded(Option<String>),
    /// The function failed, or returned what the service cannot accept.
    Failed(ErrorObject),
    /// It was stopped (`StopDurableExecution`).
    Stopped(ErrorObject),
    /// It ran past its timeout.
    TimedOut(ErrorObject),
}

impl CheckpointService {
    /// Begins an invocation: fires due timers, fences off any earlier invocation (recording
    /// it as lost), and returns the invocation input.
    pub async fn begin_invocation(&self, arn: &str) -> Result<DurableExecutionInvocationInput, ServiceError> {
        self.begin(arn, None).await
    }

    /// [`begin_invocation`](Self::begin_invocation) for a runner whose invocations can die
    /// without a word (a Lambda function killed at its timeout or out of memory): until the
    /// invocation ends, the execution is due at `lease_until` (in
    /// [`due_executions`](Self::due_executions)), so a sweep over due executions finds a
    /// dead invocation once its lease has passed, and the invocation it starts then fences
    /// the dead one off. Changes made from outside while the invocation runs (a callback
    /// completed) leave the lease alone; ending the invocation replaces it.
    pub async fn begin_invocation_leased(
        &self,
        arn: &str,
        lease_until: Timestamp,
    ) -> Result<DurableExecutionInvocationInput, ServiceError> {
        self.begin(arn, Some(lease_until)).await
    }

    /// Begins an invocation whose execution is due at `lease` until it ends.
    async fn begin(
        &self,
        arn: &str,
        lease: Option<Timestamp>,
    ) -> Result<DurableExecutionInvocationInput, ServiceError> {
        let mut locked = self.lock(arn, Writer::Outside).await;
        let begun = locked.run(|state, now| Ok(plan_begin(state, now, lease))).await?;
        let Begun::Invocation(updated) = begun else {
            locked.forget();
            return Err(ServiceError::NotRunning(format!("{arn} timed out")));
        };
        let state = locked.state();
        self.dispatch_invokes(state).await?;
        Ok(DurableExecutionInvocationInput {
            durable_execution_arn: arn.to_owned(),
            checkpoint_token: token::encode(&state.record.execution_id, state.record.invocation, 0),
            initial_execution_state: self.page(state, None),
            updated_operation_ids: Some(updated),
        })
    }

    /// Records how an invocation ended and, for a final output, ends the execution.
    ///
    /// A result over
    /// [`Limits::max_execution_result`](crate::checkpoint::Limits::max_execution_result),
    /// or one the store refuses to hold, fails the execution with `PayloadTooLargeError`:
    /// an output that can never be recorded must end the execution, not leave it running
    /// with nothing to retry. An error longer than an operation payload is shortened.
    pub async fn end_invocation(
        &self,
        arn: &str,
        token: &str,
        end: InvocationEnd,
    ) -> Result<ExecutionRecord, ServiceError> {
        let end = self.within_limits(end);
        let mut locked = self.lock(arn, Writer::Invocation { token, latest: false }).await;
        let finished = match locked.run(|state, now| Ok(plan_end(state, now, &end))).await {
            Err(ServiceError::Store(StoreError::TooLarge(m))) if locked.planned_end() => {
                // The store cannot hold this end (its result, most likely): it never will,
                // so the execution fails, which is small enough to record.
                tracing::warn!(arn, "the execution's end is too large for the store: {m}");
                let end = InvocationEnd::too_large(ErrorObject::new(
                    crate::PAYLOAD_TOO_LARGE_ERROR_TYPE,
                    format!("the store cannot record how the execution ended (its result): {m}"),
                ));
                locked.run(|state, now| Ok(plan_end(state, now, &end))).await?
            }
            ended => ended?,
        };
        if finished {
            let record = locked.state().record.clone();
            locked.forget();
            return Ok(record);
        }
        self.dispatch_invokes(locked.state()).await?;
        Ok(locked.state().record.clone())
    }

    /// An invocation's end within the service's limits: a result over the execution's
    /// maximum becomes the execution's failure; errors are shortened to fit.
    fn within_limits(&self, end: InvocationEnd) -> InvocationEnd {
        let limits = &self.config.limits;
        match end {
            InvocationEnd::Output(mut out) => {
                if out.status == InvocationStatus::Succeeded
                    && let Some(result) = &out.result
                    && result.len() > limits.max_execution_result
                {
                    return InvocationEnd::too_large(crate::error::payload_too_large(
                        "the result of the durable function",
                        result.len(),
                        limits.max_execution_result,
                    ));
                }
                out.error = out.error.map(|e| fit_error(e, limits.max_operation_payload));
                InvocationEnd::Output(out)
            }
            InvocationEnd::Crashed { error, retry_at } => {
                InvocationEnd::Crashed { error: fit_error(error, limits.max_operation_payload), retry_at }
            }
        }
    }

    /// Stops a running execution (`StopDurableExecution`).
    pub async fn stop_execution(&self, arn: &str, error: Option<ErrorObject>) -> Result<Timestamp, ServiceError> {
        let error = error.unwrap_or_else(|| ErrorObject::new("Execution.Stopped", "the execution was stopped"));
        let mut locked = self.lock(arn, Writer::Outside).await;
        let stopped_at = locked
            .run(|state, now| {
                let mut write = Write::on(state);
                end_execution(state, &mut write, Ending::Stopped(error.clone()), now);
                Ok(Plan::Commit(write, now))
            })
            .await?;
        locked.forget();
        Ok(stopped_at)
    }
}

/// Plans an invocation's beginning: the previous invocation, if it never reported, is
/// recorded as lost; due timers fire; the invocation number moves on, which fences off
/// the tokens of every earlier invocation. An execution past its timeout times out
/// instead.
fn plan_begin(state: &mut ExecState, now: Timestamp, lease: Option<Timestamp>) -> Plan<Begun> {
    let mut write = Write::on(state);
    let record = &mut write.record;
    if let Some(started) = record.invocation_started {
        let details = EventDetails {
            start_timestamp: Some(started),
            end_timestamp: Some(now),
            request_id: Some(format!("invocation-{}", record.invocation)),
            ..EventDetails::with_error(Some(ErrorObject::new(
                INVOCATION_LOST_ERROR_TYPE,
                "the invocation ended without reporting an outcome (the process died or was stopped)",
            )))
        };
        write.events.push(invocation_completed(record, now, details));
    }
    let record = &write.record;
    if now.as_millis() >= record.start.plus_seconds(record.timeout_seconds as i64).as_millis() {
        let error = ErrorObject::new(
            "Execution.TimedOut",
            format!("the execution exceeded its timeout of {} s", record.timeout_seconds),
        );
        end_execution(state, &mut write, Ending::TimedOut(error), now);
        return Plan::Commit(write, Begun::TimedOut);
    }
    fire_timers(state, &mut write, now);
    let updated = write
        .ops
        .iter()
        .map(|o| o.operation.id.to_string())
        .chain(state.notify.drain(..).map(|i| i.to_string()))
        .collect();
    let record = &mut write.record;
    record.invocation += 1;
    record.invocation_started = Some(now);
    record.checkpoint_seq = 0;
    record.wake_at = lease;
    Plan::Commit(write, Begun::Invocation(updated))
}

/// Fires the timers due at `now` into `write`: ends waits, readies steps whose retry delay
/// passed, times out callbacks.
fn fire_timers(state: &ExecState, write: &mut Write, now: Timestamp) {
    for (_, id, kind) in state.due_timers(now) {
        let Some(stored) = state.ops.get(&id) else { continue };
        if write.ops.iter().any(|o| o.operation.id == id) {
            // Both deadlines of one callback passed: the first one decided.
            continue;
        }
        let mut op = (*stored.operation).clone();
        match kind {
            TimerKind::CallbackTimeout | TimerKind::CallbackHeartbeat => {
                let error = if kind == TimerKind::CallbackTimeout {
                    callback::timeout_error()
                } else {
                    callback::heartbeat_error()
                };
                op.status = OperationStatus::TimedOut;
                op.end_timestamp = Some(now);
                let details = op.callback_details.get_or_insert_with(Box::default);
                details.error = Some(error.clone());
                let details = EventDetails::with_error(Some(error));
                write.events.push(op_event(&mut write.record, EventType::CallbackTimedOut, now, &op, details));
            }
            TimerKind::WaitEnds => {
                op.status = OperationStatus::Succeeded;
                op.end_timestamp = Some(now);
                let duration = op
                    .wait_details
                    .as_ref()
                    .and_then(|d| d.scheduled_end_timestamp)
                    .map(|end| ((end.as_millis() - op.start_timestamp.as_millis()) / 1000).max(0) as u64);
                let details = EventDetails { duration, ..EventDetails::default() };
                write.events.push(op_event(&mut write.record, EventType::WaitSucceeded, now, &op, details));
            }
            TimerKind::RetryReady => op.status = OperationStatus::Ready,
        }
        let mut next = StoredOperation::new(stored.seq, op);
        next.meta = stored.meta.clone();
        write.ops.push(next);
    }
}

/// Plans an invocation's end: `InvocationCompleted`, then when the execution is due next,
/// or its end. Hands the caller whether the execution ends.
fn plan_end(state: &mut ExecState, now: Timestamp, end: &InvocationEnd) -> Plan<bool> {
    let mut write = Write::on(state);
    let record = &mut write.record;
    let mut details = EventDetails {
        start_timestamp: Some(record.invocation_started.unwrap_or(now)),
        end_timestamp: Some(now),
        request_id: Some(format!("invocation-{}", record.invocation)),
        ..EventDetails::default()
    };
    if let InvocationEnd::Crashed { error, .. } = end {
        details.error = EventDetails::with_error(Some(error.clone())).error;
    }
    write.events.push(invocation_completed(record, now, details));
    record.invocation_started = None;
    let ending = match end {
        InvocationEnd::Crashed { retry_at, .. } => {
            record.wake_at = Some(*retry_at);
            None
        }
        InvocationEnd::Output(out) => match out.status {
            InvocationStatus::Pending => {
                if !state.notify.is_empty() {
                    // Something the function waits on finished while it ran.
                    state.notify.clear();
                    record.wake_at = Some(now);
                    None
                } else if state.has_pending_work() {
                    record.wake_at =
                        state.next_timer().map(|t| t.max(now)).or(Some(now).filter(|_| !state.ready.is_empty()));
                    None
                } else {
                    Some(Ending::Failed(ErrorObject::new(
                        "InvalidInvocationOutput",
                        "the invocation returned PENDING, but the execution waits on nothing",
                    )))
                }
            }
            InvocationStatus::Succeeded => Some(Ending::Succeeded(match out.result.as_deref() {
                // The result a checkpoint recorded (an EXECUTION update), if any.
                Some("") | None => record.result.clone(),
                Some(r) => Some(r.to_owned()),
            })),
            InvocationStatus::Failed => {
                Some(Ending::Failed(out.error.clone().or_else(|| record.error.clone()).unwrap_or_default()))
            }
        },
    };
    let Some(ending) = ending else { return Plan::Commit(write, false) };
    end_execution(state, &mut write, ending, now);
    Plan::Commit(write, true)
}

/// Ends the execution in `write`: its EXECUTION operation, the event that closes its
/// history, and its record.
fn end_execution(state: &ExecState, write: &mut Write, ending: Ending, now: Timestamp) {
    let (status, op_status, event_type) = match ending {
        Ending::Succeeded(_) => (ExecutionStatus::Succeeded, OperationStatus::Succeeded, EventType::ExecutionSucceeded),
        Ending::Failed(_) => (ExecutionStatus::Failed, OperationStatus::Failed, EventType::ExecutionFailed),
        Ending::Stopped(_) => (ExecutionStatus::Stopped, OperationStatus::Stopped, EventType::ExecutionStopped),
        Ending::TimedOut(_) => (ExecutionStatus::TimedOut, OperationStatus::TimedOut, EventType::ExecutionTimedOut),
    };
    let details = match &ending {
        Ending::Succeeded(result) => EventDetails::with_result(result.as_deref().map(Into::into)),
        Ending::Failed(error) | Ending::Stopped(error) | Ending::TimedOut(error) => {
            EventDetails::with_error(Some(error.clone()))
        }
    };
    let record = &mut write.record;
    if let Some(mut exec) = state.execution_op().cloned() {
        let op = Arc::make_mut(&mut exec.operation);
        op.status = op_status;
        op.end_timestamp = Some(now);
        let mut e = op_event(record, event_type, now, &exec.operation, details);
        e.name = Some(record.name.clone());
        write.events.push(e);
        write.ops.push(exec);
    }
    match ending {
        Ending::Succeeded(result) => {
            record.result = result;
            record.error = None;
        }
        Ending::Failed(error) => {
            record.error = Some(error);
            record.result = None;
        }
        // A result a checkpoint recorded stays on the record; only a succeeded execution
        // shows it.
        Ending::Stopped(error) | Ending::TimedOut(error) => record.error = Some(error),
    }
    record.status = status;
    record.end = Some(now);
    record.expires_at = Some(now.plus_seconds(i64::from(record.retention_days) * 86_400));
    record.wake_at = None;
    record.invocation_started = None;
}
