//! One maximum for each kind of payload, the same for the engine and the service, and
//! what exceeding it does: the operation or execution fails with `PayloadTooLargeError`, or
//! the outside request is refused, and nothing hangs.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use async_trait::async_trait;
use durable_core::checkpoint::{CheckpointError, Checkpointer, Limits};
use durable_core::clock::ManualClock;
use durable_core::engine::{InvocationOutcome, run_invocation};
use durable_core::model::{
    CheckpointDurableExecutionResponse, DurableExecutionInvocationOutput, ErrorObject, Event, EventType,
    ExecutionState, ExecutionStatus, InvocationStatus, OperationAction, OperationStatus, OperationType,
    OperationUpdate, Timestamp,
};
use durable_core::service::{CheckpointService, InvocationEnd, ServiceConfig, ServiceError, StartExecution};
use durable_core::store::{
    Commit, DueExecution, ExecutionRecord, ListQuery, MemoryStore, NewExecution, Store, StoreError, StoreResult,
    StoredOperation,
};
use durable_core::testing::TestRunner;
use durable_core::{DurableContext, Error, ErrorKind, PAYLOAD_TOO_LARGE_ERROR_TYPE, handler, poll_until};

/// A memory store that says it holds payloads of `max_payload` bytes, and refuses (as a
/// journal's frame limit can) to commit an execution result longer than `refuse_results_over`.
struct Capped {
    inner: MemoryStore,
    max_payload: usize,
    refuse_results_over: usize,
}

impl Capped {
    fn new(max_payload: usize, refuse_results_over: usize) -> Self {
        Capped { inner: MemoryStore::new(), max_payload, refuse_results_over }
    }
}

#[async_trait]
impl Store for Capped {
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()> {
        self.inner.create_execution(new).await
    }
    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.inner.get_execution(arn).await
    }
    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.inner.find_execution(function_name, name).await
    }
    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        if let Some(r) = &commit.record.result
            && r.len() > self.refuse_results_over
        {
            return Err(StoreError::TooLarge(format!("a result of {} bytes does not fit one record", r.len())));
        }
        self.inner.commit(commit).await
    }
    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>> {
        self.inner.read_operations(arn, after, limit).await
    }
    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        self.inner.read_events(arn, after, limit, reverse).await
    }
    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        self.inner.due_executions(now, limit).await
    }
    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.list_executions(query).await
    }
    fn max_payload_bytes(&self) -> usize {
        self.max_payload
    }
}

/// A test runner whose service is configured with `limits` (the default ones changed by it).
fn runner_with(limits: impl FnOnce(&mut Limits)) -> TestRunner {
    let mut config = ServiceConfig::default();
    limits(&mut config.limits);
    TestRunner::with_store(Arc::new(MemoryStore::new()), config)
}

/// A small maximum for the tests that configure one (errors, which are shortened to an
/// operation payload, still fit).
const LIMIT: usize = 1000;

/// A string whose JSON text is exactly `bytes` bytes long (the quotes count).
fn text_of(bytes: usize) -> String {
    "x".repeat(bytes - 2)
}

/// JSON text of exactly `bytes` bytes.
fn json_of(bytes: usize) -> String {
    format!("\"{}\"", text_of(bytes))
}

fn assert_too_large(e: &ErrorObject, limit: usize) {
    assert_eq!(e.error_type.as_deref(), Some(PAYLOAD_TOO_LARGE_ERROR_TYPE), "{e:?}");
    let message = e.error_message.as_deref().unwrap_or_default();
    assert!(message.contains(&format!("at most {limit} bytes")), "{message}");
}

fn refused(r: Result<impl std::fmt::Debug, ServiceError>, limit: usize) {
    match r {
        Err(e @ ServiceError::InvalidParameter(_)) => {
            assert_eq!(e.error_code(), "RequestTooLargeException", "{e}");
            let ServiceError::InvalidParameter(object) = e else { unreachable!() };
            assert_too_large(&object, limit);
        }
        other => panic!("expected a refusal for size, got {other:?}"),
    }
}

#[test]
fn the_limits_of_a_service_derive_from_its_caps_and_its_store() {
    const MIB: usize = 1024 * 1024;
    let caps = ServiceConfig::default().limits;
    // (the store's max_payload_bytes, expected: input, operation, context, callback, execution)
    let cases = [
        ("memory", usize::MAX, [6 * MIB, 6 * MIB, 6 * MIB, MIB, 6 * MIB]),
        ("embedded", 16 * MIB, [6 * MIB, 6 * MIB, 6 * MIB, MIB, 6 * MIB]),
        ("dynamodb", 4 * MIB, [4 * MIB, 4 * MIB, 4 * MIB, MIB, 4 * MIB]),
        ("small", 512 * 1024, [512 * 1024; 5]),
    ];
    for (store, max_payload, want) in cases {
        let svc = Arc::new(CheckpointService::with_config(
            Arc::new(Capped::new(max_payload, usize::MAX)),
            Arc::new(ManualClock::new(Timestamp::from_millis(0))),
            ServiceConfig::default(),
        ));
        let l = svc.limits();
        assert_eq!(
            [l.max_input, l.max_operation_payload, l.max_context_result, l.max_callback_result, l.max_execution_result],
            want,
            "{store}"
        );
        assert_eq!(l.max_invoke_input(), want[1].min(want[0]), "{store}");
        assert_eq!(svc.checkpointer().limits(), l, "{store}: the engine is told what the service enforces");
        assert_eq!(l, caps.within_store(max_payload), "{store}: one rule computes them");
    }
    // An inline context result is an operation payload: never allowed larger.
    let l = Limits { max_context_result: usize::MAX, ..Limits::AWS }.within_store(usize::MAX);
    assert_eq!(l.max_context_result, Limits::AWS.max_operation_payload);
    assert_eq!(Limits::AWS.within_store(usize::MAX), Limits::AWS, "AWS's limits are coherent as they are");
}

async fn big_result(_ctx: DurableContext, bytes: usize) -> Result<String, Error> {
    Ok(text_of(bytes))
}

#[tokio::test]
async fn an_execution_result_over_its_maximum_fails_the_execution() {
    let runner = TestRunner::new();
    let limit = runner.service().limits().max_execution_result;

    let run = runner.run(big_result, limit + 1).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    assert_too_large(run.error().unwrap(), limit);
    assert_eq!(run.event_types().last(), Some(&EventType::ExecutionFailed));
    assert_eq!(run.invocations(), 1, "failed at once, not retried");
    run.assert_well_formed();

    let run = runner.run(big_result, limit).await;
    assert_eq!(run.status(), ExecutionStatus::Succeeded, "{:?}", run.error());
    assert_eq!(run.record.result.as_ref().map(String::len), Some(limit), "a result at the maximum is kept whole");
}

#[tokio::test]
async fn with_aws_limits_an_execution_result_over_6_mib_fails_the_execution() {
    let runner = TestRunner::with_aws_limits();
    let limit = Limits::AWS.max_execution_result;
    assert_eq!(runner.service().limits(), Limits::AWS);
    let run = runner.run(big_result, limit + 1).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    assert_too_large(run.error().unwrap(), limit);
    // Over the invocation response's limit, under the maximum: through an EXECUTION update.
    let run = runner.run(big_result, limit).await;
    assert_eq!(run.status(), ExecutionStatus::Succeeded, "{:?}", run.error());
    assert_eq!(run.record.result.as_ref().map(String::len), Some(limit));
}

/// Forwards to the service, advertising smaller limits than it enforces (as a remote
/// service would, whose checks the engine cannot lean on), and counts the updates sent.
struct Advertising {
    inner: Rc<dyn Checkpointer>,
    limits: Limits,
    sent: Cell<usize>,
}

#[async_trait(?Send)]
impl Checkpointer for Advertising {
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        self.sent.set(self.sent.get() + updates.len());
        self.inner.checkpoint(arn, token, updates).await
    }

    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError> {
        self.inner.get_state(arn, token, marker).await
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

#[tokio::test]
async fn the_engine_fails_an_oversized_result_before_sending_it() {
    let runner = TestRunner::new();
    let limits = Limits { max_execution_result: LIMIT, max_invocation_result: LIMIT / 2, ..runner.service().limits() };
    for (bytes, status) in [(LIMIT + 1, InvocationStatus::Failed), (LIMIT, InvocationStatus::Succeeded)] {
        let arn = runner.start("f", None, Some(bytes.to_string())).await.unwrap();
        let input = runner.service().begin_invocation(&arn).await.unwrap();
        let advertising = Rc::new(Advertising { inner: runner.service().checkpointer(), limits, sent: Cell::new(0) });
        let outcome = run_invocation(&handler(big_result), input, advertising.clone()).await;
        let InvocationOutcome::Output(out) = outcome else { panic!("{outcome:?}") };
        assert_eq!(out.status, status, "{bytes} bytes: {out:?}");
        if status == InvocationStatus::Failed {
            assert_too_large(out.error.as_ref().unwrap(), LIMIT);
            assert_eq!(advertising.sent.get(), 0, "nothing was sent that the service would refuse");
        } else {
            assert_eq!(advertising.sent.get(), 1, "a result over the invocation output's limit: an EXECUTION update");
        }
    }
}

#[tokio::test]
async fn the_service_fails_an_oversized_result_whoever_sends_it() {
    let svc = Arc::new(CheckpointService::with_config(
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(Timestamp::from_millis(1_800_000_000_000))),
        ServiceConfig {
            limits: Limits { max_execution_result: LIMIT, ..ServiceConfig::default().limits },
            ..ServiceConfig::default()
        },
    ));
    let start = || StartExecution { function_name: "f".into(), input: Some("1".into()), ..StartExecution::default() };

    // In the invocation's output (an SDK that does not check).
    let arn = svc.start_execution(start()).await.unwrap().arn;
    let token = svc.begin_invocation(&arn).await.unwrap().checkpoint_token;
    let out = DurableExecutionInvocationOutput::succeeded(Some(json_of(LIMIT + 1)));
    let record = svc.end_invocation(&arn, &token, InvocationEnd::Output(out)).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_too_large(record.error.as_ref().unwrap(), LIMIT);
    assert_eq!(record.result, None);

    // In an EXECUTION update: the checkpoint is refused.
    let arn = svc.start_execution(start()).await.unwrap().arn;
    let token = svc.begin_invocation(&arn).await.unwrap().checkpoint_token;
    let mut update = OperationUpdate::new("execution-result-1", OperationType::Execution, OperationAction::Succeed);
    update.payload = Some(json_of(LIMIT + 1).into());
    match svc.checkpoint(&arn, &token, &[update]).await {
        Err(ServiceError::InvalidParameter(e)) => {
            assert_eq!(e.error_type.as_deref(), Some(PAYLOAD_TOO_LARGE_ERROR_TYPE));
            assert!(e.error_message.as_deref().unwrap().contains(&format!("at most {LIMIT} bytes")), "{e:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_result_the_store_cannot_hold_fails_the_execution_instead_of_hanging() {
    // The store claims more than it holds: its refusal is the last word, and it is final.
    let runner = TestRunner::with_store(Arc::new(Capped::new(usize::MAX, 1000)), ServiceConfig::default());
    let run = runner.run(big_result, 1001).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let e = run.error().unwrap();
    assert_eq!(e.error_type.as_deref(), Some(PAYLOAD_TOO_LARGE_ERROR_TYPE), "{e:?}");
    assert!(e.error_message.as_deref().unwrap().contains("does not fit one record"), "{e:?}");
    assert_eq!(run.invocations(), 1);
    run.assert_well_formed();
    let record = runner.service().get_record(run.arn()).await.unwrap();
    assert_eq!((record.invocation_started, record.wake_at), (None, None), "nothing left to run");
}

#[tokio::test]
async fn an_input_over_its_maximum_is_refused_and_nothing_is_created() {
    let runner = runner_with(|l| l.max_input = LIMIT);
    refused(runner.start("f", Some("big"), Some(json_of(LIMIT + 1))).await, LIMIT);
    let all = runner.service().list_executions(&ListQuery::default()).await.unwrap();
    assert!(all.durable_executions.is_empty(), "nothing was created: {all:?}");
    let arn = runner.start("f", Some("big"), Some(json_of(LIMIT))).await.unwrap();
    assert_eq!(runner.service().get_record(&arn).await.unwrap().status, ExecutionStatus::Running);
}

#[tokio::test]
async fn a_step_result_or_condition_state_over_its_maximum_fails_that_operation() {
    let f = |ctx: DurableContext, (): ()| async move {
        let over = ctx.step("over", async |_| Ok(text_of(LIMIT + 1))).await.unwrap_err();
        assert_eq!(over.kind(), ErrorKind::Step, "a replay rebuilds the same error from the record");
        assert_too_large(over.object(), LIMIT);
        let at = ctx.step("at", async |_| Ok(text_of(LIMIT))).await?;
        let state = ctx
            .wait_for_condition(
                "poll",
                String::new(),
                async |_: String, _| Ok(text_of(LIMIT + 1)),
                poll_until(|_: &String| false),
            )
            .await
            .unwrap_err();
        assert_too_large(state.object(), LIMIT);
        Ok::<_, Error>(at.len())
    };
    let runner = runner_with(|l| l.max_operation_payload = LIMIT);
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<usize>().unwrap(), LIMIT - 2);
    let over = run.operation("over").unwrap();
    assert_eq!(over.status, OperationStatus::Failed);
    assert_eq!(over.step_details.as_ref().unwrap().attempt, Some(1), "not retried");
    assert_eq!(run.operation("poll").unwrap().status, OperationStatus::Failed);
}

async fn wait_for_approval(ctx: DurableContext, (): ()) -> Result<String, Error> {
    let callback = ctx.create_callback::<String>("approval").await?;
    callback.result().await
}

#[tokio::test]
async fn a_callback_result_over_its_maximum_is_refused_and_the_callback_stays_pending() {
    let runner = runner_with(|l| l.max_callback_result = LIMIT);
    let f = handler(wait_for_approval);
    let arn = runner.start("f", None, Some("null".into())).await.unwrap();
    runner.settle(&f, &arn).await;
    let id = runner.callback_ids(&arn).await.remove(0);

    refused(runner.callback_success(&id, &json_of(LIMIT + 1)).await, LIMIT);
    let error = ErrorObject::new("Rejected", "y".repeat(LIMIT));
    refused(runner.callback_failure(&id, error).await, LIMIT);
    let run = runner.settle(&f, &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Running);
    assert_eq!(run.operation("approval").unwrap().status, OperationStatus::Started, "still pending");
    assert!(!run.event_types().iter().any(|t| matches!(t, EventType::CallbackSucceeded | EventType::CallbackFailed)));

    runner.callback_success(&id, &json_of(LIMIT)).await.unwrap();
    let run = runner.settle(&f, &arn).await;
    assert_eq!(run.result::<String>().unwrap().len(), LIMIT - 2);
}

async fn echo(_ctx: DurableContext, text: String) -> Result<String, Error> {
    Ok(text)
}

#[tokio::test]
async fn an_invoke_input_over_its_maximum_fails_the_invoke() {
    let f = |ctx: DurableContext, (): ()| async move {
        let over = ctx.invoke::<_, String>("over", "echo", text_of(LIMIT + 1)).await.unwrap_err();
        assert_eq!(over.kind(), ErrorKind::PayloadTooLarge);
        assert_too_large(over.object(), LIMIT);
        let at = ctx.invoke::<_, String>("at", "echo", text_of(LIMIT)).await?;
        Ok::<_, Error>(at.len())
    };
    let runner = runner_with(|l| l.max_operation_payload = LIMIT);
    runner.register("echo", handler(echo));
    let run = runner.run(f, ()).await;
    assert_eq!(run.result::<usize>().unwrap(), LIMIT - 2);
    let invokes: Vec<_> = run.operations.iter().filter(|o| o.op_type == OperationType::ChainedInvoke).collect();
    assert_eq!(invokes.len(), 1, "the refused invoke started nothing: {invokes:?}");
    assert_eq!(invokes[0].name.as_deref(), Some("at"));
}
