//! The lifecycle every durable operation goes through, written once.
//!
//! An operation is a [`Lifecycle`]: what it is ([`Call`]) and what it does at each point.
//! [`drive`] runs it:
//!
//! 1. **Check** the arguments (name, sub-type, the operation's own), before anything is
//!    recorded.
//! 2. **Enter**: look the call up in the history ([`Engine::enter`]): its record must match
//!    the call and come in its context's order; a divergence fails the invocation here,
//!    before any new work.
//! 3. **Resume** from the record ([`Lifecycle::resume`]): return the recorded outcome,
//!    suspend (a retry timer, a wait), watch for the service to finish it (a callback, an
//!    invoke), or start.
//! 4. **Start**: checkpoint `START`, sent with the next batch or acknowledged first.
//! 5. **Work** ([`Lifecycle::work`]): a step body's attempt ([`Call::attempt`]: under
//!    `catch_unwind`, counted as running, the plugins told), a child context's code.
//! 6. **Complete** ([`Outcome`]): checkpoint `SUCCEED` (with the value's payload, encoded
//!    by [`Call::encode`] so the first run returns what a replay will), `FAIL`, or `RETRY`
//!    and suspend.

use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;

use super::{CallShape, Diverged, Engine, PANIC_ERROR_TYPE, panic_message, park};
use crate::context::{CallSite, DurableContext, Name};
use crate::error::{Error, ErrorKind, SERDES_ERROR_TYPE};
use crate::model::{
    ContextOptions, ErrorObject, MAX_DELAY_SECONDS, Operation, OperationAction, OperationType, OperationUpdate,
    StepOptions, SubType,
};
use crate::serdes::Serdes;

/// A durable call: which operation, where it was called, and the context it runs in.
pub(crate) struct Call {
    /// The context the operation is called on.
    pub(crate) ctx: DurableContext,
    pub(crate) id: Arc<str>,
    pub(crate) site: CallSite,
    pub(crate) op_type: OperationType,
    pub(crate) sub_type: Cow<'static, str>,
    pub(crate) name: Name,
    /// The method, for messages (`step`, `map`...).
    pub(crate) method: &'static str,
}

impl Call {
    pub(crate) fn engine(&self) -> &Rc<Engine> {
        &self.ctx.engine
    }

    /// The `ParentId` of the operation.
    pub(crate) fn parent_id(&self) -> Option<&str> {
        self.ctx.scope.parent_id.as_deref()
    }

    /// The call site, for messages.
    pub(crate) fn describe(&self) -> String {
        self.site.describe(self.method)
    }

    /// The name, for messages.
    pub(crate) fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("(unnamed)")
    }

    /// An update of this operation, placed in its context.
    pub(crate) fn update(&self, action: OperationAction) -> OperationUpdate {
        OperationUpdate::new(self.id.clone(), self.op_type, action).placed(
            self.ctx.scope.parent_id.clone(),
            self.name.shared(),
            SubType::new(self.sub_type.clone()),
        )
    }

    /// The protocol's rules for the name and the sub-type.
    fn validate(&self) -> Result<(), Error> {
        self.name.validate().map_err(Error::validation)?;
        SubType::validate(&self.sub_type).map_err(Error::validation)
    }

    /// Runs one attempt of a body: never in the replay tester (the path stops there),
    /// counted as running, a panic turned into an error, the plugins told.
    pub(crate) async fn attempt<T>(
        &self,
        attempt: u32,
        body: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, ErrorObject> {
        let engine = self.engine();
        if !engine.may_run_body(self) {
            return park().await;
        }
        engine.plugin_attempt(self, attempt, None);
        let outcome = {
            let _running = engine.running();
            AssertUnwindSafe(body).catch_unwind().await
        };
        let outcome = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.into_object()),
            Err(panic) => Err(ErrorObject::new(
                PANIC_ERROR_TYPE,
                format!("{} {} panicked: {}", self.method, self.label(), panic_message(panic.as_ref())),
            )),
        };
        engine.plugin_attempt(self, attempt, Some(outcome.as_ref().map(|_| ())));
        outcome
    }

    /// Encodes a value for its checkpoint: the payload, within the per-operation limit
    /// ([`Limits::max_operation_payload`](crate::checkpoint::Limits)), and the value as a
    /// replay will decode it from that payload.
    pub(crate) fn encode<T>(&self, serdes: &dyn Serdes<T>, value: &T) -> Result<(String, T), Error> {
        let payload = serdes.serialize(value)?;
        let limit = self.engine().limits.max_operation_payload;
        if payload.len() > limit {
            return Err(Error::payload_too_large(
                format_args!("the result of {} {}", self.method, self.label()),
                payload.len(),
                limit,
            ));
        }
        let back = serdes.deserialize(&payload).map_err(|e| {
            Error::from_object(
                ErrorKind::Serdes,
                ErrorObject::new(
                    SERDES_ERROR_TYPE,
                    format!("the value of {} {} does not survive its codec: {e}", self.method, self.label()),
                ),
            )
        })?;
        Ok((payload, back))
    }

    /// Encodes a child context's or a batch's result: `Ok` with the payload and the value
    /// a replay will decode when it fits the limit of inline context results, else `Err`
    /// with the value as it is (the result is then recorded with `ReplayChildren`, and a
    /// replay rebuilds it by replaying the children).
    pub(crate) fn encode_context<T>(&self, serdes: &dyn Serdes<T>, value: T) -> Result<Result<(String, T), T>, Error> {
        let payload = serdes.serialize(&value)?;
        if payload.len() > self.engine().limits.max_context_result {
            return Ok(Err(value));
        }
        let back = serdes.deserialize(&payload)?;
        Ok(Ok((payload, back)))
    }

    /// Decodes a recorded result.
    pub(crate) fn decode<T>(&self, serdes: &dyn Serdes<T>, payload: Option<&str>) -> Result<T, Error> {
        serdes.deserialize(payload.unwrap_or("null")).map_err(|e| {
            let mut object = e.object().clone();
            object.error_message = Some(format!(
                "the recorded result of {} {} does not read back: {}",
                self.method,
                self.label(),
                object.error_message.as_deref().unwrap_or("")
            ));
            Error::from_object(e.kind(), object)
        })
    }
}

/// What an operation does next, from its record (or after its `START`).
pub(crate) enum Next<T> {
    /// Return this: a recorded outcome, or what the operation knows already.
    Return(Result<T, Error>),
    /// Nothing more happens in this invocation (a retry timer, a wait): the operation
    /// never completes, and the invocation suspends once nothing else runs.
    Suspend,
    /// Wait until the service reports the operation finished (a callback, an invoke),
    /// then [`Lifecycle::finished`].
    Watch,
    /// Do the work; the number is the attempt (1-based) for steps, 0 otherwise.
    Work(u32),
    /// Complete without running anything (an at-most-once step found interrupted).
    Complete(Outcome<T>),
    /// Checkpoint `START` (with [`Lifecycle::start`]'s fields), acknowledged first if
    /// `ack`, then go on with [`Lifecycle::started`].
    Start {
        /// Wait for the acknowledgement (the work must not start before `START` is
        /// durable, or the operation needs what the service answers).
        ack: bool,
        /// The attempt the work will be.
        attempt: u32,
    },
}

/// How the work ended: what to checkpoint.
pub(crate) enum Outcome<T> {
    /// `SUCCEED` with the payload (if any), then return the value.
    Succeed {
        value: T,
        payload: Option<String>,
        /// The payload stands for a result too large to record: a replay rebuilds it by
        /// replaying the children (`ContextOptions.ReplayChildren`).
        replay_children: bool,
        /// Wait for the acknowledgement before returning: the caller's next effect
        /// happens only once this outcome is durable.
        ack: bool,
    },
    /// `FAIL`, then return the error with this kind.
    Fail { error: ErrorObject, kind: ErrorKind },
    /// `RETRY` (an attempt's error and/or a state payload) after `delay`, then suspend.
    Retry { error: Option<ErrorObject>, payload: Option<String>, delay: Duration },
    /// Nothing to checkpoint (a result rebuilt from recorded children).
    Return(Result<T, Error>),
}

impl<T> Outcome<T> {
    /// `SUCCEED` with a payload, acknowledged before the value is returned.
    pub(crate) fn succeed((payload, value): (String, T)) -> Self {
        Outcome::Succeed { value, payload: Some(payload), replay_children: false, ack: true }
    }

    /// A child context's `SUCCEED`: sent with the next batch, not waited for. Everything
    /// the context did is recorded by its own operations, so if this update were lost, a
    /// replay would run the context's code again and every operation in it would replay to
    /// the same result: nothing runs twice. Not waiting keeps nested contexts from costing
    /// a round trip per level (and a re-poll of every level above). A batch or combinator
    /// waits: which members finished first decided its result.
    pub(crate) fn succeed_context(value: T, payload: String, replay_children: bool) -> Self {
        Outcome::Succeed { value, payload: Some(payload), replay_children, ack: false }
    }
}

/// A durable operation's part in its [lifecycle](self). Implemented by every operation
/// and run by [`drive`].
pub(crate) trait Lifecycle {
    /// What awaiting the operation returns (inside `Result<_, Error>`).
    type Output;

    /// The call.
    fn call(&self) -> &Call;

    /// Checks the operation's own arguments (the name and sub-type are checked for it).
    fn validate(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Where to go from the recorded operation, or from nothing (`None`: the code reaches
    /// the operation for the first time).
    fn resume(&mut self, recorded: Option<Operation>) -> Next<Self::Output>;

    /// Fills in the operation's fields of its `START` update.
    fn start(&self, update: &mut OperationUpdate) {
        let _ = update;
    }

    /// After `START`: given the operation as the service answered (acknowledged starts
    /// only), what next. By default the work.
    fn started(&mut self, current: Option<&Operation>, attempt: u32) -> Next<Self::Output> {
        let _ = current;
        Next::Work(attempt)
    }

    /// The work of one attempt.
    fn work(&mut self, attempt: u32) -> impl Future<Output = Outcome<Self::Output>> {
        let _ = attempt;
        let error = Error::msg(format!("{} has no work of its own", self.call().method));
        async move { Outcome::Return(Err(error)) }
    }

    /// The service reported the watched operation finished.
    fn finished(&mut self, op: Operation) -> Result<Self::Output, Error> {
        match self.resume(Some(op)) {
            Next::Return(result) => result,
            _ => Err(Error::msg(format!("{} finished without an outcome", self.call().method))),
        }
    }
}

/// Runs an operation's lifecycle: see the [module docs](self).
pub(crate) async fn drive<L: Lifecycle>(mut op: L) -> Result<L::Output, Error> {
    op.call().validate()?;
    op.validate()?;
    let engine = op.call().engine().clone();
    let recorded = {
        let call = op.call();
        let describe = || call.describe();
        let shape = CallShape {
            id: &call.id,
            op_type: call.op_type,
            sub_type: &call.sub_type,
            name: call.name.as_deref(),
            parent_id: call.parent_id(),
            describe: &describe,
        };
        match engine.enter(&shape).await {
            Ok(recorded) => recorded,
            Err(Diverged) => return park().await,
        }
    };
    let mut next = op.resume(recorded);
    loop {
        next = match next {
            Next::Return(result) => return result,
            Next::Suspend => match engine.blocked().await {},
            Next::Watch => {
                let finished = engine.watch(op.call().id.clone()).await;
                return op.finished(finished);
            }
            Next::Start { ack, attempt } => {
                let mut update = op.call().update(OperationAction::Start);
                op.start(&mut update);
                if ack {
                    engine.enqueue_sync(update).await;
                    #[allow(clippy::redundant_closure_for_method_calls)]
                    // a path would not be general over the lifetime
                    let current = engine.with_operation(&op.call().id, |o| o.cloned());
                    op.started(current.as_ref(), attempt)
                } else {
                    engine.enqueue(update);
                    op.started(None, attempt)
                }
            }
            Next::Work(attempt) => {
                let outcome = op.work(attempt).await;
                Next::Complete(outcome)
            }
            Next::Complete(outcome) => return complete(op.call(), outcome).await,
        };
    }
}

/// Checkpoints an outcome and returns what the caller gets.
async fn complete<T>(call: &Call, outcome: Outcome<T>) -> Result<T, Error> {
    let engine = call.engine();
    let limit = engine.limits.max_operation_payload;
    match outcome {
        Outcome::Succeed { value, payload, replay_children, ack } => {
            let mut update = call.update(OperationAction::Succeed);
            update.payload = payload.map(Into::into);
            if replay_children {
                update.context_options = Some(ContextOptions { replay_children: Some(true) });
            }
            if ack {
                engine.enqueue_sync(update).await;
            } else {
                engine.enqueue(update);
            }
            Ok(value)
        }
        Outcome::Fail { error, kind } => {
            let error = fit_error(error, limit);
            let mut update = call.update(OperationAction::Fail);
            update.error = Some(error.clone());
            engine.enqueue_sync(update).await;
            Err(Error::from_object(kind, error))
        }
        Outcome::Retry { error, payload, delay } => {
            let mut update = call.update(OperationAction::Retry);
            update.error = error.map(|e| fit_error(e, limit));
            update.payload = payload.map(Into::into);
            update.step_options = Some(StepOptions { next_attempt_delay_seconds: Some(delay_seconds(delay)) });
            engine.enqueue_sync(update).await;
            match engine.blocked().await {}
        }
        Outcome::Return(result) => result,
    }
}

/// Whole seconds, at least 1 and at most the protocol's maximum (retry delays, which
/// strategies compute, round up).
pub(crate) fn delay_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.clamp(1, u64::from(MAX_DELAY_SECONDS)) as u32
}

/// Shortens an error's fields so that it fits in `limit` bytes.
pub(crate) fn fit_error(mut e: ErrorObject, limit: usize) -> ErrorObject {
    if e.approx_size() <= limit {
        return e;
    }
    e.stack_trace = None;
    let budget = limit / 2;
    for field in [&mut e.error_data, &mut e.error_message] {
        if let Some(s) = field
            && s.len() > budget
        {
            let mut cut = budget.saturating_sub(20);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("... (truncated)");
        }
    }
    e
}
