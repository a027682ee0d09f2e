//! `run_invocation_until`: an invocation that stops at a signal (a Lambda deadline
//! approaching) stops taking new work, lets the checkpoint in flight land, sends what is
//! queued, and leaves the execution ready to go on in the next invocation.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use durable_core::checkpoint::{CheckpointError, Checkpointer, Limits};
use durable_core::engine::{InvocationOutcome, Stopped, run_invocation_until};
use durable_core::model::{
    CheckpointDurableExecutionResponse, ErrorObject, EventType, ExecutionState, ExecutionStatus, OperationAction,
    OperationStatus, OperationUpdate,
};
use durable_core::service::InvocationEnd;
use durable_core::testing::TestRunner;
use durable_core::{DurableContext, Error, Handler, handler};
use tokio::sync::{Notify, watch};

/// Forwards to the service, firing the stop signal when a batch goes out and holding the
/// batch until the invocation has seen the signal: the signal arrives with a checkpoint in
/// flight.
struct StopInFlight {
    inner: Rc<dyn Checkpointer>,
    stop: Arc<Notify>,
    /// Set by the stop signal once the invocation has polled it ready.
    seen: Rc<watch::Sender<bool>>,
    batches: Cell<usize>,
}

impl StopInFlight {
    /// The checkpointer, and the stop signal to run the invocation until.
    fn new(inner: Rc<dyn Checkpointer>) -> (Rc<StopInFlight>, impl Future<Output = ()>) {
        let stop = Arc::new(Notify::new());
        let seen = Rc::new(watch::Sender::new(false));
        let checkpointer =
            Rc::new(StopInFlight { inner, stop: stop.clone(), seen: seen.clone(), batches: Cell::new(0) });
        let signal = async move {
            stop.notified().await;
            seen.send_replace(true);
        };
        (checkpointer, signal)
    }
}

#[async_trait(?Send)]
impl Checkpointer for StopInFlight {
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        self.batches.set(self.batches.get() + 1);
        self.stop.notify_one();
        self.seen.subscribe().wait_for(|seen| *seen).await.expect("the checkpointer holds the sender");
        self.inner.checkpoint(arn, token, updates).await
    }

    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError> {
        self.inner.get_state(arn, token, marker).await
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }
}

/// Forwards to the service, firing `landed` once the batch with the START of the step
/// named `step` has been acknowledged.
struct SignalStarted {
    inner: Rc<dyn Checkpointer>,
    step: &'static str,
    landed: Arc<Notify>,
}

#[async_trait(?Send)]
impl Checkpointer for SignalStarted {
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        let starts = updates.iter().any(|u| u.action == OperationAction::Start && u.name.as_deref() == Some(self.step));
        let response = self.inner.checkpoint(arn, token, updates).await;
        if starts && response.is_ok() {
            self.landed.notify_one();
        }
        response
    }

    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError> {
        self.inner.get_state(arn, token, marker).await
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }
}

/// Two steps; the second one's body waits on `gate` (forever, unless opened) and counts
/// its runs.
fn two_steps(gate: Arc<Notify>, second_runs: Rc<Cell<u32>>) -> impl Handler {
    handler(move |ctx: DurableContext, (): ()| {
        let gate = gate.clone();
        let runs = second_runs.clone();
        async move {
            let a = ctx.step("first", async |_| Ok(1)).await?;
            let b = ctx
                .step("second", async |_| {
                    runs.set(runs.get() + 1);
                    gate.notified().await;
                    Ok(2)
                })
                .await?;
            Ok::<_, Error>(a + b)
        }
    })
}

/// Begins an invocation of `arn`, runs it until `stop`, and records a stopped invocation
/// as the Lambda runner does (due again at once).
async fn invoke_until(
    runner: &TestRunner,
    h: &dyn Handler,
    arn: &str,
    checkpointer: Option<Rc<dyn Checkpointer>>,
    stop: impl Future<Output = ()>,
) -> Result<InvocationOutcome, Stopped> {
    let input = runner.service().begin_invocation(arn).await.unwrap();
    let token = input.checkpoint_token.clone();
    let checkpointer = checkpointer.unwrap_or_else(|| runner.service().checkpointer());
    let outcome = run_invocation_until(h, input, checkpointer, stop).await;
    let end = match &outcome {
        Ok(InvocationOutcome::Output(o)) => InvocationEnd::Output(o.clone()),
        Ok(other) => panic!("unexpected outcome {other:?}"),
        Err(Stopped) => InvocationEnd::Crashed {
            error: ErrorObject::new("Test.Stopped", "stopped at the signal"),
            retry_at: durable_core::clock::Clock::now(runner.clock()),
        },
    };
    runner.service().end_invocation(arn, &token, end).await.unwrap();
    outcome
}

#[tokio::test(flavor = "current_thread")]
async fn a_stop_signal_ends_the_invocation_between_steps_and_the_next_one_goes_on() {
    let runner = TestRunner::new();
    let gate = Arc::new(Notify::new());
    let runs = Rc::new(Cell::new(0));
    let h = two_steps(gate.clone(), runs.clone());
    let arn = runner.start("f", None, Some("null".into())).await.unwrap();

    // The second step's body blocks; the signal fires while it runs, once its START is in.
    let landed = Arc::new(Notify::new());
    let checkpointer =
        Rc::new(SignalStarted { inner: runner.service().checkpointer(), step: "second", landed: landed.clone() });
    // (The timeout only turns a START that never lands from a hang into a failure.)
    let run = invoke_until(&runner, &h, &arn, Some(checkpointer), landed.notified());
    let outcome = tokio::time::timeout(Duration::from_mins(1), run).await.expect("the second step's START landed");
    assert_eq!(outcome, Err(Stopped));
    assert_eq!(runs.get(), 1);
    let run = runner.inspect(&arn).await;
    assert_eq!(run.status(), ExecutionStatus::Running);
    assert_eq!(run.operation("first").unwrap().status, OperationStatus::Succeeded, "finished work is kept");
    // The second step's START went out while its body awaited; no SUCCEED.
    assert_eq!(run.operation("second").unwrap().status, OperationStatus::Started);
    let record = runner.service().get_record(&arn).await.unwrap();
    assert_eq!(record.wake_at, Some(durable_core::clock::Clock::now(runner.clock())), "due again at once");

    // The next invocation re-runs the interrupted step (at least once) and finishes.
    gate.notify_one();
    let outcome = invoke_until(&runner, &h, &arn, None, std::future::pending()).await.unwrap();
    let InvocationOutcome::Output(out) = outcome else { panic!("{outcome:?}") };
    assert_eq!(out.result.as_deref(), Some("3"));
    assert_eq!(runs.get(), 2);
    let run = runner.inspect(&arn).await;
    run.assert_well_formed();
    assert_eq!(run.status(), ExecutionStatus::Succeeded);
    let completions: Vec<_> =
        run.history.iter().filter(|e| e.event_type == EventType::InvocationCompleted).map(|e| &e.details).collect();
    assert_eq!(completions.len(), 2);
    assert_eq!(
        completions[0].error.as_ref().and_then(|e| e.payload.as_ref()).and_then(|p| p.error_type.as_deref()),
        Some("Test.Stopped")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_checkpoint_in_flight_lands_before_the_invocation_stops() {
    let runner = TestRunner::new();
    let gate = Arc::new(Notify::new());
    let runs = Rc::new(Cell::new(0));
    let h = two_steps(gate, runs.clone());
    let arn = runner.start("f", None, Some("null".into())).await.unwrap();
    let (checkpointer, signal) = StopInFlight::new(runner.service().checkpointer());

    // The first batch (the first step, and the second one's START) fires the signal, then
    // lands only once the invocation has seen it.
    let outcome = invoke_until(&runner, &h, &arn, Some(checkpointer.clone()), signal).await;
    assert_eq!(outcome, Err(Stopped));
    let run = runner.inspect(&arn).await;
    assert_eq!(run.operation("first").unwrap().status, OperationStatus::Succeeded, "the batch in flight landed");
    assert!(checkpointer.batches.get() >= 1);
    run.assert_well_formed();
}

#[tokio::test(flavor = "current_thread")]
async fn a_signal_that_fired_already_runs_nothing() {
    let runner = TestRunner::new();
    let runs = Rc::new(Cell::new(0));
    let h = two_steps(Arc::new(Notify::new()), runs.clone());
    let arn = runner.start("f", None, Some("null".into())).await.unwrap();
    let outcome = invoke_until(&runner, &h, &arn, None, std::future::ready(())).await;
    assert_eq!(outcome, Err(Stopped));
    assert_eq!(runs.get(), 0);
    let run = runner.inspect(&arn).await;
    assert!(run.operation("first").is_none(), "no step was started");
    run.assert_well_formed();
}

#[tokio::test(flavor = "current_thread")]
async fn a_wait_started_at_the_signal_is_kept_and_a_handler_that_returned_ignores_it() {
    // Suspending on a wait: the signal fires with the wait's START in flight; the
    // invocation still ends PENDING, as without a signal.
    let runner = TestRunner::new();
    let h = handler(|ctx: DurableContext, (): ()| async move {
        ctx.wait("nap", Duration::from_mins(1)).await?;
        Ok::<_, Error>(1)
    });
    let arn = runner.start("f", None, Some("null".into())).await.unwrap();
    let (checkpointer, signal) = StopInFlight::new(runner.service().checkpointer());
    let outcome = invoke_until(&runner, &h, &arn, Some(checkpointer), signal).await;
    // Either way the wait is recorded; the outcome depends on whether the wait had parked
    // when the signal came: PENDING if it had, Stopped if its START was still in flight.
    match outcome {
        Ok(InvocationOutcome::Output(o)) => assert_eq!(o.status, durable_core::model::InvocationStatus::Pending),
        Err(Stopped) => {}
        Ok(other) => panic!("{other:?}"),
    }
    assert_eq!(runner.inspect(&arn).await.operation("nap").unwrap().status, OperationStatus::Started);

    // A handler that returns before the signal: the signal never matters.
    let h = handler(|_ctx: DurableContext, (): ()| async move { Ok::<_, Error>(5) });
    let arn = runner.start("g", None, Some("null".into())).await.unwrap();
    let outcome = invoke_until(&runner, &h, &arn, None, std::future::pending()).await;
    let Ok(InvocationOutcome::Output(out)) = outcome else { panic!("{outcome:?}") };
    assert_eq!(out.result.as_deref(), Some("5"));
}
