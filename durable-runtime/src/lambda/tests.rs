//! The entry point's dispatch, run against the self-hosted checkpoint service standing in
//! for Lambda's (the same protocol: invocation input in, checkpoints, output out). The real
//! Lambda API path is tested end to end against AWS's emulator (`tests/tests/emulator.rs`).

use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use durable_core::checkpoint::{CheckpointError, Checkpointer};
use durable_core::model::{
    CheckpointDurableExecutionResponse, ExecutionState, ExecutionStatus, InvocationStatus, OperationUpdate,
};
use durable_core::service::InvocationEnd;
use durable_core::testing::TestRunner;
use durable_core::{DurableContext, Error, handler};
use serde_json::{Value, json};

use super::*;

async fn greet(ctx: DurableContext, name: String) -> Result<String, Error> {
    ctx.step("greet", async |_| Ok(format!("Hello, {name}!"))).await
}

async fn nap(ctx: DurableContext, (): ()) -> Result<u32, Error> {
    ctx.wait("nap", Duration::from_secs(5)).await?;
    Ok(7)
}

async fn shout(_ctx: DurableContext, name: String) -> Result<String, Error> {
    Ok(name.to_uppercase())
}

/// One invocation of `arn` through [`Functions::handle`], as Lambda would deliver it: the
/// input serialised to the JSON event, the output read back and reported to the service.
async fn invoke(runner: &TestRunner, functions: &Functions, arn: &str, function: &str) -> Result<Value, Diagnostic> {
    let input = runner.service().begin_invocation(arn).await.unwrap();
    let token = input.checkpoint_token.clone();
    let event = serde_json::to_value(&input).unwrap();
    let response = functions.handle(event, function).await;
    if let Ok(output) = &response {
        let output = serde_json::from_value(output.clone()).unwrap();
        runner.service().end_invocation(arn, &token, InvocationEnd::Output(output)).await.unwrap();
    }
    response
}

#[tokio::test(flavor = "current_thread")]
async fn a_managed_invocation_runs_the_handler_and_returns_its_output() {
    let runner = TestRunner::new();
    let functions = Functions::new().handler(handler(greet)).checkpointer(runner.service().checkpointer());
    let arn = runner.start("greeter", None, Some("\"World\"".into())).await.unwrap();
    let out = invoke(&runner, &functions, &arn, "greeter").await.unwrap();
    assert_eq!(out, json!({"Status": "SUCCEEDED", "Result": "\"Hello, World!\""}));
    let run = runner.inspect(&arn).await;
    assert_eq!(run.status(), ExecutionStatus::Succeeded);
    assert_eq!(run.operation("greet").unwrap().result_payload(), Some("\"Hello, World!\""));
}

#[tokio::test(flavor = "current_thread")]
async fn a_suspended_invocation_returns_pending_and_the_next_one_finishes() {
    let runner = TestRunner::new();
    let functions = Functions::new().handler(handler(nap)).checkpointer(runner.service().checkpointer());
    let arn = runner.start("napper", None, None).await.unwrap();
    assert_eq!(invoke(&runner, &functions, &arn, "napper").await.unwrap(), json!({"Status": "PENDING"}));
    runner.advance(Duration::from_secs(5));
    assert_eq!(
        invoke(&runner, &functions, &arn, "napper").await.unwrap(),
        json!({"Status": "SUCCEEDED", "Result": "7"})
    );
}

#[tokio::test(flavor = "current_thread")]
async fn handlers_are_chosen_by_function_name() {
    let runner = TestRunner::new();
    let functions = Functions::new()
        .register("greeter", handler(greet))
        .register("shouter", handler(shout))
        .checkpointer(runner.service().checkpointer());
    let arn = runner.start("shouter", None, Some("\"hey\"".into())).await.unwrap();
    assert_eq!(invoke(&runner, &functions, &arn, "shouter").await.unwrap()["Result"], "\"HEY\"");
    let arn = runner.start("greeter", None, Some("\"you\"".into())).await.unwrap();
    assert_eq!(invoke(&runner, &functions, &arn, "greeter").await.unwrap()["Result"], "\"Hello, you!\"");

    let arn = runner.start("other", None, Some("\"x\"".into())).await.unwrap();
    let err = invoke(&runner, &functions, &arn, "other").await.unwrap_err();
    assert_eq!(err.error_type, UNKNOWN_FUNCTION_ERROR_TYPE);
    assert!(err.error_message.contains("\"other\" (registered: greeter, shouter)"), "{}", err.error_message);

    // A default handler takes every other name; a single registered one too.
    let with_default = Functions::new().register("greeter", handler(greet)).handler(handler(shout));
    assert!(with_default.handler_for("anything").is_ok());
    let single = Functions::new().register("greeter", handler(greet));
    assert!(single.handler_for("greeter-prod").is_ok());
    assert!(Functions::new().handler_for("f").err().unwrap().error_message.contains("registered: none"));
}

#[test]
fn an_event_that_is_no_durable_invocation_is_refused_naming_what_was_expected() {
    for (event, described) in [
        (json!({"orderId": 7, "amount": 1}), "an object with the keys amount, orderId"),
        (json!({}), "an empty object"),
        (json!("hi"), "a string"),
        (json!({"DurableExecutionArn": "a", "CheckpointToken": "t"}), "the keys CheckpointToken, DurableExecutionArn"),
    ] {
        let err = DurableEvent::parse(event).unwrap_err();
        assert_eq!(err.error_type, UNRECOGNISED_EVENT_ERROR_TYPE);
        assert!(
            err.error_message.contains("DurableExecutionArn, CheckpointToken, InitialExecutionState"),
            "{}",
            err.error_message
        );
        assert!(err.error_message.contains(described), "{}", err.error_message);
    }
}

#[test]
fn a_managed_input_as_the_emulator_sends_it_parses() {
    // Timestamps in epoch milliseconds, an empty marker, UpdatedOperationIds.
    let event = json!({
        "DurableExecutionArn": "81564d64-0000/34dda6e9-0000",
        "CheckpointToken": "eyJhcm4iOiJ4In0=",
        "InitialExecutionState": {
            "Operations": [
                {"Id": "34dda6e9-0000", "Type": "EXECUTION", "Status": "STARTED", "Name": "e1",
                 "StartTimestamp": 1_795_723_518_638_i64, "ExecutionDetails": {"InputPayload": "\"World\""}},
                {"Id": "c5fa", "Type": "STEP", "Status": "READY", "Name": "flaky", "SubType": "Step",
                 "StartTimestamp": 1_795_723_518_807_i64,
                 "StepDetails": {"Attempt": 1, "Error": {"ErrorMessage": "transient", "ErrorType": "ValueError"}}}
            ],
            "NextMarker": ""
        },
        "UpdatedOperationIds": ["c5fa"]
    });
    let DurableEvent::Managed(input) = DurableEvent::parse(event).unwrap() else { panic!("a managed input") };
    assert_eq!(input.initial_execution_state.operations.len(), 2);
    assert_eq!(input.initial_execution_state.next_page(), None);
    assert_eq!(input.initial_execution_state.operations[1].step_details.as_ref().unwrap().attempt, Some(1));

    let broken = json!({"DurableExecutionArn": 1, "CheckpointToken": "t", "InitialExecutionState": {}});
    assert_eq!(DurableEvent::parse(broken).unwrap_err().error_type, INVALID_INPUT_ERROR_TYPE);
}

/// A Lambda API that is down: every call fails as a 5xx would.
struct Unavailable;

#[async_trait(?Send)]
impl Checkpointer for Unavailable {
    async fn checkpoint(
        &self,
        _arn: &str,
        _token: &str,
        _updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        Err(managed::classify_answer(503, "ServiceException", "try later"))
    }

    async fn get_state(&self, _arn: &str, _token: &str, _marker: &str) -> Result<ExecutionState, CheckpointError> {
        Err(managed::classify_answer(503, "ServiceException", "try later"))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_transient_checkpoint_failure_is_a_lambda_error_so_the_service_retries() {
    let runner = TestRunner::new();
    let arn = runner.start("greeter", None, Some("\"World\"".into())).await.unwrap();
    let input = runner.service().begin_invocation(&arn).await.unwrap();
    let functions = Functions::new().handler(handler(greet)).checkpointer(Rc::new(Unavailable));
    let err = functions.handle(serde_json::to_value(&input).unwrap(), "greeter").await.unwrap_err();
    assert_eq!(err.error_type, RETRY_ERROR_TYPE);
    assert!(err.error_message.contains("ServiceException: try later"), "{}", err.error_message);

    // A rejected batch fails the execution instead.
    let out = invoke_managed(&handler(greet), input, Rc::new(Rejecting)).await.unwrap();
    assert_eq!(out.status, InvocationStatus::Failed);
    assert_eq!(out.error.unwrap().error_type.as_deref(), Some("AccessDeniedException"));
}

/// A Lambda API that refuses every batch (a missing IAM permission).
struct Rejecting;

#[async_trait(?Send)]
impl Checkpointer for Rejecting {
    async fn checkpoint(
        &self,
        _arn: &str,
        _token: &str,
        _updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        Err(managed::classify_answer(403, "AccessDeniedException", "not authorized"))
    }

    async fn get_state(&self, _arn: &str, _token: &str, _marker: &str) -> Result<ExecutionState, CheckpointError> {
        Err(managed::classify_answer(403, "AccessDeniedException", "not authorized"))
    }
}
