//! Applying a checkpoint batch: AWS's legal transitions, validation, and the history
//! events each accepted update appends.

use std::sync::Arc;

use foldhash::HashMap;

use super::callback;
use super::events::op_event;
use super::invoke;
use super::state::ExecState;
use super::txn::Write;
use crate::checkpoint::Limits;
use crate::model::{
    CallbackDetails, ContextDetails, ErrorObject, EventDetails, EventInput, EventType, MAX_CALLBACK_SECONDS,
    MAX_DELAY_SECONDS, Operation, OperationAction, OperationStatus, OperationType, OperationUpdate, RetryDetails,
    StepDetails, SubType, Timestamp, WaitDetails, validate_name, validate_operation_id,
};
use crate::store::{ExecutionRecord, OperationMeta, StoredOperation};

fn invalid(message: String) -> ErrorObject {
    ErrorObject::new("InvalidParameterValueException", message)
}

/// A refusal for size: its own error type, so that the execution the engine fails with it
/// says why.
fn too_large(message: String) -> ErrorObject {
    ErrorObject::new(crate::PAYLOAD_TOO_LARGE_ERROR_TYPE, message)
}

/// An update's payload and error against their maxima: an `EXECUTION` update carries the
/// execution's result, a `CHAINED_INVOKE` start the input of the execution it starts,
/// anything else an operation payload.
fn check_sizes(u: &OperationUpdate, limits: &Limits) -> Result<(), String> {
    let (what, max) = match u.op_type {
        OperationType::Execution => ("the execution's result", limits.max_execution_result),
        OperationType::ChainedInvoke => ("the invoke's input", limits.max_invoke_input()),
        _ => ("the payload", limits.max_operation_payload),
    };
    if let Some(p) = &u.payload
        && p.len() > max
    {
        return Err(format!("{what} is {} bytes; at most {max} bytes are accepted", p.len()));
    }
    if let Some(e) = &u.error
        && e.approx_size() > limits.max_operation_payload
    {
        return Err(format!(
            "the error is {} bytes; at most {} bytes are accepted",
            e.approx_size(),
            limits.max_operation_payload
        ));
    }
    Ok(())
}

/// Validates and applies `updates` on top of `state` without changing it, into the write
/// that records them: the operations the batch created or changed, in first-touched order,
/// and their events. All or nothing: the first invalid update refuses the whole batch.
pub(super) fn apply_batch(
    state: &ExecState,
    updates: &[OperationUpdate],
    now: Timestamp,
    limits: &Limits,
) -> Result<Write, ErrorObject> {
    let mut record = state.record.clone();
    record.version += 1;
    // The operations this batch touched, in first-touched order, with the last action
    // applied to each. Batches are small (usually one or two updates), so lookups scan the
    // list; a map is built only for large batches.
    let mut touched: Vec<(StoredOperation, OperationAction)> = Vec::with_capacity(updates.len());
    let mut by_id: Option<HashMap<Arc<str>, usize>> = None;
    let mut events = Vec::with_capacity(updates.len());

    for (index, u) in updates.iter().enumerate() {
        let where_ = || format!("update {index} ({} {} {})", u.op_type, u.action, u.id);
        if u.op_type != OperationType::Execution {
            validate_operation_id(&u.id).map_err(|m| invalid(format!("{}: {m}", where_())))?;
        }
        if let Some(n) = &u.name {
            validate_name(n).map_err(|m| invalid(format!("{}: {m}", where_())))?;
        }
        if let Some(s) = &u.sub_type {
            SubType::validate(s.as_str()).map_err(|m| invalid(format!("{}: {m}", where_())))?;
        }
        check_sizes(u, limits).map_err(|m| too_large(format!("{}: {m}", where_())))?;
        let slot = match &by_id {
            Some(ix) => ix.get(&*u.id).copied(),
            None => touched.iter().position(|(t, _)| t.operation.id == u.id),
        };
        if let Some(prev) = slot.map(|i| touched[i].1) {
            let allowed = prev == OperationAction::Start
                && u.action != OperationAction::Start
                && matches!(u.op_type, OperationType::Step | OperationType::Context);
            if !allowed {
                return Err(invalid(format!(
                    "{}: a batch may hold one update per operation, except a STEP or CONTEXT START followed by its \
                     completion",
                    where_()
                )));
            }
        }

        if u.op_type == OperationType::Execution {
            if index + 1 != updates.len() {
                return Err(invalid(format!("{}: an EXECUTION update must be the last of its batch", where_())));
            }
            match u.action {
                OperationAction::Succeed => {
                    record.result = Some(u.payload.as_deref().unwrap_or_default().to_owned());
                    record.error = None;
                }
                OperationAction::Fail => {
                    record.error = Some(u.error.clone().unwrap_or_default());
                    record.result = None;
                }
                a => return Err(invalid(format!("{}: EXECUTION accepts SUCCEED or FAIL, not {a}", where_()))),
            }
            continue;
        }

        let existing: Option<&StoredOperation> = match slot {
            Some(i) => Some(&touched[i].0),
            None => state.ops.get(&u.id),
        };
        if let Some(ex) = &existing {
            let e = &ex.operation;
            let same_sub = u.sub_type.is_none() || u.sub_type == e.sub_type;
            let same_name = u.name.is_none() || u.name == e.name;
            if e.op_type != u.op_type || !same_sub || !same_name || u.parent_id != e.parent_id {
                return Err(invalid(format!(
                    "{}: operation {} is recorded as {}/{} named {:?} under {:?}; an update may not change its type, \
                     sub-type, name or parent",
                    where_(),
                    u.id,
                    e.op_type,
                    e.sub_type.as_ref().map_or("-", SubType::as_str),
                    e.name,
                    e.parent_id
                )));
            }
        }
        if existing.is_none()
            && let Some(p) = &u.parent_id
        {
            let parent = touched.iter().map(|(t, _)| t).find(|t| &t.operation.id == p).or_else(|| state.ops.get(p));
            match parent {
                Some(po) if po.operation.op_type == OperationType::Context => {}
                Some(po) => {
                    return Err(invalid(format!(
                        "{}: parent {p} is a {}, not a CONTEXT",
                        where_(),
                        po.operation.op_type
                    )));
                }
                None => return Err(invalid(format!("{}: parent {p} does not exist", where_()))),
            }
        }

        let (next, meta, event) =
            transition(u, existing, now, &record).map_err(|m| invalid(format!("{}: {m}", where_())))?;
        let seq = if let Some(ex) = existing {
            ex.seq
        } else {
            let s = record.next_op_seq;
            record.next_op_seq += 1;
            s
        };
        if let Some((t, details)) = event {
            events.push(op_event(&mut record, t, now, &next, details));
        }
        let mut stored = StoredOperation::new(seq, next);
        stored.meta = meta;
        if let Some(i) = slot {
            touched[i] = (stored, u.action);
        } else {
            touched.push((stored, u.action));
            if let Some(ix) = &mut by_id {
                ix.insert(u.id.clone(), touched.len() - 1);
            } else if touched.len() > 16 {
                by_id = Some(touched.iter().enumerate().map(|(i, (t, _))| (t.operation.id.clone(), i)).collect());
            }
        }
    }
    let ops = touched.into_iter().map(|(t, _)| t).collect();
    Ok(Write { record, ops, events })
}

type Transition = (Operation, OperationMeta, Option<(EventType, EventDetails)>);

fn new_op(u: &OperationUpdate, status: OperationStatus, now: Timestamp) -> Operation {
    let mut op = Operation::new(u.id.clone(), u.op_type, status, now);
    op.parent_id.clone_from(&u.parent_id);
    op.name.clone_from(&u.name);
    op.sub_type.clone_from(&u.sub_type);
    op
}

fn delay_of(u: &OperationUpdate) -> Result<u32, String> {
    let d = u
        .step_options
        .as_ref()
        .and_then(|o| o.next_attempt_delay_seconds)
        .ok_or("a RETRY needs StepOptions.NextAttemptDelaySeconds")?;
    if !(1..=MAX_DELAY_SECONDS).contains(&d) {
        return Err(format!("NextAttemptDelaySeconds must be 1 to {MAX_DELAY_SECONDS}, not {d}"));
    }
    Ok(d)
}

fn transition(
    u: &OperationUpdate,
    existing_stored: Option<&StoredOperation>,
    now: Timestamp,
    record: &ExecutionRecord,
) -> Result<Transition, String> {
    let meta = existing_stored.map(|s| s.meta.clone()).unwrap_or_default();
    let existing = existing_stored.map(|s| &*s.operation);
    if u.action == OperationAction::Start
        && existing.is_none()
        && matches!(u.op_type, OperationType::Callback | OperationType::ChainedInvoke)
    {
        return start_external(u, now, record);
    }
    let (op, event) = transition_op(u, existing, now)?;
    Ok((op, meta, event))
}

/// START of a CALLBACK (the service makes its id and deadlines) or of a CHAINED_INVOKE
/// (the service names the child execution it will start).
fn start_external(u: &OperationUpdate, now: Timestamp, record: &ExecutionRecord) -> Result<Transition, String> {
    let mut op = new_op(u, OperationStatus::Started, now);
    let mut meta = OperationMeta::default();
    if u.op_type == OperationType::Callback {
        let options = u.callback_options.clone().unwrap_or_default();
        let timeout = options.timeout_seconds.unwrap_or(0);
        let heartbeat = options.heartbeat_timeout_seconds.unwrap_or(0);
        if timeout > MAX_CALLBACK_SECONDS || heartbeat > MAX_CALLBACK_SECONDS {
            return Err(format!("callback timeouts must be 0 to {MAX_CALLBACK_SECONDS} seconds"));
        }
        let callback_id = callback::make_id(&record.arn, &u.id);
        op.callback_details =
            Some(Box::new(CallbackDetails { callback_id: Some(callback_id.clone()), ..CallbackDetails::default() }));
        if timeout > 0 {
            meta.timeout_at = Some(now.plus_seconds(i64::from(timeout)));
        }
        if heartbeat > 0 {
            meta.heartbeat_seconds = Some(heartbeat);
            meta.heartbeat_at = Some(now.plus_seconds(i64::from(heartbeat)));
        }
        let details = EventDetails {
            callback_id: Some(callback_id),
            timeout: Some(u64::from(timeout)),
            heartbeat_timeout: Some(u64::from(heartbeat)),
            ..EventDetails::default()
        };
        return Ok((op, meta, Some((EventType::CallbackStarted, details))));
    }
    let options = u.chained_invoke_options.as_ref().ok_or("a CHAINED_INVOKE START needs ChainedInvokeOptions")?;
    if options.function_name.is_empty() {
        return Err("ChainedInvokeOptions.FunctionName must not be empty".to_owned());
    }
    op.chained_invoke_details = Some(Box::default());
    let child = invoke::child_arn(record, &u.id, &options.function_name);
    meta.child_arn = Some(child.clone());
    meta.invoke_function = Some(options.function_name.as_str().into());
    meta.invoke_input.clone_from(&u.payload);
    let details = EventDetails {
        function_name: Some(options.function_name.clone()),
        tenant_id: options.tenant_id.clone(),
        input: Some(EventInput { payload: u.payload.clone(), truncated: Some(false) }),
        executed_version: Some("$LATEST".to_owned()),
        durable_execution_arn: Some(child.to_string()),
        ..EventDetails::default()
    };
    Ok((op, meta, Some((EventType::ChainedInvokeStarted, details))))
}

fn transition_op(
    u: &OperationUpdate,
    existing: Option<&Operation>,
    now: Timestamp,
) -> Result<(Operation, Option<(EventType, EventDetails)>), String> {
    use OperationAction as A;
    use OperationStatus as S;
    let status = existing.map(|e| e.status);
    let illegal = || {
        format!(
            "{} {} is not allowed {}",
            u.op_type,
            u.action,
            match status {
                Some(s) => format!("on an operation that is {s}"),
                None => "on an operation that does not exist".to_owned(),
            }
        )
    };
    match u.op_type {
        OperationType::Step => {
            let details = |e: Option<&Operation>| e.and_then(|o| o.step_details.clone()).unwrap_or_default();
            match (u.action, status) {
                (A::Start, None) => {
                    let mut op = new_op(u, S::Started, now);
                    op.step_details = Some(Box::new(StepDetails { attempt: Some(1), ..StepDetails::default() }));
                    Ok((op, Some((EventType::StepStarted, EventDetails::default()))))
                }
                (A::Start, Some(S::Ready)) => {
                    let mut op = existing.cloned().expect("exists");
                    let mut d = details(existing);
                    d.attempt = Some(d.attempt.unwrap_or(0) + 1);
                    d.next_attempt_timestamp = None;
                    op.step_details = Some(d);
                    op.status = S::Started;
                    Ok((op, Some((EventType::StepStarted, EventDetails::default()))))
                }
                (A::Succeed | A::Fail | A::Retry, Some(S::Started | S::Ready)) => {
                    let mut op = existing.cloned().expect("exists");
                    let mut d = details(existing);
                    let attempt = d.attempt.unwrap_or(1);
                    let (event, new_status) = match u.action {
                        A::Succeed => {
                            d.result.clone_from(&u.payload);
                            d.error = None;
                            op.end_timestamp = Some(now);
                            let mut ed = EventDetails::with_result(u.payload.clone());
                            ed.retry_details =
                                Some(RetryDetails { current_attempt: Some(attempt), next_attempt_delay_seconds: None });
                            ((EventType::StepSucceeded, ed), S::Succeeded)
                        }
                        A::Fail => {
                            d.error = Some(u.error.clone().unwrap_or_default());
                            op.end_timestamp = Some(now);
                            let mut ed = EventDetails::with_error(u.error.clone());
                            ed.retry_details =
                                Some(RetryDetails { current_attempt: Some(attempt), next_attempt_delay_seconds: None });
                            ((EventType::StepFailed, ed), S::Failed)
                        }
                        _ => {
                            let delay = delay_of(u)?;
                            d.next_attempt_timestamp = Some(now.plus_seconds(i64::from(delay)));
                            d.error.clone_from(&u.error);
                            if u.payload.is_some() {
                                d.result.clone_from(&u.payload);
                            }
                            let retry = Some(RetryDetails {
                                current_attempt: Some(attempt),
                                next_attempt_delay_seconds: Some(delay),
                            });
                            let ev = if u.error.is_some() {
                                let mut ed = EventDetails::with_error(u.error.clone());
                                ed.retry_details = retry;
                                (EventType::StepFailed, ed)
                            } else {
                                let mut ed = EventDetails::with_result(u.payload.clone());
                                ed.retry_details = retry;
                                (EventType::StepSucceeded, ed)
                            };
                            (ev, S::Pending)
                        }
                    };
                    op.status = new_status;
                    op.step_details = Some(d);
                    Ok((op, Some(event)))
                }
                _ => Err(illegal()),
            }
        }
        OperationType::Context => match (u.action, status) {
            (A::Start, None) => {
                let mut op = new_op(u, S::Started, now);
                op.context_details = Some(Box::new(ContextDetails::default()));
                Ok((op, Some((EventType::ContextStarted, EventDetails::default()))))
            }
            (A::Succeed, Some(S::Started)) => {
                let mut op = existing.cloned().expect("exists");
                op.status = S::Succeeded;
                op.end_timestamp = Some(now);
                let replay_children = u.context_options.as_ref().and_then(|o| o.replay_children);
                op.context_details =
                    Some(Box::new(ContextDetails { replay_children, result: u.payload.clone(), error: None }));
                Ok((op, Some((EventType::ContextSucceeded, EventDetails::with_result(u.payload.clone())))))
            }
            (A::Fail, Some(S::Started)) => {
                if u.payload.is_some() {
                    return Err("a CONTEXT FAIL must not carry a Payload".to_owned());
                }
                let mut op = existing.cloned().expect("exists");
                op.status = S::Failed;
                op.end_timestamp = Some(now);
                op.context_details = Some(Box::new(ContextDetails {
                    replay_children: None,
                    result: None,
                    error: Some(u.error.clone().unwrap_or_default()),
                }));
                Ok((op, Some((EventType::ContextFailed, EventDetails::with_error(u.error.clone())))))
            }
            _ => Err(illegal()),
        },
        OperationType::Wait => match (u.action, status) {
            (A::Start, None) => {
                let secs = u
                    .wait_options
                    .as_ref()
                    .and_then(|o| o.wait_seconds)
                    .ok_or("a WAIT START needs WaitOptions.WaitSeconds")?;
                if !(1..=MAX_DELAY_SECONDS).contains(&secs) {
                    return Err(format!("WaitSeconds must be 1 to {MAX_DELAY_SECONDS}, not {secs}"));
                }
                let end = now.plus_seconds(i64::from(secs));
                let mut op = new_op(u, S::Started, now);
                op.wait_details = Some(Box::new(WaitDetails { scheduled_end_timestamp: Some(end) }));
                let details = EventDetails {
                    duration: Some(u64::from(secs)),
                    scheduled_end_timestamp: Some(end),
                    ..EventDetails::default()
                };
                Ok((op, Some((EventType::WaitStarted, details))))
            }
            (A::Cancel, Some(S::Started)) => {
                let mut op = existing.cloned().expect("exists");
                op.status = S::Cancelled;
                op.end_timestamp = Some(now);
                let details =
                    if u.error.is_some() { EventDetails::with_error(u.error.clone()) } else { EventDetails::default() };
                Ok((op, Some((EventType::WaitCancelled, details))))
            }
            _ => Err(illegal()),
        },
        OperationType::Callback | OperationType::ChainedInvoke => Err(illegal()),
        OperationType::Execution => unreachable!("handled by the caller"),
    }
}
