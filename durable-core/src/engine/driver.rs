//! Drives one invocation: the user future, the checkpoint flusher, suspension and the
//! invocation's outcome.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::future::LocalBoxFuture;

use super::{Abort, Engine, Observer, fit_error};
use crate::checkpoint::{CheckpointError, Checkpointer, Limits};
use crate::context::DurableContext;
use crate::error::Error;
use crate::handler::Handler;
use crate::model::{
    DurableExecutionInvocationInput, DurableExecutionInvocationOutput, ErrorObject, InvocationStatus, Operation,
    OperationAction, OperationType, OperationUpdate, Timestamp,
};
use crate::plugin::{InvocationEnd, InvocationEndStatus, InvocationStart, Plugins};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationOutcome {
    /// The invocation ended normally: return this output to the service.
    Output(DurableExecutionInvocationOutput),
    /// A checkpoint failed transiently: the invocation must be retried. Nothing that was
    /// acknowledged is lost and nothing unacknowledged took effect.
    Retry(String),
    /// The checkpoint token was revoked: another invocation owns the execution (or it
    /// ended). This invocation stops without further effect.
    Revoked(String),
}

impl InvocationOutcome {
    /// The output to return to the service: a retryable failure has none (the caller
    /// raises an error so the invocation is retried); a revoked token returns `PENDING`,
    /// as AWS's SDKs do.
    pub fn into_output(self) -> Result<DurableExecutionInvocationOutput, String> {
        match self {
            InvocationOutcome::Output(o) => Ok(o),
            InvocationOutcome::Revoked(_) => Ok(DurableExecutionInvocationOutput::pending()),
            InvocationOutcome::Retry(m) => Err(m),
        }
    }
}

/// An invocation stopped early because its stop signal fired ([`run_invocation_until`]).
/// It took no new work after the signal, and every checkpoint it had made or queued was
/// acknowledged. The execution has not finished: it must be invoked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the invocation stopped at its stop signal before the execution finished")
    }
}

impl std::error::Error for Stopped {}

/// Runs one invocation of `handler`.
pub async fn run_invocation(
    handler: &dyn Handler,
    input: DurableExecutionInvocationInput,
    checkpointer: Rc<dyn Checkpointer>,
) -> InvocationOutcome {
    run_invocation_with_plugins(input, checkpointer, handler.plugins(), |ctx, payload| handler.call(ctx, payload)).await
}

/// [`run_invocation`] with a stop signal, for runners whose invocations have a deadline (a
/// Lambda function's timeout). When `stop` completes, the invocation stops taking new work:
/// the handler's future is dropped (step bodies in progress with it, as if the process had
/// died there, minus the risk of dying half-way through a checkpoint), the checkpoint in
/// flight is allowed to finish and what is queued is sent; then it returns
/// `Err(`[`Stopped`]`)`. Invoke the execution again to go on. An invocation that already
/// has its outcome (the handler returned, or it is suspending) ends as [`run_invocation`]
/// would, whatever `stop` does meanwhile.
pub async fn run_invocation_until(
    handler: &dyn Handler,
    input: DurableExecutionInvocationInput,
    checkpointer: Rc<dyn Checkpointer>,
    stop: impl Future<Output = ()>,
) -> Result<InvocationOutcome, Stopped> {
    let stop: LocalBoxFuture<'_, ()> = Box::pin(stop);
    run(input, checkpointer, handler.plugins(), None, Some(stop), |ctx, payload| handler.call(ctx, payload)).await.0
}

/// Runs one invocation of a handler given as a closure from the root context and the
/// execution's input payload to the result payload.
pub async fn run_invocation_with<'a, F>(
    input: DurableExecutionInvocationInput,
    checkpointer: Rc<dyn Checkpointer>,
    handler: F,
) -> InvocationOutcome
where
    F: FnOnce(DurableContext, Option<String>) -> LocalBoxFuture<'a, Result<String, Error>>,
{
    run_invocation_with_plugins(input, checkpointer, Plugins::default(), handler).await
}

/// [`run_invocation_with`], calling `plugins` at each lifecycle point.
pub async fn run_invocation_with_plugins<'a, F>(
    input: DurableExecutionInvocationInput,
    checkpointer: Rc<dyn Checkpointer>,
    plugins: Plugins,
    handler: F,
) -> InvocationOutcome
where
    F: FnOnce(DurableContext, Option<String>) -> LocalBoxFuture<'a, Result<String, Error>>,
{
    without_stop(run(input, checkpointer, plugins, None, None, handler).await.0)
}

/// The outcome of an invocation that had no stop signal.
fn without_stop(outcome: Result<InvocationOutcome, Stopped>) -> InvocationOutcome {
    match outcome {
        Ok(o) => o,
        Err(Stopped) => unreachable!("an invocation without a stop signal cannot stop"),
    }
}

/// Runs one invocation watched by `observer` (the replay tester: replay only, every path
/// stops at new work) and returns the engine for inspection.
pub(crate) async fn run_observed<'a, F>(
    input: DurableExecutionInvocationInput,
    checkpointer: Rc<dyn Checkpointer>,
    observer: Rc<dyn Observer>,
    handler: F,
) -> (InvocationOutcome, Rc<Engine>)
where
    F: FnOnce(DurableContext, Option<String>) -> LocalBoxFuture<'a, Result<String, Error>>,
{
    let (outcome, engine) = run(input, checkpointer, Plugins::default(), Some(observer), None, handler).await;
    (without_stop(outcome), engine)
}

async fn run<'a, F>(
    input: DurableExecutionInvocationInput,
    checkpointer: Rc<dyn Checkpointer>,
    plugins: Plugins,
    observer: Option<Rc<dyn Observer>>,
    stop: Option<LocalBoxFuture<'a, ()>>,
    handler: F,
) -> (Result<InvocationOutcome, Stopped>, Rc<Engine>)
where
    F: FnOnce(DurableContext, Option<String>) -> LocalBoxFuture<'a, Result<String, Error>>,
{
    let DurableExecutionInvocationInput {
        durable_execution_arn: arn,
        checkpoint_token: token,
        initial_execution_state,
        updated_operation_ids,
    } = input;
    let watching = !plugins.is_empty();
    // Pages go straight into the engine's map: no intermediate list of every operation.
    let engine = Rc::new(Engine::new(arn, token, checkpointer, plugins, observer));
    let mut input_payload = None;
    let mut found_execution = false;
    let mut recorded = 0usize;
    // Operations the service finished since the last invocation, for the plugins.
    let updated: foldhash::HashSet<&str> = if watching {
        updated_operation_ids.iter().flatten().map(String::as_str).collect()
    } else {
        foldhash::HashSet::default()
    };
    let mut finished_since = Vec::new();
    let mut page = Some(initial_execution_state);
    while let Some(state) = page.take() {
        let marker = state.next_page().map(str::to_owned);
        for op in &state.operations {
            if op.op_type == OperationType::Execution {
                found_execution = true;
                input_payload = op.execution_details.as_ref().and_then(|d| d.input_payload.clone());
            } else {
                recorded += 1;
                if watching && op.status.is_terminal() && updated.contains(&*op.id) {
                    finished_since.push(op.clone());
                }
            }
        }
        engine.record(state.operations);
        if let Some(m) = marker {
            let token = engine.queue.borrow().token().to_owned();
            match engine.checkpointer.get_state(&engine.arn, &token, &m).await {
                Ok(next) => page = Some(next),
                Err(CheckpointError::InvalidToken(m)) => return (Ok(InvocationOutcome::Revoked(m)), engine),
                Err(CheckpointError::Retryable(m)) => return (Ok(InvocationOutcome::Retry(m)), engine),
                Err(CheckpointError::Rejected(e)) => return (Ok(InvocationOutcome::Retry(e.to_string())), engine),
            }
        }
    }
    if !found_execution {
        let error = ErrorObject::new("InvalidInvocationInput", "the execution state has no EXECUTION operation");
        return (Ok(InvocationOutcome::Output(DurableExecutionInvocationOutput::failed(Some(error)))), engine);
    }
    let payload = input_payload;
    if watching {
        let event = InvocationStart {
            execution_arn: &engine.arn,
            first_invocation: recorded == 0,
            recorded_operations: recorded,
        };
        engine.plugins.each("invocation-start", |p| p.on_invocation_start(&event));
        for op in &finished_since {
            engine.plugin_operation_end(op);
        }
    }
    let ctx = DurableContext::root(engine.clone());
    let user = handler(ctx, payload.map(|p| p.to_string()));
    let outcome = Driver {
        engine: engine.clone(),
        user: Some(user),
        result: None,
        in_flight: None,
        sent: None,
        sent_execution_update: false,
        stop,
        stopped: false,
    }
    .await;
    if watching {
        let (status, error) = match &outcome {
            Ok(InvocationOutcome::Output(o)) => (
                match o.status {
                    InvocationStatus::Succeeded => InvocationEndStatus::Succeeded,
                    InvocationStatus::Failed => InvocationEndStatus::Failed,
                    InvocationStatus::Pending => InvocationEndStatus::Pending,
                },
                o.error.as_ref(),
            ),
            Ok(InvocationOutcome::Retry(_)) => (InvocationEndStatus::Retry, None),
            Ok(InvocationOutcome::Revoked(_)) => (InvocationEndStatus::Revoked, None),
            Err(Stopped) => (InvocationEndStatus::Stopped, None),
        };
        let event = InvocationEnd { execution_arn: &engine.arn, status, error };
        engine.plugins.each("invocation-end", |p| p.on_invocation_end(&event));
    }
    (outcome, engine)
}

type Flush<'a> = LocalBoxFuture<'a, (Result<(Option<String>, Vec<Operation>), CheckpointError>, bool)>;

struct Driver<'a> {
    engine: Rc<Engine>,
    user: Option<LocalBoxFuture<'a, Result<String, Error>>>,
    result: Option<Result<String, Error>>,
    in_flight: Option<Flush<'static>>,
    /// The batch in flight, kept for the plugins (only when there are plugins).
    sent: Option<Vec<OperationUpdate>>,
    sent_execution_update: bool,
    /// The stop signal, until it fires ([`run_invocation_until`]).
    stop: Option<LocalBoxFuture<'a, ()>>,
    /// The stop signal fired: no new work, flush what is queued, then end.
    stopped: bool,
}

impl Driver<'_> {
    fn start_flush(&mut self) {
        let batch = self.engine.queue.borrow_mut().take_batch();
        if !self.engine.plugins.is_empty() {
            self.sent = Some(batch.clone());
        }
        let has_execution_update = batch.iter().any(|u| u.op_type == OperationType::Execution);
        let checkpointer = self.engine.checkpointer.clone();
        let arn = self.engine.arn.clone();
        let token = self.engine.queue.borrow().token().to_owned();
        self.in_flight = Some(Box::pin(async move {
            let result = async {
                let resp = checkpointer.checkpoint(&arn, &token, batch).await?;
                let mut ops = resp.new_execution_state.operations;
                let mut marker = resp.new_execution_state.next_marker.filter(|m| !m.is_empty());
                if let Some(new_token) = &resp.checkpoint_token {
                    while let Some(m) = marker {
                        let page = checkpointer.get_state(&arn, new_token, &m).await?;
                        marker = page.next_marker.filter(|m| !m.is_empty());
                        ops.extend(page.operations);
                    }
                }
                Ok((resp.checkpoint_token, ops))
            }
            .await;
            (result, has_execution_update)
        }));
    }

    /// Queues the EXECUTION update that carries a result or error too large for the
    /// invocation output; returns the output to send once it is acknowledged.
    fn finish(&mut self) -> DurableExecutionInvocationOutput {
        let limit = self.engine.limits.max_invocation_result;
        match self.result.as_ref().expect("finished") {
            Ok(payload) if payload.len() > limit => {
                if !self.sent_execution_update {
                    self.sent_execution_update = true;
                    let mut u = execution_update(OperationAction::Succeed);
                    u.payload = Some(payload.as_str().into());
                    self.engine.enqueue(u);
                }
                DurableExecutionInvocationOutput::succeeded(Some(String::new()))
            }
            Ok(payload) => DurableExecutionInvocationOutput::succeeded(Some(payload.clone())),
            Err(e) if e.object().approx_size() > limit => {
                if !self.sent_execution_update {
                    self.sent_execution_update = true;
                    let mut u = execution_update(OperationAction::Fail);
                    u.error = Some(e.object().clone());
                    self.engine.enqueue(u);
                }
                DurableExecutionInvocationOutput::failed(None)
            }
            Err(e) => DurableExecutionInvocationOutput::failed(Some(e.object().clone())),
        }
    }
}

/// The execution's outcome as the service will accept it: a result over
/// [`Limits::max_execution_result`] fails the execution with `PayloadTooLargeError` (the
/// service would refuse it: failing here says why, and sends nothing it would refuse); an
/// error is shortened to an operation payload, as every recorded error is.
fn within_limits(r: Result<String, Error>, limits: &Limits) -> Result<String, Error> {
    match r {
        Ok(payload) if payload.len() > limits.max_execution_result => Err(Error::payload_too_large(
            "the result of the durable function",
            payload.len(),
            limits.max_execution_result,
        )),
        Ok(payload) => Ok(payload),
        Err(e) => {
            let kind = e.kind();
            Err(Error::from_object(kind, fit_error(e.into_object(), limits.max_operation_payload)))
        }
    }
}

fn execution_update(action: OperationAction) -> OperationUpdate {
    OperationUpdate::new(format!("execution-result-{}", Timestamp::now().as_millis()), OperationType::Execution, action)
}

fn outcome_of(abort: Abort) -> InvocationOutcome {
    match abort {
        Abort::NonDeterministic(e) | Abort::Panic(e) | Abort::Checkpoint(CheckpointError::Rejected(e)) => {
            InvocationOutcome::Output(DurableExecutionInvocationOutput::failed(Some(e)))
        }
        Abort::Checkpoint(CheckpointError::Retryable(m)) => InvocationOutcome::Retry(m),
        Abort::Checkpoint(CheckpointError::InvalidToken(m)) => InvocationOutcome::Revoked(m),
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The error type recorded for a panic in durable code.
pub const PANIC_ERROR_TYPE: &str = "Panic";

impl Future for Driver<'_> {
    type Output = Result<InvocationOutcome, Stopped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<InvocationOutcome, Stopped>> {
        let this = &mut *self;
        loop {
            let mut progressed = false;
            if let Some(flush) = this.in_flight.as_mut()
                && let Poll::Ready((result, had_execution_update)) = flush.as_mut().poll(cx)
            {
                this.in_flight = None;
                progressed = true;
                match result {
                    Ok((token, ops)) => {
                        if let Some(batch) = this.sent.take() {
                            this.engine.plugin_batch_acked(&batch);
                        }
                        this.engine.apply_state(ops);
                        if token.is_none() && !had_execution_update {
                            this.engine.set_abort(Abort::Checkpoint(CheckpointError::InvalidToken(
                                "the checkpoint response carried no new token".to_owned(),
                            )));
                        }
                        this.engine.queue.borrow_mut().ack(token);
                    }
                    Err(e) => this.engine.set_abort(Abort::Checkpoint(e)),
                }
            }
            if let Some(abort) = this.engine.take_abort() {
                this.engine.queue.borrow_mut().wake_all();
                this.user = None;
                return Poll::Ready(Ok(outcome_of(abort)));
            }
            // The stop signal: unless the outcome is known already (the handler returned, or
            // it is about to suspend), drop the handler's future and take no new work.
            if this.result.is_none()
                && let Some(stop) = this.stop.as_mut()
                && stop.as_mut().poll(cx).is_ready()
            {
                this.stop = None;
                let suspending = this.engine.running_count() == 0 && this.engine.blocked_count() > 0;
                if this.user.is_some() && !suspending {
                    this.user = None;
                    this.stopped = true;
                    progressed = true;
                }
            }
            if let Some(user) = this.user.as_mut() {
                match std::panic::catch_unwind(AssertUnwindSafe(|| user.as_mut().poll(cx))) {
                    Ok(Poll::Ready(r)) => {
                        this.user = None;
                        // The handler returned a result: every operation recorded at the
                        // root must have been met (a diverged one fails the invocation). An
                        // error explains itself and drops nothing silently.
                        if r.is_err() || this.engine.close_context("", &|| "the durable function".to_owned()).is_ok() {
                            this.result = Some(within_limits(r, &this.engine.limits));
                        }
                        progressed = true;
                    }
                    Ok(Poll::Pending) => {}
                    Err(payload) => {
                        let msg = panic_message(payload.as_ref());
                        this.engine.set_abort(Abort::Panic(ErrorObject::new(
                            PANIC_ERROR_TYPE,
                            format!("the durable function panicked outside a step: {msg}"),
                        )));
                    }
                }
                if let Some(abort) = this.engine.take_abort() {
                    this.engine.queue.borrow_mut().wake_all();
                    this.user = None;
                    return Poll::Ready(Ok(outcome_of(abort)));
                }
            }
            let output = if this.result.is_some() { Some(this.finish()) } else { None };
            let suspending = this.user.is_some() && this.engine.running_count() == 0 && this.engine.blocked_count() > 0;
            if this.in_flight.is_none() {
                let (has_pending, wants) = {
                    let q = this.engine.queue.borrow();
                    (q.has_pending(), q.wants_flush())
                };
                // The function cannot go on without outside input (a step body awaiting I/O,
                // a timer, an acknowledgement): send what is queued now. A step's START is
                // then durable while its body runs (as AWS's SDKs make it), while a body
                // that finishes without yielding still coalesces START and SUCCEED into
                // one write.
                let user_waiting = this.user.is_some();
                if has_pending && (wants || output.is_some() || suspending || user_waiting || this.stopped) {
                    this.start_flush();
                    continue;
                }
            }
            let idle = this.engine.queue.borrow().is_idle();
            if idle {
                if let Some(output) = output {
                    return Poll::Ready(Ok(InvocationOutcome::Output(output)));
                }
                if suspending {
                    // New operations of concurrent code still waiting for recorded ones
                    // that nothing will meet any more: the code diverged.
                    if this.engine.check_stuck() {
                        continue;
                    }
                    this.user = None;
                    return Poll::Ready(Ok(InvocationOutcome::Output(DurableExecutionInvocationOutput::pending())));
                }
                if this.stopped {
                    return Poll::Ready(Err(Stopped));
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}
