//! `step`: run a piece of work once, checkpoint its outcome, retry it on failure.

use std::borrow::Cow;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Name, OpIdent};
use crate::engine::{Call, Lifecycle, Next, Outcome, drive};
use crate::error::{Error, ErrorKind, STEP_INTERRUPTED_ERROR_TYPE};
use crate::model::{ErrorObject, Operation, OperationStatus, OperationType, SubType};
use crate::retry::{RetryDecision, RetryStrategy, presets};
use crate::serdes::{Json, Serdes};

/// How often a step's body may run per attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepSemantics {
    /// The attempt's START is checkpointed together with its outcome (one write per
    /// step). If the process dies mid-attempt, the attempt runs again. The default.
    #[default]
    AtLeastOncePerRetry,
    /// The attempt's START is checkpointed before the body runs. If the process dies
    /// mid-attempt, the body is not run again: the interruption goes to the retry
    /// strategy as a `StepInterruptedError`, which retries (a new attempt) or fails.
    AtMostOncePerRetry,
}

/// What a step's body receives.
#[derive(Debug, Clone)]
pub struct StepContext {
    operation_id: Arc<str>,
    name: Option<Arc<str>>,
    attempt: u32,
    execution_arn: Rc<str>,
}

impl StepContext {
    pub(crate) fn new(operation_id: Arc<str>, name: Option<Arc<str>>, attempt: u32, execution_arn: Rc<str>) -> Self {
        StepContext { operation_id, name, attempt, execution_arn }
    }

    /// The attempt number, 1-based.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The step's operation id.
    pub fn operation_id(&self) -> &str {
        &self.operation_id
    }

    /// The step's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The execution's ARN.
    pub fn execution_arn(&self) -> &str {
        &self.execution_arn
    }

    /// Always `false`: a step body only runs when its outcome is not recorded.
    pub fn is_replaying(&self) -> bool {
        false
    }
}

/// A step, ready to be awaited; configure it with the builder methods first.
///
/// Created by [`DurableContext::step`]. The operation id is fixed when the step is
/// created, not when it is awaited.
#[must_use = "a step does nothing until it is awaited"]
pub struct Step<'a, T, F> {
    call: Call,
    f: F,
    retry: Option<Arc<dyn RetryStrategy>>,
    semantics: StepSemantics,
    serdes: Arc<dyn Serdes<T>>,
    _marker: super::Marker<'a>,
}

impl DurableContext {
    /// Runs `f` as a step: its result is checkpointed, and on replay the recorded result is
    /// returned without running `f` again.
    ///
    /// `f` receives a [`StepContext`] and returns [`Result<T>`](crate::Result): `Ok(value)`
    /// and `?` on any error work without annotations. An error goes to the retry strategy
    /// (by default [`presets::default`]: 6 attempts, exponential backoff from 5 s with full
    /// jitter). A retry suspends the execution until the delay is over. The step's value is
    /// round-tripped through its codec before it is returned, so the first run returns
    /// exactly what a replay will.
    ///
    /// ```
    /// use durable_core::{DurableContext, Result, retry::presets};
    ///
    /// async fn charge(card: &str, cents: u64) -> Result<String> {
    ///     Ok(format!("charged {cents} to {card}"))
    /// }
    ///
    /// async fn pay(ctx: DurableContext, cents: u64) -> Result<String> {
    ///     let card = "4242".to_owned();
    ///     let receipt = ctx
    ///         .step("charge", async |_| charge(&card, cents).await)
    ///         .retry(presets::critical())
    ///         .at_most_once()
    ///         .await?;
    ///     let digits: u32 = ctx.step("digits", async |_| Ok(card.parse()?)).await?;
    ///     Ok(format!("{receipt} ({digits})"))
    /// }
    /// ```
    pub fn step<'a, T, F>(&self, name: impl Into<Name>, f: F) -> Step<'a, T, F>
    where
        F: AsyncFnMut(StepContext) -> Result<T, Error> + 'a,
        T: Serialize + DeserializeOwned + 'static,
    {
        self.step_with_ident(self.next_op(), name.into(), f)
    }

    /// A step whose id is already assigned (a saga's compensation).
    pub(crate) fn step_with_ident<'a, T, F>(&self, op: OpIdent, name: Name, f: F) -> Step<'a, T, F>
    where
        F: AsyncFnMut(StepContext) -> Result<T, Error> + 'a,
        T: Serialize + DeserializeOwned + 'static,
    {
        Step {
            call: self.call_with(op, "step", OperationType::Step, SubType::STEP, name),
            f,
            retry: None,
            semantics: StepSemantics::default(),
            serdes: Arc::new(Json),
            _marker: PhantomData,
        }
    }
}

impl<'a, T, F> Step<'a, T, F>
where
    F: AsyncFnMut(StepContext) -> Result<T, Error> + 'a,
    T: 'static,
{
    /// The retry strategy (see [`crate::retry`]).
    pub fn retry(mut self, strategy: impl RetryStrategy + 'static) -> Self {
        self.retry = Some(Arc::new(strategy));
        self
    }

    /// The retry strategy, shared.
    pub(crate) fn retry_shared(mut self, strategy: Arc<dyn RetryStrategy>) -> Self {
        self.retry = Some(strategy);
        self
    }

    /// The step's id, call site and name.
    pub(crate) fn identity(&self) -> (Arc<str>, super::CallSite, Option<Arc<str>>) {
        (self.call.id.clone(), self.call.site, self.call.name.shared())
    }

    /// Never retry: the first error fails the step.
    pub fn no_retry(self) -> Self {
        self.retry(presets::none())
    }

    /// Run each attempt's body at most once (see [`StepSemantics::AtMostOncePerRetry`]).
    pub fn at_most_once(mut self) -> Self {
        self.semantics = StepSemantics::AtMostOncePerRetry;
        self
    }

    /// Run each attempt's body at least once (the default).
    pub fn at_least_once(mut self) -> Self {
        self.semantics = StepSemantics::AtLeastOncePerRetry;
        self
    }

    /// Sets the semantics.
    pub fn semantics(mut self, semantics: StepSemantics) -> Self {
        self.semantics = semantics;
        self
    }

    /// The codec of the step's value (default [`Json`]).
    pub fn serdes(mut self, serdes: impl Serdes<T> + 'static) -> Self {
        self.serdes = Arc::new(serdes);
        self
    }

    /// A custom sub-type recorded on the operation (1 to 32 characters of
    /// `[A-Za-z0-9_-]`). Replay compares it: changing it breaks executions in flight.
    pub fn sub_type(mut self, sub_type: impl Into<Cow<'static, str>>) -> Self {
        self.call.sub_type = sub_type.into();
        self
    }

    /// After attempt `attempt` failed with `error`: a retry, or the step's failure.
    fn decide(&self, error: ErrorObject, attempt: u32, kind: ErrorKind) -> Outcome<T> {
        let retry = self.retry.clone().unwrap_or_else(default_retry);
        match retry.decide(&error, attempt) {
            RetryDecision::Retry(delay) => Outcome::Retry { error: Some(error), payload: None, delay },
            RetryDecision::Stop => Outcome::Fail { error, kind },
        }
    }
}

impl<'a, T, F> Lifecycle for Step<'a, T, F>
where
    F: AsyncFnMut(StepContext) -> Result<T, Error> + 'a,
    T: 'static,
{
    type Output = T;

    fn call(&self) -> &Call {
        &self.call
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<T> {
        let ack = self.semantics == StepSemantics::AtMostOncePerRetry;
        let Some(op) = recorded else { return Next::Start { ack, attempt: 1 } };
        let details = op.step_details.unwrap_or_default();
        let recorded_attempt = details.attempt.unwrap_or(0);
        match op.status {
            OperationStatus::Succeeded => Next::Return(self.call.decode(&*self.serdes, details.result.as_deref())),
            OperationStatus::Pending => Next::Suspend,
            OperationStatus::Ready => Next::Start { ack, attempt: recorded_attempt + 1 },
            OperationStatus::Started => {
                let attempt = recorded_attempt.max(1);
                if !ack {
                    // At least once: the interrupted attempt runs again, without a new START.
                    return Next::Work(attempt);
                }
                let error = ErrorObject::new(
                    STEP_INTERRUPTED_ERROR_TYPE,
                    format!(
                        "attempt {attempt} of at-most-once step {} was interrupted before its outcome was recorded;                          it is not run again",
                        self.call.label()
                    ),
                );
                Next::Complete(self.decide(error, attempt, ErrorKind::StepInterrupted))
            }
            OperationStatus::Failed
            | OperationStatus::Cancelled
            | OperationStatus::TimedOut
            | OperationStatus::Stopped => {
                let error = details.error.unwrap_or_default();
                let kind = if error.error_type.as_deref() == Some(STEP_INTERRUPTED_ERROR_TYPE) {
                    ErrorKind::StepInterrupted
                } else {
                    ErrorKind::Step
                };
                Next::Return(Err(Error::from_object(kind, error)))
            }
        }
    }

    async fn work(&mut self, attempt: u32) -> Outcome<T> {
        let step_ctx = StepContext {
            operation_id: self.call.id.clone(),
            name: self.call.name.shared(),
            attempt,
            execution_arn: self.call.engine().arn.clone(),
        };
        let outcome = self.call.attempt(attempt, (self.f)(step_ctx)).await;
        match outcome {
            Ok(value) => match self.call.encode(&*self.serdes, &value) {
                Ok(encoded) => Outcome::succeed(encoded),
                // A value that cannot be recorded will not become recordable by retrying.
                Err(e) => Outcome::Fail { error: e.into_object(), kind: ErrorKind::Step },
            },
            Err(error) => self.decide(error, attempt, ErrorKind::Step),
        }
    }
}

/// The strategy of steps that name none ([`presets::default`]), built once.
fn default_retry() -> Arc<dyn RetryStrategy> {
    static DEFAULT: std::sync::OnceLock<Arc<dyn RetryStrategy>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(presets::default())).clone()
}

impl<'a, T, F> IntoFuture for Step<'a, T, F>
where
    F: AsyncFnMut(StepContext) -> Result<T, Error> + 'a,
    T: 'static,
{
    type Output = Result<T, Error>;
    type IntoFuture = LocalBoxFuture<'a, Result<T, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(drive(self))
    }
}
