//! `wait_for_condition`: poll a check until a strategy says stop, suspending between polls.

use std::future::IntoFuture;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Name, StepContext};
use crate::engine::{Call, Lifecycle, Next, Outcome, PANIC_ERROR_TYPE, drive, panic_message};
use crate::error::{Error, ErrorKind};
use crate::model::{ErrorObject, Operation, OperationStatus, OperationType, StepDetails, SubType};
use crate::retry::{Backoff, Jitter};
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
/// a [`Backoff`] between polls, at most its `max_attempts` polls. When the last permitted
/// poll still says continue, the operation fails with error type `MaxAttemptsExceeded` (as
/// the TypeScript SDK's strategy throws, and as AWS's conformance requirement 6-6
/// expects), instead of returning a state whose condition was never met.
#[derive(Clone)]
pub struct PollUntil<F> {
    should_continue: F,
    backoff: Backoff,
}

/// AWS's defaults: 60 attempts, 5 s initial delay, 5 min maximum, ×1.5, full jitter.
pub fn poll_until<S, F: Fn(&S) -> bool + Send + Sync>(should_continue: F) -> PollUntil<F> {
    PollUntil {
        should_continue,
        backoff: Backoff::exponential()
            .max_attempts(60)
            .initial_delay(Duration::from_secs(5))
            .max_delay(Duration::from_mins(5))
            .backoff_rate(1.5)
            .jitter(Jitter::Full),
    }
}

impl<F> PollUntil<F> {
    /// The delays between polls and the number of polls, as a whole [`Backoff`] (its
    /// error filters do not apply).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Polls at most this many times ([`Backoff::max_attempts`]).
    pub fn max_attempts(self, n: u32) -> Self {
        let backoff = self.backoff.clone().max_attempts(n);
        self.backoff(backoff)
    }

    /// The delay after the first poll ([`Backoff::initial_delay`]).
    pub fn initial_delay(self, d: Duration) -> Self {
        let backoff = self.backoff.clone().initial_delay(d);
        self.backoff(backoff)
    }

    /// The longest delay ([`Backoff::max_delay`]).
    pub fn max_delay(self, d: Duration) -> Self {
        let backoff = self.backoff.clone().max_delay(d);
        self.backoff(backoff)
    }

    /// The growth factor of the delay ([`Backoff::backoff_rate`]).
    pub fn backoff_rate(self, rate: f64) -> Self {
        let backoff = self.backoff.clone().backoff_rate(rate);
        self.backoff(backoff)
    }

    /// The jitter ([`Backoff::jitter`]).
    pub fn jitter(self, jitter: Jitter) -> Self {
        let backoff = self.backoff.clone().jitter(jitter);
        self.backoff(backoff)
    }
}

impl<S, F: Fn(&S) -> bool + Send + Sync> WaitStrategy<S> for PollUntil<F> {
    fn decide(&self, state: &S, attempt: u32) -> WaitDecision {
        if !(self.should_continue)(state) {
            return WaitDecision::Stop;
        }
        if self.backoff.exhausted(attempt) {
            return WaitDecision::Fail(ErrorObject::new(
                "MaxAttemptsExceeded",
                format!("wait_for_condition exceeded its maximum attempts ({attempt})"),
            ));
        }
        WaitDecision::Continue(self.backoff.delay(attempt))
    }
}

/// A `wait_for_condition`, ready to be awaited. Created by [`DurableContext::wait_for_condition`].
#[must_use = "wait_for_condition does nothing until awaited"]
pub struct WaitForCondition<'a, S, F> {
    call: Call,
    initial: Option<S>,
    /// The state the next check starts from.
    state: Option<S>,
    check: F,
    strategy: Arc<dyn WaitStrategy<S> + 'a>,
    serdes: Arc<dyn Serdes<S>>,
}

impl DurableContext {
    /// Polls `check` until `strategy` says stop, and returns the last state. Each poll
    /// gets the state the previous one returned (`initial` first); between polls the
    /// execution suspends for the delay the strategy chose. Every poll's state is
    /// checkpointed (a `StepSucceeded` event with its retry details), so a replay resumes
    /// from the last one. An error from `check` fails the operation (no retries).
    pub fn wait_for_condition<'a, S, F>(
        &self,
        name: impl Into<Name>,
        initial: S,
        check: F,
        strategy: impl WaitStrategy<S> + 'a,
    ) -> WaitForCondition<'a, S, F>
    where
        F: AsyncFnMut(S, StepContext) -> Result<S, Error> + 'a,
        S: Serialize + DeserializeOwned + 'static,
    {
        WaitForCondition {
            call: self.call("wait_for_condition", OperationType::Step, SubType::WAIT_FOR_CONDITION, name.into()),
            initial: Some(initial),
            state: None,
            check,
            strategy: Arc::new(strategy),
            serdes: Arc::new(Json),
        }
    }
}

impl<'a, S, F> WaitForCondition<'a, S, F>
where
    F: AsyncFnMut(S, StepContext) -> Result<S, Error> + 'a,
    S: 'static,
{
    /// The codec of the state (default [`Json`]).
    pub fn serdes(mut self, serdes: impl Serdes<S> + 'static) -> Self {
        self.serdes = Arc::new(serdes);
        self
    }

    /// The state a check starts from: the recorded one, or the initial one (as a replay
    /// would read it back). As AWS's SDK does, an unreadable recorded state restarts
    /// from the initial one.
    fn state_from(&mut self, recorded: Option<&str>) -> Result<S, Error> {
        if let Some(state) = recorded.and_then(|p| self.serdes.deserialize(p).ok()) {
            return Ok(state);
        }
        let initial = self.initial.take().ok_or_else(|| Error::msg("the initial state was used already"))?;
        self.serdes.serialize(&initial).and_then(|p| self.serdes.deserialize(&p))
    }
}

impl<'a, S, F> Lifecycle for WaitForCondition<'a, S, F>
where
    F: AsyncFnMut(S, StepContext) -> Result<S, Error> + 'a,
    S: 'static,
{
    type Output = S;

    fn call(&self) -> &Call {
        &self.call
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<S> {
        let (details, status) = match recorded {
            None => (StepDetails::default(), None),
            Some(op) => (op.step_details.map(|d| *d).unwrap_or_default(), Some(op.status)),
        };
        let recorded_attempt = details.attempt.unwrap_or(0);
        let next = match status {
            None => Next::Start { ack: false, attempt: 1 },
            Some(OperationStatus::Succeeded) => {
                return Next::Return(self.call.decode(&*self.serdes, details.result.as_deref()));
            }
            Some(OperationStatus::Pending) => return Next::Suspend,
            Some(OperationStatus::Ready) => Next::Start { ack: false, attempt: recorded_attempt + 1 },
            Some(OperationStatus::Started) => Next::Work(recorded_attempt.max(1)),
            Some(_) => {
                let error = details.error.unwrap_or_default();
                return Next::Return(Err(Error::from_object(ErrorKind::WaitForCondition, error)));
            }
        };
        match self.state_from(details.result.as_deref()) {
            Ok(state) => {
                self.state = Some(state);
                next
            }
            Err(e) => Next::Return(Err(e)),
        }
    }

    async fn work(&mut self, attempt: u32) -> Outcome<S> {
        let fail = |error| Outcome::Fail { error, kind: ErrorKind::WaitForCondition };
        let Some(state) = self.state.take() else { return fail(ErrorObject::new("WaitForConditionError", "no state")) };
        let step_ctx =
            StepContext::new(self.call.id.clone(), self.call.name.shared(), attempt, self.call.engine().arn.clone());
        let new_state = match self.call.attempt(attempt, (self.check)(state, step_ctx)).await {
            Ok(s) => s,
            Err(error) => return fail(error),
        };
        let (payload, decoded) = match self.call.encode(&*self.serdes, &new_state) {
            Ok(encoded) => encoded,
            Err(e) => return fail(e.into_object()),
        };
        let decision = match std::panic::catch_unwind(AssertUnwindSafe(|| self.strategy.decide(&new_state, attempt))) {
            Ok(d) => d,
            Err(panic) => WaitDecision::Fail(ErrorObject::new(
                PANIC_ERROR_TYPE,
                format!("the wait strategy panicked: {}", panic_message(panic.as_ref())),
            )),
        };
        match decision {
            WaitDecision::Stop => Outcome::succeed((payload, decoded)),
            WaitDecision::Continue(delay) => Outcome::Retry { error: None, payload: Some(payload), delay },
            WaitDecision::Fail(error) => fail(error),
        }
    }
}

impl<'a, S, F> IntoFuture for WaitForCondition<'a, S, F>
where
    F: AsyncFnMut(S, StepContext) -> Result<S, Error> + 'a,
    S: 'static,
{
    type Output = Result<S, Error>;
    type IntoFuture = LocalBoxFuture<'a, Result<S, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(drive(self))
    }
}
