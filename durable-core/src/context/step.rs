//! `step`: run a piece of work once, checkpoint its outcome, retry it on failure.

use std::borrow::Cow;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Name, OpIdent};
use crate::engine::{Expect, PANIC_ERROR_TYPE, panic_message, park};
use crate::error::{Error, ErrorKind, PAYLOAD_TOO_LARGE_ERROR_TYPE, SERDES_ERROR_TYPE, STEP_INTERRUPTED_ERROR_TYPE};
use crate::model::{
    ErrorObject, OperationAction, OperationStatus, OperationType, OperationUpdate, StepOptions, SubType,
};
use crate::retry::{RetryDecision, RetryStrategy, presets};
use crate::serdes::{Json, Serdes};

/// The longest retry delay the protocol accepts (366 days).
pub(crate) const MAX_DELAY_SECONDS: u64 = 31_622_400;

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
pub struct Step<'a, T, E, F> {
    ctx: DurableContext,
    op: OpIdent,
    name: Name,
    f: F,
    retry: Option<Arc<dyn RetryStrategy>>,
    semantics: StepSemantics,
    serdes: Arc<dyn Serdes<T>>,
    sub_type: Cow<'static, str>,
    _marker: super::Marker<'a, E>,
}

impl DurableContext {
    /// Runs `f` as a step: its result is checkpointed, and on replay the recorded result is
    /// returned without running `f` again.
    ///
    /// `f` receives a [`StepContext`] and returns `Result<T, E>`; an error goes to the
    /// retry strategy (by default [`presets::default`]: 6 attempts, exponential backoff
    /// from 5 s with full jitter). A retry suspends the execution until the delay is over.
    /// The step's value is round-tripped through its codec before it is returned, so the
    /// first run returns exactly what a replay will.
    ///
    /// ```
    /// use durable_core::{DurableContext, Error, retry::presets};
    ///
    /// async fn charge(card: &str, cents: u64) -> Result<String, Error> {
    ///     Ok(format!("charged {cents} to {card}"))
    /// }
    ///
    /// async fn pay(ctx: DurableContext, cents: u64) -> Result<String, Error> {
    ///     let card = "4242".to_owned();
    ///     ctx.step("charge", async |_| charge(&card, cents).await)
    ///         .retry(presets::critical())
    ///         .at_most_once()
    ///         .await
    /// }
    /// ```
    pub fn step<'a, T, E, F>(&self, name: impl Into<Name>, f: F) -> Step<'a, T, E, F>
    where
        F: AsyncFnMut(StepContext) -> Result<T, E> + 'a,
        T: Serialize + DeserializeOwned + 'static,
        E: Into<Error>,
    {
        self.step_with_ident(self.next_op(), name.into(), f)
    }

    /// A step whose id is already assigned (a saga's compensation).
    pub(crate) fn step_with_ident<'a, T, E, F>(&self, op: OpIdent, name: Name, f: F) -> Step<'a, T, E, F>
    where
        F: AsyncFnMut(StepContext) -> Result<T, E> + 'a,
        T: Serialize + DeserializeOwned + 'static,
        E: Into<Error>,
    {
        Step {
            ctx: self.clone(),
            op,
            name,
            f,
            retry: None,
            semantics: StepSemantics::default(),
            serdes: Arc::new(Json),
            sub_type: Cow::Borrowed(SubType::STEP),
            _marker: PhantomData,
        }
    }
}

impl<'a, T, E, F> Step<'a, T, E, F>
where
    F: AsyncFnMut(StepContext) -> Result<T, E> + 'a,
    T: 'static,
    E: Into<Error> + 'a,
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
        (self.op.id.clone(), self.op.site, self.name.shared())
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
        self.sub_type = sub_type.into();
        self
    }

    fn update(&self, action: OperationAction) -> OperationUpdate {
        OperationUpdate::new(self.op.id.clone(), OperationType::Step, action).placed(
            self.ctx.scope.parent_id.clone(),
            self.name.shared(),
            SubType::new(self.sub_type.clone()),
        )
    }

    fn describe(&self) -> String {
        self.op.site.describe("step")
    }

    async fn run(mut self) -> Result<T, Error> {
        let engine = self.ctx.engine.clone();
        self.name.validate().map_err(Error::validation)?;
        SubType::validate(&self.sub_type).map_err(Error::validation)?;
        let parent = self.ctx.scope.parent_id.clone();
        let expect = Expect {
            op_type: OperationType::Step,
            sub_type: &self.sub_type,
            name: self.name.as_deref(),
            parent_id: parent.as_deref(),
        };
        let Ok(recorded) = engine.visit(&self.op.id, &expect, &|| self.describe()) else {
            return park().await;
        };
        let retry = self.retry.clone().unwrap_or_else(default_retry);
        let (attempt, need_start) = match recorded {
            None => (1, true),
            Some(op) => {
                let details = op.step_details.unwrap_or_default();
                let recorded_attempt = details.attempt.unwrap_or(0);
                match op.status {
                    OperationStatus::Succeeded => {
                        return self.serdes.deserialize(details.result.as_deref().unwrap_or("null"));
                    }
                    OperationStatus::Pending => match engine.blocked().await {},
                    OperationStatus::Ready => (recorded_attempt + 1, true),
                    OperationStatus::Started => match self.semantics {
                        StepSemantics::AtLeastOncePerRetry => (recorded_attempt.max(1), false),
                        StepSemantics::AtMostOncePerRetry => {
                            let attempt = recorded_attempt.max(1);
                            let error = ErrorObject::new(
                                STEP_INTERRUPTED_ERROR_TYPE,
                                format!(
                                    "attempt {attempt} of at-most-once step {} was interrupted before its outcome was \
                                     recorded; it is not run again",
                                    self.name.as_deref().unwrap_or("(unnamed)")
                                ),
                            );
                            return self.fail_or_retry(&*retry, error, attempt, ErrorKind::StepInterrupted).await;
                        }
                    },
                    OperationStatus::Failed
                    | OperationStatus::Cancelled
                    | OperationStatus::TimedOut
                    | OperationStatus::Stopped => {
                        let kind = if details.error.as_ref().and_then(|e| e.error_type.as_deref())
                            == Some(STEP_INTERRUPTED_ERROR_TYPE)
                        {
                            ErrorKind::StepInterrupted
                        } else {
                            ErrorKind::Step
                        };
                        return Err(Error::from_object(kind, details.error.unwrap_or_default()));
                    }
                }
            }
        };
        if need_start {
            let start = self.update(OperationAction::Start);
            match self.semantics {
                StepSemantics::AtLeastOncePerRetry => engine.enqueue(start),
                StepSemantics::AtMostOncePerRetry => engine.enqueue_sync(start).await,
            }
        }
        let step_ctx = StepContext {
            operation_id: self.op.id.clone(),
            name: self.name.shared(),
            attempt,
            execution_arn: engine.arn.clone(),
        };
        if !engine.may_run_body(&self.op.id, &|| self.describe()) {
            return park().await;
        }
        engine.plugin_attempt(
            &self.op.id,
            self.ctx.scope.parent_id.as_deref(),
            self.name.as_deref(),
            &self.sub_type,
            attempt,
            None,
        );
        let outcome = {
            let _running = engine.running();
            AssertUnwindSafe((self.f)(step_ctx)).catch_unwind().await
        };
        let outcome = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.into().into_object()),
            Err(panic) => Err(ErrorObject::new(
                PANIC_ERROR_TYPE,
                format!(
                    "step {} panicked: {}",
                    self.name.as_deref().unwrap_or("(unnamed)"),
                    panic_message(panic.as_ref())
                ),
            )),
        };
        engine.plugin_attempt(
            &self.op.id,
            self.ctx.scope.parent_id.as_deref(),
            self.name.as_deref(),
            &self.sub_type,
            attempt,
            Some(outcome.as_ref().map(|_| ())),
        );
        let error = match outcome {
            Ok(value) => match self.encode(&value) {
                Ok((payload, value)) => {
                    let mut done = self.update(OperationAction::Succeed);
                    done.payload = Some(payload.into());
                    engine.enqueue_sync(done).await;
                    return Ok(value);
                }
                // A value that cannot be recorded will not become recordable by retrying.
                Err(e) => {
                    let mut fail = self.update(OperationAction::Fail);
                    fail.error = Some(fit_error(e.object().clone(), engine.limits.max_operation_payload));
                    engine.enqueue_sync(fail).await;
                    return Err(e.with_kind(ErrorKind::Step));
                }
            },
            Err(e) => e,
        };
        self.fail_or_retry(&*retry, error, attempt, ErrorKind::Step).await
    }

    /// Serialises a value, checks its size, and round-trips it through the codec.
    fn encode(&self, value: &T) -> Result<(String, T), Error> {
        let payload = self.serdes.serialize(value)?;
        let limit = self.ctx.engine.limits.max_operation_payload;
        if payload.len() > limit {
            return Err(Error::from_object(
                ErrorKind::PayloadTooLarge,
                ErrorObject::new(
                    PAYLOAD_TOO_LARGE_ERROR_TYPE,
                    format!(
                        "the result of step {} is {} bytes; the checkpoint store accepts at most {limit} bytes per \
                         operation",
                        self.name.as_deref().unwrap_or("(unnamed)"),
                        payload.len()
                    ),
                ),
            ));
        }
        let back = self.serdes.deserialize(&payload).map_err(|e| {
            Error::from_object(
                ErrorKind::Serdes,
                ErrorObject::new(SERDES_ERROR_TYPE, format!("the step's value does not survive its codec: {e}")),
            )
        })?;
        Ok((payload, back))
    }

    async fn fail_or_retry(
        &self,
        retry: &dyn RetryStrategy,
        error: ErrorObject,
        attempt: u32,
        kind: ErrorKind,
    ) -> Result<T, Error> {
        let engine = &self.ctx.engine;
        let error = fit_error(error, engine.limits.max_operation_payload);
        match retry.decide(&error, attempt) {
            RetryDecision::Retry(delay) => {
                let mut u = self.update(OperationAction::Retry);
                u.error = Some(error);
                u.step_options = Some(StepOptions { next_attempt_delay_seconds: Some(delay_seconds(delay)) });
                engine.enqueue_sync(u).await;
                match engine.blocked().await {}
            }
            RetryDecision::Stop => {
                let mut u = self.update(OperationAction::Fail);
                u.error = Some(error.clone());
                engine.enqueue_sync(u).await;
                Err(Error::from_object(kind, error))
            }
        }
    }
}

/// The strategy of steps that name none ([`presets::default`]), built once.
fn default_retry() -> Arc<dyn RetryStrategy> {
    static DEFAULT: std::sync::OnceLock<Arc<dyn RetryStrategy>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(presets::default())).clone()
}

/// Whole seconds, at least 1 and at most the protocol's maximum.
pub(crate) fn delay_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.clamp(1, MAX_DELAY_SECONDS) as u32
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

impl<'a, T, E, F> IntoFuture for Step<'a, T, E, F>
where
    F: AsyncFnMut(StepContext) -> Result<T, E> + 'a,
    T: 'static,
    E: Into<Error> + 'a,
{
    type Output = Result<T, Error>;
    type IntoFuture = LocalBoxFuture<'a, Result<T, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
