//! Sagas: steps with compensations, undone in reverse order when a later part fails.

use std::cell::RefCell;
use std::future::{Future, IntoFuture};
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::step::{Step, StepContext};
use super::{CallSite, DurableContext, Name, OpIdent};
use crate::error::{Error, ErrorKind};
use crate::id;
use crate::model::ErrorObject;
use crate::retry::RetryStrategy;

/// The error type returned by [`Saga::compensate`] when compensations failed.
pub const COMPENSATION_FAILED_ERROR_TYPE: &str = "CompensationFailedError";

/// The site key of a compensation's id, derived from its step's id.
const COMPENSATION_KEY: &str = "durable:compensation";

/// A registered compensation: given the context, its id, its name and its retry strategy,
/// the step that undoes.
type Compensation<'a> = Box<
    dyn FnOnce(DurableContext, OpIdent, Name, Option<Arc<dyn RetryStrategy>>) -> LocalBoxFuture<'a, Result<(), Error>>
        + 'a,
>;

struct Registered<'a> {
    /// The step whose effect the compensation undoes.
    step_id: Arc<str>,
    step_site: CallSite,
    step_name: Option<Arc<str>>,
    run: Compensation<'a>,
}

/// A saga: steps that each register a compensation when they succeed. When the work
/// fails, [`Saga::compensate`] (or [`Saga::run`]) runs the registered compensations in
/// reverse order, each as a durable step.
///
/// Compensations are registered again on every replay (the steps replay), so a saga
/// survives suspensions and crashes: compensations that already ran replay from their
/// records, the rest run. A compensation step's id is derived from its step's id, and it
/// is named `compensate <step name>`.
///
/// ```
/// use durable_core::{DurableContext, Error};
///
/// async fn book_trip(ctx: DurableContext) -> Result<(String, String), Error> {
///     let saga = ctx.saga();
///     saga.run(async {
///         let flight = saga
///             .step("book flight", async |_| Ok("FL-1".to_owned()))
///             .compensate(async |_, flight| {
///                 println!("cancel {flight}");
///                 Ok(())
///             })
///             .await?;
///         let hotel = saga
///             .step("book hotel", async |_| Ok("HT-9".to_owned()))
///             .compensate(async |_, hotel| {
///                 println!("cancel {hotel}");
///                 Ok(())
///             })
///             .await?;
///         Ok((flight, hotel))
///     })
///     .await
/// }
/// ```
pub struct Saga<'a> {
    ctx: DurableContext,
    compensations: RefCell<Vec<Registered<'a>>>,
    retry: RefCell<Option<Arc<dyn RetryStrategy>>>,
}

impl DurableContext {
    /// A new saga whose steps and compensations run in this context.
    pub fn saga<'a>(&self) -> Saga<'a> {
        Saga { ctx: self.clone(), compensations: RefCell::new(Vec::new()), retry: RefCell::new(None) }
    }
}

impl<'a> Saga<'a> {
    /// A step of the saga. Configure it like [`DurableContext::step`], then give its
    /// compensation with [`SagaStep::compensate`] (a step without one is an ordinary
    /// step).
    pub fn step<'s, T, F>(&'s self, name: impl Into<Name>, f: F) -> SagaStep<'a, 's, T, F>
    where
        F: AsyncFnMut(StepContext) -> Result<T, Error> + 'a,
        T: Serialize + DeserializeOwned + 'static,
    {
        SagaStep { saga: self, step: self.ctx.step(name, f), compensation: None }
    }

    /// The retry strategy of the compensation steps (default: the step default).
    pub fn compensation_retry(&self, strategy: impl RetryStrategy + 'static) -> &Self {
        *self.retry.borrow_mut() = Some(Arc::new(strategy));
        self
    }

    /// How many compensations are registered and not run yet.
    pub fn pending_compensations(&self) -> usize {
        self.compensations.borrow().len()
    }

    /// Runs the registered compensations, the last registered first, each as a durable
    /// step, and forgets them. Every compensation runs even when an earlier one fails
    /// (after its retries); the failures come back together as one error of type
    /// [`COMPENSATION_FAILED_ERROR_TYPE`] whose data is the JSON array of
    /// `{"step": name, "error": ErrorObject}`.
    pub async fn compensate(&self) -> Result<(), Error> {
        let mut failures = Vec::new();
        loop {
            let next = self.compensations.borrow_mut().pop();
            let Some(c) = next else { break };
            let op = OpIdent { id: id::operation_id_shared(Some(&c.step_id), COMPENSATION_KEY, 0), site: c.step_site };
            let name = Name::from(format!("compensate {}", c.step_name.as_deref().unwrap_or("(unnamed step)")));
            let retry = self.retry.borrow().clone();
            if let Err(e) = (c.run)(self.ctx.clone(), op, name, retry).await {
                failures.push(serde_json::json!({
                    "step": c.step_name.as_deref(),
                    "stepId": &*c.step_id,
                    "error": e.object(),
                }));
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        let mut object = ErrorObject::new(
            COMPENSATION_FAILED_ERROR_TYPE,
            format!("{} compensation(s) failed; the saga is only partly undone", failures.len()),
        );
        object.error_data = Some(serde_json::Value::Array(failures).to_string());
        Err(Error::from_object(ErrorKind::Compensation, object))
    }

    /// Runs `work`; when it fails, runs the compensations and returns the work's error
    /// (or, when compensations failed too, the compensation error, whose message names
    /// the original error).
    pub async fn run<T>(&self, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        match work.await {
            Ok(v) => Ok(v),
            Err(e) => match self.compensate().await {
                Ok(()) => Err(e),
                Err(c) => {
                    let mut object = c.into_object();
                    object.error_message =
                        Some(format!("{} (after: {e})", object.error_message.as_deref().unwrap_or_default()));
                    Err(Error::from_object(ErrorKind::Compensation, object))
                }
            },
        }
    }

    fn register(&self, step: (Arc<str>, CallSite, Option<Arc<str>>), run: Compensation<'a>) {
        let (step_id, step_site, step_name) = step;
        self.compensations.borrow_mut().push(Registered { step_id, step_site, step_name, run });
    }
}

/// A saga step, ready to be awaited. Created by [`Saga::step`].
#[must_use = "a step does nothing until it is awaited"]
pub struct SagaStep<'a, 's, T, F> {
    saga: &'s Saga<'a>,
    step: Step<'a, T, F>,
    compensation: Option<Box<dyn FnOnce(T) -> Compensation<'a> + 'a>>,
}

impl<'a, T, F> SagaStep<'a, '_, T, F>
where
    F: AsyncFnMut(StepContext) -> Result<T, Error> + 'a,
    T: Clone + 'static,
{
    /// What undoes this step: called with the step's value, as a durable step of its
    /// own, when the saga compensates. Registered only if the step succeeds.
    pub fn compensate<C>(mut self, compensation: C) -> Self
    where
        C: AsyncFnMut(StepContext, T) -> Result<(), Error> + 'a,
    {
        self.compensation = Some(Box::new(move |value: T| -> Compensation<'a> {
            Box::new(move |ctx, op, name, retry| -> LocalBoxFuture<'a, Result<(), Error>> {
                Box::pin(async move {
                    let mut compensation = compensation;
                    let step = ctx.step_with_ident(op, name, async |sc| compensation(sc, value.clone()).await);
                    match retry {
                        Some(r) => step.retry_shared(r).await,
                        None => step.await,
                    }
                })
            })
        }));
        self
    }

    /// The retry strategy (see [`Step::retry`]).
    pub fn retry(mut self, strategy: impl RetryStrategy + 'static) -> Self {
        self.step = self.step.retry(strategy);
        self
    }

    /// Never retry (see [`Step::no_retry`]).
    pub fn no_retry(mut self) -> Self {
        self.step = self.step.no_retry();
        self
    }

    /// Each attempt's body runs at most once (see [`Step::at_most_once`]).
    pub fn at_most_once(mut self) -> Self {
        self.step = self.step.at_most_once();
        self
    }
}

impl<'a, 's, T, F> IntoFuture for SagaStep<'a, 's, T, F>
where
    F: AsyncFnMut(StepContext) -> Result<T, Error> + 'a,
    T: Clone + 'static,
{
    type Output = Result<T, Error>;
    type IntoFuture = LocalBoxFuture<'s, Result<T, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        let SagaStep { saga, step, compensation } = self;
        let ident = step.identity();
        Box::pin(async move {
            let value = step.await?;
            if let Some(make) = compensation {
                saga.register(ident, make(value.clone()));
            }
            Ok(value)
        })
    }
}
