//! durable's model to aws-sdk-lambda's types and back. Both mirror the service's JSON field
//! for field, so every conversion is a move of the same fields; the only real work is the
//! enums (an SDK newer than the service could send a value durable does not know) and the
//! timestamps (`aws_smithy_types::DateTime` to epoch milliseconds).

use std::sync::Arc;

use aws_sdk_lambda::primitives::DateTime;
use aws_sdk_lambda::types as sdk;
use durable_core::model::{
    CallbackDetails, ChainedInvokeDetails, ContextDetails, ErrorObject, ExecutionDetails, ExecutionState, Operation,
    OperationAction, OperationStatus, OperationType, OperationUpdate, StepDetails, SubType, Timestamp, WaitDetails,
};

/// An update as the SDK sends it.
pub(crate) fn update_to_sdk(u: OperationUpdate) -> Result<sdk::OperationUpdate, String> {
    let OperationUpdate {
        id,
        parent_id,
        name,
        op_type,
        sub_type,
        action,
        payload,
        error,
        context_options,
        step_options,
        wait_options,
        callback_options,
        chained_invoke_options,
    } = u;
    let mut b = sdk::OperationUpdate::builder()
        .id(id.as_ref())
        .set_parent_id(parent_id.map(|p| p.to_string()))
        .set_name(name.map(|n| n.to_string()))
        .r#type(type_to_sdk(op_type))
        .set_sub_type(sub_type.map(|s| s.as_str().to_owned()))
        .action(action_to_sdk(action))
        .set_payload(payload.map(|p| p.to_string()))
        .set_error(error.map(error_to_sdk));
    if let Some(o) = context_options {
        b = b.context_options(sdk::ContextOptions::builder().set_replay_children(o.replay_children).build());
    }
    if let Some(o) = step_options {
        b = b.step_options(
            sdk::StepOptions::builder()
                .set_next_attempt_delay_seconds(o.next_attempt_delay_seconds.map(seconds))
                .build(),
        );
    }
    if let Some(o) = wait_options {
        b = b.wait_options(sdk::WaitOptions::builder().set_wait_seconds(o.wait_seconds.map(seconds)).build());
    }
    if let Some(o) = callback_options {
        b = b.callback_options(
            sdk::CallbackOptions::builder()
                .set_timeout_seconds(o.timeout_seconds.map(seconds))
                .set_heartbeat_timeout_seconds(o.heartbeat_timeout_seconds.map(seconds))
                .build(),
        );
    }
    if let Some(o) = chained_invoke_options {
        b = b.chained_invoke_options(
            sdk::ChainedInvokeOptions::builder()
                .function_name(o.function_name)
                .set_tenant_id(o.tenant_id)
                .build()
                .map_err(|e| format!("chained invoke options: {e}"))?,
        );
    }
    b.build().map_err(|e| format!("operation update: {e}"))
}

/// Durations are at most 31,622,400 s (waits, retries) or 99,999,999 s (callbacks): both fit.
fn seconds(s: u32) -> i32 {
    i32::try_from(s).unwrap_or(i32::MAX)
}

fn type_to_sdk(t: OperationType) -> sdk::OperationType {
    match t {
        OperationType::Execution => sdk::OperationType::Execution,
        OperationType::Context => sdk::OperationType::Context,
        OperationType::Step => sdk::OperationType::Step,
        OperationType::Wait => sdk::OperationType::Wait,
        OperationType::Callback => sdk::OperationType::Callback,
        OperationType::ChainedInvoke => sdk::OperationType::ChainedInvoke,
    }
}

fn action_to_sdk(a: OperationAction) -> sdk::OperationAction {
    match a {
        OperationAction::Start => sdk::OperationAction::Start,
        OperationAction::Succeed => sdk::OperationAction::Succeed,
        OperationAction::Fail => sdk::OperationAction::Fail,
        OperationAction::Retry => sdk::OperationAction::Retry,
        OperationAction::Cancel => sdk::OperationAction::Cancel,
    }
}

fn error_to_sdk(e: ErrorObject) -> sdk::ErrorObject {
    sdk::ErrorObject::builder()
        .set_error_message(e.error_message)
        .set_error_type(e.error_type)
        .set_error_data(e.error_data)
        .set_stack_trace(e.stack_trace)
        .build()
}

/// A page of operations from the SDK.
pub(crate) fn state_from_sdk(ops: Vec<sdk::Operation>, next_marker: Option<String>) -> Result<ExecutionState, String> {
    let operations = ops.into_iter().map(operation_from_sdk).collect::<Result<_, _>>()?;
    Ok(ExecutionState { operations, next_marker })
}

/// One operation from the SDK.
pub(crate) fn operation_from_sdk(o: sdk::Operation) -> Result<Operation, String> {
    let sdk::Operation {
        id,
        parent_id,
        name,
        r#type,
        sub_type,
        start_timestamp,
        end_timestamp,
        status,
        execution_details,
        context_details,
        step_details,
        wait_details,
        callback_details,
        chained_invoke_details,
        ..
    } = o;
    let mut op = Operation::new(id, type_from_sdk(&r#type)?, status_from_sdk(&status)?, timestamp(start_timestamp)?);
    op.parent_id = parent_id.map(Arc::from);
    op.name = name.map(Arc::from);
    op.sub_type = sub_type.map(SubType::from);
    op.end_timestamp = end_timestamp.map(timestamp).transpose()?;
    op.execution_details =
        execution_details.map(|d| Box::new(ExecutionDetails { input_payload: d.input_payload.map(Arc::from) }));
    op.context_details = context_details.map(|d| {
        Box::new(ContextDetails {
            replay_children: d.replay_children,
            result: d.result.map(Arc::from),
            error: d.error.map(error_from_sdk),
        })
    });
    op.step_details = step_details
        .map(|d| -> Result<_, String> {
            Ok(Box::new(StepDetails {
                attempt: u32::try_from(d.attempt).ok(),
                next_attempt_timestamp: d.next_attempt_timestamp.map(timestamp).transpose()?,
                result: d.result.map(Arc::from),
                error: d.error.map(error_from_sdk),
            }))
        })
        .transpose()?;
    op.wait_details = wait_details
        .map(|d| -> Result<_, String> {
            Ok(Box::new(WaitDetails { scheduled_end_timestamp: d.scheduled_end_timestamp.map(timestamp).transpose()? }))
        })
        .transpose()?;
    op.callback_details = callback_details.map(|d| {
        Box::new(CallbackDetails {
            callback_id: d.callback_id,
            result: d.result.map(Arc::from),
            error: d.error.map(error_from_sdk),
        })
    });
    op.chained_invoke_details = chained_invoke_details.map(|d| {
        Box::new(ChainedInvokeDetails { result: d.result.map(Arc::from), error: d.error.map(error_from_sdk) })
    });
    Ok(op)
}

fn timestamp(t: DateTime) -> Result<Timestamp, String> {
    t.to_millis().map(Timestamp::from_millis).map_err(|e| format!("timestamp {t}: {e}"))
}

fn type_from_sdk(t: &sdk::OperationType) -> Result<OperationType, String> {
    Ok(match t {
        sdk::OperationType::Execution => OperationType::Execution,
        sdk::OperationType::Context => OperationType::Context,
        sdk::OperationType::Step => OperationType::Step,
        sdk::OperationType::Wait => OperationType::Wait,
        sdk::OperationType::Callback => OperationType::Callback,
        sdk::OperationType::ChainedInvoke => OperationType::ChainedInvoke,
        other => return Err(format!("unknown operation type {}", other.as_str())),
    })
}

fn status_from_sdk(s: &sdk::OperationStatus) -> Result<OperationStatus, String> {
    Ok(match s {
        sdk::OperationStatus::Started => OperationStatus::Started,
        sdk::OperationStatus::Pending => OperationStatus::Pending,
        sdk::OperationStatus::Ready => OperationStatus::Ready,
        sdk::OperationStatus::Succeeded => OperationStatus::Succeeded,
        sdk::OperationStatus::Failed => OperationStatus::Failed,
        sdk::OperationStatus::Cancelled => OperationStatus::Cancelled,
        sdk::OperationStatus::TimedOut => OperationStatus::TimedOut,
        sdk::OperationStatus::Stopped => OperationStatus::Stopped,
        other => return Err(format!("unknown operation status {}", other.as_str())),
    })
}

fn error_from_sdk(e: sdk::ErrorObject) -> ErrorObject {
    ErrorObject {
        error_message: e.error_message,
        error_type: e.error_type,
        error_data: e.error_data,
        stack_trace: e.stack_trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_core::model::{CallbackOptions, ChainedInvokeOptions, ContextOptions, StepOptions, WaitOptions};

    fn full_update() -> OperationUpdate {
        let mut u = OperationUpdate::new("op-1", OperationType::Step, OperationAction::Retry);
        u.parent_id = Some("ctx".into());
        u.name = Some("charge".into());
        u.sub_type = Some(SubType::new(SubType::STEP));
        u.payload = Some("\"p\"".into());
        u.error = Some(ErrorObject {
            error_message: Some("m".into()),
            error_type: Some("T".into()),
            error_data: Some("d".into()),
            stack_trace: Some(vec!["a".into(), "b".into()]),
        });
        u.context_options = Some(ContextOptions { replay_children: Some(true) });
        u.step_options = Some(StepOptions { next_attempt_delay_seconds: Some(7) });
        u.wait_options = Some(WaitOptions { wait_seconds: Some(31_622_400) });
        u.callback_options =
            Some(CallbackOptions { timeout_seconds: Some(99_999_999), heartbeat_timeout_seconds: Some(0) });
        u.chained_invoke_options = Some(ChainedInvokeOptions {
            function_name: "target:$LATEST".into(),
            tenant_id: Some("t".into()),
            xamzn_trace_id: None,
        });
        u
    }

    #[test]
    fn every_update_field_reaches_the_sdk() {
        let s = update_to_sdk(full_update()).unwrap();
        assert_eq!(s.id(), "op-1");
        assert_eq!(s.parent_id(), Some("ctx"));
        assert_eq!(s.name(), Some("charge"));
        assert_eq!(s.r#type(), &sdk::OperationType::Step);
        assert_eq!(s.sub_type(), Some("Step"));
        assert_eq!(s.action(), &sdk::OperationAction::Retry);
        assert_eq!(s.payload(), Some("\"p\""));
        let e = s.error().unwrap();
        assert_eq!((e.error_type(), e.error_message(), e.error_data()), (Some("T"), Some("m"), Some("d")));
        assert_eq!(e.stack_trace(), ["a", "b"]);
        assert_eq!(s.context_options().unwrap().replay_children(), Some(true));
        assert_eq!(s.step_options().unwrap().next_attempt_delay_seconds(), Some(7));
        assert_eq!(s.wait_options().unwrap().wait_seconds(), Some(31_622_400));
        let c = s.callback_options().unwrap();
        assert_eq!((c.timeout_seconds(), c.heartbeat_timeout_seconds()), (99_999_999, 0));
        let i = s.chained_invoke_options().unwrap();
        assert_eq!((i.function_name(), i.tenant_id()), ("target:$LATEST", Some("t")));
    }

    #[test]
    fn every_action_and_type_converts() {
        for t in [
            OperationType::Execution,
            OperationType::Context,
            OperationType::Step,
            OperationType::Wait,
            OperationType::Callback,
            OperationType::ChainedInvoke,
        ] {
            assert_eq!(type_to_sdk(t).as_str(), t.as_str());
            assert_eq!(type_from_sdk(&type_to_sdk(t)).unwrap(), t);
        }
        for a in [
            OperationAction::Start,
            OperationAction::Succeed,
            OperationAction::Fail,
            OperationAction::Retry,
            OperationAction::Cancel,
        ] {
            assert_eq!(action_to_sdk(a).as_str(), a.as_str());
        }
    }

    #[test]
    fn operations_come_back_field_for_field() {
        let at = |ms| DateTime::from_millis(ms);
        let step = sdk::Operation::builder()
            .id("s")
            .parent_id("ctx")
            .name("charge")
            .r#type(sdk::OperationType::Step)
            .sub_type("Step")
            .status(sdk::OperationStatus::Pending)
            .start_timestamp(at(1_700_000_000_123))
            .end_timestamp(at(1_700_000_001_000))
            .step_details(
                sdk::StepDetails::builder()
                    .attempt(2)
                    .next_attempt_timestamp(at(1_700_000_009_000))
                    .result("\"r\"")
                    .error(sdk::ErrorObject::builder().error_type("T").error_message("m").build())
                    .build(),
            )
            .build()
            .unwrap();
        let op = operation_from_sdk(step).unwrap();
        assert_eq!(&*op.id, "s");
        assert_eq!(op.parent_id.as_deref(), Some("ctx"));
        assert_eq!(op.name.as_deref(), Some("charge"));
        assert_eq!(op.op_type, OperationType::Step);
        assert_eq!(op.sub_type.as_ref().map(SubType::as_str), Some("Step"));
        assert_eq!(op.status, OperationStatus::Pending);
        assert_eq!(op.start_timestamp, Timestamp::from_millis(1_700_000_000_123));
        assert_eq!(op.end_timestamp, Some(Timestamp::from_millis(1_700_000_001_000)));
        let d = op.step_details.as_ref().unwrap();
        assert_eq!(d.attempt, Some(2));
        assert_eq!(d.next_attempt_timestamp, Some(Timestamp::from_millis(1_700_000_009_000)));
        assert_eq!(d.result.as_deref(), Some("\"r\""));
        assert_eq!(d.error, Some(ErrorObject::new("T", "m")));

        let others = vec![
            sdk::Operation::builder()
                .id("x")
                .r#type(sdk::OperationType::Execution)
                .status(sdk::OperationStatus::Started)
                .start_timestamp(at(1))
                .execution_details(sdk::ExecutionDetails::builder().input_payload("{}").build())
                .build()
                .unwrap(),
            sdk::Operation::builder()
                .id("w")
                .r#type(sdk::OperationType::Wait)
                .status(sdk::OperationStatus::Started)
                .start_timestamp(at(1))
                .wait_details(sdk::WaitDetails::builder().scheduled_end_timestamp(at(5000)).build())
                .build()
                .unwrap(),
            sdk::Operation::builder()
                .id("c")
                .r#type(sdk::OperationType::Callback)
                .status(sdk::OperationStatus::Succeeded)
                .start_timestamp(at(1))
                .callback_details(sdk::CallbackDetails::builder().callback_id("cb").result("1").build())
                .build()
                .unwrap(),
            sdk::Operation::builder()
                .id("i")
                .r#type(sdk::OperationType::ChainedInvoke)
                .status(sdk::OperationStatus::TimedOut)
                .start_timestamp(at(1))
                .chained_invoke_details(
                    sdk::ChainedInvokeDetails::builder().error(sdk::ErrorObject::builder().build()).build(),
                )
                .build()
                .unwrap(),
            sdk::Operation::builder()
                .id("k")
                .r#type(sdk::OperationType::Context)
                .status(sdk::OperationStatus::Succeeded)
                .start_timestamp(at(1))
                .context_details(sdk::ContextDetails::builder().replay_children(true).result("[]").build())
                .build()
                .unwrap(),
        ];
        let state = state_from_sdk(others, Some("m2".into())).unwrap();
        assert_eq!(state.next_page(), Some("m2"));
        let ops = state.operations;
        assert_eq!(ops[0].execution_details.as_ref().unwrap().input_payload.as_deref(), Some("{}"));
        assert_eq!(ops[1].wait_details.as_ref().unwrap().scheduled_end_timestamp, Some(Timestamp::from_millis(5000)));
        let cb = ops[2].callback_details.as_ref().unwrap();
        assert_eq!((cb.callback_id.as_deref(), cb.result.as_deref()), (Some("cb"), Some("1")));
        assert_eq!(ops[3].status, OperationStatus::TimedOut);
        assert_eq!(ops[3].chained_invoke_details.as_ref().unwrap().error, Some(ErrorObject::default()));
        let ctx = ops[4].context_details.as_ref().unwrap();
        assert_eq!((ctx.replay_children, ctx.result.as_deref()), (Some(true), Some("[]")));
    }

    #[test]
    fn unknown_enum_values_are_errors_not_guesses() {
        let op = sdk::Operation::builder()
            .id("x")
            .r#type(sdk::OperationType::from("TELEPORT"))
            .status(sdk::OperationStatus::Started)
            .start_timestamp(DateTime::from_millis(1))
            .build()
            .unwrap();
        assert_eq!(operation_from_sdk(op).unwrap_err(), "unknown operation type TELEPORT");
    }
}
