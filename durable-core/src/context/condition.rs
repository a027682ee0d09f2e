//! `wait_for_condition`: poll a check until a strategy says stop, suspending between polls.

use std::borrow::Cow;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::step::{delay_seconds, fit_error};
use super::{DurableContext, Name, OpIdent, StepContext};
use crate::engine::{Expect, PANIC_ERROR_TYPE, panic_message, park};
use crate::error::{Error, ErrorKind};
use crate::model::{
    ErrorObject, OperationAction, OperationStatus, OperationType, OperationUpdate, StepOptions, SubType,
};
use crate::retry::Jitter;
use crate::serdes::{Json, Serdes};

/// What a wait strategy decides after a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitDecision {
    /// Poll again after this delay (whole seconds, at least 1).
    Continue(Duration),
    /// Stop: the state is the condition's result.
    Stop,
    /// Give up: the operation fails with this error (`StepFailed`), as when AWS's wait
    /// strategies raise (for example once their attempts are spent).
    Fail(ErrorObject),
}

/// Decides, from the state a poll returned and the poll's number (1-based), whether to
/// poll again.
pub trait WaitStrategy<S>: Send + Sync {
    /// The decision after poll number `attempt` returned `state`.
    fn decide(&self, state: &S, attempt: u32) -> WaitDecision;
}

impl<S, F> WaitStrategy<S> for F
where
    F: Fn(&S, u32) -> WaitDecision + Send + Sync,
{
    fn decide(&self, state: &S, attempt: u32) -> WaitDecision {
        self(state, attempt)
    }
}

/// AWS's `createWaitStrategy`: keep polling while `should_continue(state)` holds, with
/// exponential backoff, at most `max_attempts` polls. When the last permitted poll still
/// says continue, the operation fails with error type `MaxAttemptsExceeded` (as the TypeScript
/// SDK's strategy throws, and as AWS's conformance requirement 6-6 expects), instead of
/// returning a state whose condition was never met.
#[derive(Clone)]
pub struct PollUntil<F> {
    should_continue: F,
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    backoff_rate: f64,
    jitter: Jitter,
}

/// AWS's defaults: 60 attempts, 5 s initial delay, 5 min maximum, ×1.5, full jitter.
pub fn poll_until<S, F: Fn(&S) -> bool + Send + Sync>(should_continue: F) -> PollUntil<F> {
    PollUntil {
        should_continue,
        max_attempts: 60,
        initial_delay: Duration::from_secs(5),
        max_delay: Duration::from_mins(5),
        backoff_rate: 1.5,
        jitter: Jitter::Full,
    }
}

impl<F> PollUntil<F> {
    /// Polls at most this many times.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The delay after the first poll.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// The longest delay.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// The growth factor of the delay.
    pub fn backoff_rate(mut self, rate: f64) -> Self {
        self.backoff_rate = rate;
        self
    }

    /// The jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }
}

impl<S, F: Fn(&S) -> bool + Send + Sync> WaitStrategy<S> for PollUntil<F> {
    fn decide(&self, state: &S, attempt: u32) -> WaitDecision {
        if !(self.should_continue)(state) {
            return WaitDecision::Stop;
        }
        if attempt >= self.max_attempts {
            return WaitDecision::Fail(ErrorObject::new(
                "MaxAttemptsExceeded",
                format!("wait_for_condition exceeded its maximum attempts ({})", self.max_attempts),
            ));
        }
        let base = (self.initial_delay.as_secs_f64() * self.backoff_rate.powi(attempt.saturating_sub(1) as i32))
            .min(self.max_delay.as_secs_f64());
        let jittered = self.jitter.apply(base);
        WaitDecision::Continue(Duration::from_secs(jittered.round().max(1.0) as u64))
    }
}

/// A `wait_for_condition`, ready to be awaited. Created by [`DurableContext::wait_for_condition`].
#[must_use = "wait_for_condition does nothing until awaited"]
pub struct WaitForCondition<'a, S, E, F> {
    ctx: DurableContext,
    op: OpIdent,
    name: Name,
    initial: S,
    check: F,
    strategy: Arc<dyn WaitStrategy<S> + 'a>,
    serdes: Arc<dyn Serdes<S>>,
    sub_type: Cow<'static, str>,
    _marker: super::Marker<'a, E>,
}

impl DurableContext {
    /// Polls `check` until `strategy` says stop, and returns the last state. Each poll
    /// gets the state the previous one returned (`initial` first); between polls the
    /// execution suspends for the delay the strategy chose. Every poll's state is
    /// checkpointed (a `StepSucceeded` event with its retry details), so a replay resumes
    /// from the last one. An error from `check` fails the operation (no retries).
    pub fn wait_for_condition<'a, S, E, F>(
        &self,
        name: impl Into<Name>,
        initial: S,
        check: F,
        strategy: impl WaitStrategy<S> + 'a,
    ) -> WaitForCondition<'a, S, E, F>
    where
        F: AsyncFnMut(S, StepContext) -> Result<S, E> + 'a,
        S: Serialize + DeserializeOwned + 'static,
        E: Into<Error>,
    {
        WaitForCondition {
            ctx: self.clone(),
            op: self.next_op(),
            name: name.into(),
            initial,
            check,
            strategy: Arc::new(strategy),
            serdes: Arc::new(Json),
            sub_type: Cow::Borrowed(SubType::WAIT_FOR_CONDITION),
            _marker: PhantomData,
        }
    }
}

impl<'a, S, E, F> WaitForCondition<'a, S, E, F>
where
    F: AsyncFnMut(S, StepContext) -> Result<S, E> + 'a,
    S: 'static,
    E: Into<Error> + 'a,
{
    /// The codec of the state (default [`Json`]).
    pub fn serdes(mut self, serdes: impl Serdes<S> + 'static) -> Self {
        self.serdes = Arc::new(serdes);
        self
    }

    fn update(&self, action: OperationAction) -> OperationUpdate {
        OperationUpdate::new(self.op.id.clone(), OperationType::Step, action).placed(
            self.ctx.scope.parent_id.clone(),
            self.name.shared(),
            SubType::new(self.sub_type.clone()),
        )
    }

    async fn run(mut self) -> Result<S, Error> {
        let engine = self.ctx.engine.clone();
        self.name.validate().map_err(Error::validation)?;
        let expect = Expect {
            op_type: OperationType::Step,
            sub_type: &self.sub_type,
            name: self.name.as_deref(),
            parent_id: self.ctx.scope.parent_id.as_deref(),
        };
        let Ok(recorded) = engine.visit(&self.op.id, &expect, &|| self.op.site.describe("wait_for_condition")) else {
            return park().await;
        };
        let (state_payload, attempt, need_start) = match recorded {
            None => (None, 1, true),
            Some(op) => {
                let details = op.step_details.unwrap_or_default();
                let recorded_attempt = details.attempt.unwrap_or(0);
                match op.status {
                    OperationStatus::Succeeded => {
                        return self.serdes.deserialize(details.result.as_deref().unwrap_or("null"));
                    }
                    OperationStatus::Pending => match engine.blocked().await {},
                    OperationStatus::Ready => (details.result, recorded_attempt + 1, true),
                    OperationStatus::Started => (details.result, recorded_attempt.max(1), false),
                    _ => {
                        return Err(Error::from_object(ErrorKind::WaitForCondition, details.error.unwrap_or_default()));
                    }
                }
            }
        };
        let state = match state_payload {
            Some(p) => match self.serdes.deserialize(&p) {
                Ok(s) => s,
                // As AWS's SDK does: an unreadable checkpointed state restarts from the initial one.
                Err(_) => std::mem::replace(&mut self.initial, self.serdes.deserialize("null")?),
            },
            None => match self.serdes.serialize(&self.initial).and_then(|p| self.serdes.deserialize(&p)) {
                Ok(s) => s,
                Err(e) => return Err(e),
            },
        };
        if need_start {
            engine.enqueue(self.update(OperationAction::Start));
        }
        let step_ctx = StepContext::new(self.op.id.clone(), self.name.shared(), attempt, engine.arn.clone());
        if !engine.may_run_body(&self.op.id, &|| self.op.site.describe("wait_for_condition")) {
            return park().await;
        }
        engine.plugin_attempt(
            &self.op.id,
            self.ctx.scope.parent_id.as_deref(),
            self.name.as_deref(),
            SubType::WAIT_FOR_CONDITION,
            attempt,
            None,
        );
        let outcome = {
            let _running = engine.running();
            AssertUnwindSafe((self.check)(state, step_ctx)).catch_unwind().await
        };
        let outcome = match outcome {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(e.into().into_object()),
            Err(panic) => Err(ErrorObject::new(
                PANIC_ERROR_TYPE,
                format!("the condition check panicked: {}", panic_message(panic.as_ref())),
            )),
        };
        engine.plugin_attempt(
            &self.op.id,
            self.ctx.scope.parent_id.as_deref(),
            self.name.as_deref(),
            SubType::WAIT_FOR_CONDITION,
            attempt,
            Some(outcome.as_ref().map(|_| ())),
        );
        let new_state = match outcome {
            Ok(s) => s,
            Err(e) => return self.fail(e).await,
        };
        let payload = self.serdes.serialize(&new_state)?;
        let decision = match std::panic::catch_unwind(AssertUnwindSafe(|| self.strategy.decide(&new_state, attempt))) {
            Ok(d) => d,
            Err(panic) => WaitDecision::Fail(ErrorObject::new(
                PANIC_ERROR_TYPE,
                format!("the wait strategy panicked: {}", panic_message(panic.as_ref())),
            )),
        };
        match decision {
            WaitDecision::Stop => {
                let mut u = self.update(OperationAction::Succeed);
                u.payload = Some(payload.as_str().into());
                engine.enqueue_sync(u).await;
                self.serdes.deserialize(&payload)
            }
            WaitDecision::Continue(delay) => {
                let mut u = self.update(OperationAction::Retry);
                u.payload = Some(payload.into());
                u.step_options = Some(StepOptions { next_attempt_delay_seconds: Some(delay_seconds(delay)) });
                engine.enqueue_sync(u).await;
                match engine.blocked().await {}
            }
            WaitDecision::Fail(error) => self.fail(error).await,
        }
    }

    async fn fail(&self, error: ErrorObject) -> Result<S, Error> {
        let engine = &self.ctx.engine;
        let error = fit_error(error, engine.limits.max_operation_payload);
        let mut u = self.update(OperationAction::Fail);
        u.error = Some(error.clone());
        engine.enqueue_sync(u).await;
        Err(Error::from_object(ErrorKind::WaitForCondition, error))
    }
}

impl<'a, S, E, F> IntoFuture for WaitForCondition<'a, S, E, F>
where
    F: AsyncFnMut(S, StepContext) -> Result<S, E> + 'a,
    S: 'static,
    E: Into<Error> + 'a,
{
    type Output = Result<S, Error>;
    type IntoFuture = LocalBoxFuture<'a, Result<S, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
