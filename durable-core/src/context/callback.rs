//! Callbacks: `create_callback` (an id to hand to the outside world, and a result to wait
//! for) and `wait_for_callback` (create, submit, wait, as one child context).

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Name, OpIdent, StepContext};
use crate::engine::{Engine, Expect, park};
use crate::error::{Error, ErrorKind};
use crate::model::{
    CallbackOptions, ErrorObject, Operation, OperationAction, OperationStatus, OperationType, OperationUpdate, SubType,
};
use crate::retry::RetryStrategy;
use crate::serdes::{Json, Serdes};

/// The longest callback timeout or heartbeat timeout the protocol accepts, in seconds.
const MAX_CALLBACK_SECONDS: u64 = 99_999_999;

/// A callback being created; await it to get the [`Callback`]. Created by
/// [`DurableContext::create_callback`].
#[must_use = "a callback is not created until awaited"]
pub struct CreateCallback<T> {
    ctx: DurableContext,
    op: OpIdent,
    name: Name,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    serdes: Arc<dyn Serdes<T>>,
    sub_type: Cow<'static, str>,
}

/// A created callback: its id goes to whoever will complete it; [`Callback::result`]
/// waits for the completion.
pub struct Callback<T> {
    id: String,
    op_id: Arc<str>,
    engine: Rc<Engine>,
    recorded: RefCell<Option<Operation>>,
    serdes: Arc<dyn Serdes<T>>,
}

impl<T> std::fmt::Debug for Callback<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("id", &self.id).finish_non_exhaustive()
    }
}

impl DurableContext {
    /// Creates a callback: a durable operation completed from outside the execution with
    /// `SendDurableExecutionCallbackSuccess` / `Failure` / `Heartbeat` (or the runner's
    /// equivalents). Give [`Callback::id`] to whoever will complete it, then await
    /// [`Callback::result`]: the execution suspends (nothing runs) until the callback
    /// completes or times out. The result is JSON text decoded into `T` (change the codec
    /// with [`CreateCallback::serdes`]).
    pub fn create_callback<T>(&self, name: impl Into<Name>) -> CreateCallback<T>
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        CreateCallback {
            ctx: self.clone(),
            op: self.next_op(),
            name: name.into(),
            timeout: None,
            heartbeat: None,
            serdes: Arc::new(Json),
            sub_type: Cow::Borrowed(SubType::CALLBACK),
        }
    }
}

fn seconds(d: Option<Duration>, what: &str) -> Result<u32, Error> {
    let Some(d) = d else { return Ok(0) };
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if secs > MAX_CALLBACK_SECONDS {
        return Err(Error::validation(format!("a callback {what} lasts at most {MAX_CALLBACK_SECONDS} seconds")));
    }
    Ok(secs as u32)
}

impl<T: 'static> CreateCallback<T> {
    /// Fails the callback with `Callback.Timeout` if it is not completed within `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Fails the callback with `Callback.Heartbeat` if no heartbeat (or completion)
    /// arrives within `d` of the last one.
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        self.heartbeat = Some(d);
        self
    }

    /// The codec of the result (default [`Json`]).
    pub fn serdes(mut self, serdes: impl Serdes<T> + 'static) -> Self {
        self.serdes = Arc::new(serdes);
        self
    }

    /// A custom sub-type (1 to 32 characters of `[A-Za-z0-9_-]`).
    pub fn sub_type(mut self, sub_type: impl Into<Cow<'static, str>>) -> Self {
        self.sub_type = sub_type.into();
        self
    }

    async fn run(self) -> Result<Callback<T>, Error> {
        let engine = self.ctx.engine.clone();
        self.name.validate().map_err(Error::validation)?;
        SubType::validate(&self.sub_type).map_err(Error::validation)?;
        let timeout = seconds(self.timeout, "timeout")?;
        let heartbeat = seconds(self.heartbeat, "heartbeat timeout")?;
        let expect = Expect {
            op_type: OperationType::Callback,
            sub_type: &self.sub_type,
            name: self.name.as_deref(),
            parent_id: self.ctx.scope.parent_id.as_deref(),
        };
        let Ok(recorded) = engine.visit(&self.op.id, &expect, &|| self.op.site.describe("create_callback")) else {
            return park().await;
        };
        let op = if let Some(op) = recorded {
            op
        } else {
            let mut u = OperationUpdate::new(self.op.id.clone(), OperationType::Callback, OperationAction::Start)
                .placed(self.ctx.scope.parent_id.clone(), self.name.shared(), SubType::new(self.sub_type.clone()));
            u.callback_options =
                Some(CallbackOptions { timeout_seconds: Some(timeout), heartbeat_timeout_seconds: Some(heartbeat) });
            engine.enqueue_sync(u).await;
            #[allow(clippy::redundant_closure_for_method_calls)] // a path would not be general over the lifetime
            match engine.with_operation(&self.op.id, |op| op.cloned()) {
                Some(op) => op,
                None => {
                    return Err(Error::from_object(
                        ErrorKind::CallbackFailed,
                        ErrorObject::new("CallbackError", "the service did not return the callback's id"),
                    ));
                }
            }
        };
        let id = op.callback_details.as_ref().and_then(|d| d.callback_id.clone()).ok_or_else(|| {
            Error::from_object(
                ErrorKind::CallbackFailed,
                ErrorObject::new("CallbackError", format!("callback {} has no id recorded", self.op.id)),
            )
        })?;
        Ok(Callback { id, op_id: self.op.id.clone(), engine, recorded: RefCell::new(Some(op)), serdes: self.serdes })
    }
}

impl<T: 'static> IntoFuture for CreateCallback<T> {
    type Output = Result<Callback<T>, Error>;
    type IntoFuture = LocalBoxFuture<'static, Result<Callback<T>, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<T> Callback<T> {
    /// The id to complete the callback with.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits for the callback: its result once it succeeded; an error of kind
    /// [`ErrorKind::CallbackTimedOut`] (`Callback.Timeout` / `Callback.Heartbeat`) or
    /// [`ErrorKind::CallbackFailed`] otherwise. The execution suspends meanwhile.
    pub async fn result(&self) -> Result<T, Error> {
        let recorded = self.recorded.borrow().clone().filter(|o| o.status.is_terminal());
        let op = match recorded {
            Some(op) => op,
            None => self.engine.watch(self.op_id.clone()).await,
        };
        let details = op.callback_details.clone().unwrap_or_default();
        match op.status {
            OperationStatus::Succeeded => self.serdes.deserialize(details.result.as_deref().unwrap_or("null")),
            OperationStatus::TimedOut => {
                Err(Error::from_object(ErrorKind::CallbackTimedOut, details.error.unwrap_or_default()))
            }
            _ => Err(Error::from_object(ErrorKind::CallbackFailed, details.error.unwrap_or_default())),
        }
    }
}

/// `wait_for_callback`, ready to be awaited. Created by [`DurableContext::wait_for_callback`].
#[must_use = "wait_for_callback does nothing until awaited"]
pub struct WaitForCallback<'a, T, E, F> {
    ctx: DurableContext,
    op: OpIdent,
    name: Name,
    submitter: F,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    retry: Option<Arc<dyn RetryStrategy>>,
    serdes: Arc<dyn Serdes<T>>,
    _marker: super::Marker<'a, E>,
}

impl DurableContext {
    /// Creates a callback, runs `submitter` with its id as a step (to hand the id to the
    /// outside world; it is retried with the step's strategy), then waits for the
    /// callback's result. All three run in a child context (`WaitForCallback`) named
    /// `name`, as AWS's SDKs do: the callback is named `"<name> create callback id"` and the
    /// step `"<name> submitter"`.
    pub fn wait_for_callback<'a, T, E, F>(&self, name: impl Into<Name>, submitter: F) -> WaitForCallback<'a, T, E, F>
    where
        F: AsyncFnMut(String, StepContext) -> Result<(), E> + 'a,
        T: Serialize + DeserializeOwned + 'static,
        E: Into<Error>,
    {
        WaitForCallback {
            ctx: self.clone(),
            op: self.next_op(),
            name: name.into(),
            submitter,
            timeout: None,
            heartbeat: None,
            retry: None,
            serdes: Arc::new(Json),
            _marker: PhantomData,
        }
    }
}

impl<'a, T, E, F> WaitForCallback<'a, T, E, F>
where
    F: AsyncFnMut(String, StepContext) -> Result<(), E> + 'a,
    T: Serialize + DeserializeOwned + 'static,
    E: Into<Error> + 'a,
{
    /// See [`CreateCallback::timeout`].
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// See [`CreateCallback::heartbeat_timeout`].
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        self.heartbeat = Some(d);
        self
    }

    /// The retry strategy of the submitter step.
    pub fn retry(mut self, strategy: impl RetryStrategy + 'static) -> Self {
        self.retry = Some(Arc::new(strategy));
        self
    }

    /// The codec of the result (default [`Json`]).
    pub fn serdes(mut self, serdes: impl Serdes<T> + 'static) -> Self {
        self.serdes = Arc::new(serdes);
        self
    }

    async fn run(self) -> Result<T, Error> {
        let WaitForCallback { ctx, op, name, mut submitter, timeout, heartbeat, retry, serdes, .. } = self;
        let prefix = name.as_deref().map(|n| format!("{n} ")).unwrap_or_default();
        let engine = ctx.engine.clone();
        let context_id = op.id.clone();
        let submitter_failed = std::cell::Cell::new(false);
        let body = async |child: DurableContext| -> Result<T, Error> {
            let mut create =
                child.create_callback::<T>(format!("{prefix}create callback id")).serdes(ArcSerdes(serdes.clone()));
            if let Some(d) = timeout {
                create = create.timeout(d);
            }
            if let Some(d) = heartbeat {
                create = create.heartbeat_timeout(d);
            }
            let callback = create.await?;
            let id = callback.id().to_owned();
            let mut step =
                child.step(format!("{prefix}submitter"), async |s| submitter(id.clone(), s).await.map_err(Into::into));
            if let Some(r) = &retry {
                step = step.retry(ArcRetry(r.clone()));
            }
            if let Err(e) = step.await {
                submitter_failed.set(true);
                return Err(e);
            }
            callback.result().await
        };
        let child =
            super::child::ChildContext::from_parts(ctx, op, name, body, serdes.clone(), SubType::WAIT_FOR_CALLBACK);
        let result = child.await;
        result.map_err(|e| {
            // The context records only the error; which part failed is told by this run
            // (the flag) or, on replay, by the recorded submitter step (the context's second
            // operation), so the first run and a replay return the same kind.
            let submitter_id = crate::id::operation_id(Some(&context_id), &crate::id::positional_key(2), 0);
            let recorded_submitter_failed =
                engine.with_operation(&submitter_id, |o| o.is_some_and(|o| o.status == OperationStatus::Failed));
            let kind = if submitter_failed.get() || recorded_submitter_failed {
                ErrorKind::CallbackSubmitter
            } else if matches!(e.error_type(), Some("Callback.Timeout" | "Callback.Heartbeat")) {
                ErrorKind::CallbackTimedOut
            } else if e.kind() == ErrorKind::ChildContext {
                ErrorKind::CallbackFailed
            } else {
                e.kind()
            };
            e.with_kind(kind)
        })
    }
}

impl<'a, T, E, F> IntoFuture for WaitForCallback<'a, T, E, F>
where
    F: AsyncFnMut(String, StepContext) -> Result<(), E> + 'a,
    T: Serialize + DeserializeOwned + 'static,
    E: Into<Error> + 'a,
{
    type Output = Result<T, Error>;
    type IntoFuture = LocalBoxFuture<'a, Result<T, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A shared codec as a codec.
struct ArcSerdes<T>(Arc<dyn Serdes<T>>);

impl<T> Serdes<T> for ArcSerdes<T> {
    fn serialize(&self, value: &T) -> Result<String, Error> {
        self.0.serialize(value)
    }

    fn deserialize(&self, payload: &str) -> Result<T, Error> {
        self.0.deserialize(payload)
    }
}

/// A shared retry strategy as a strategy.
struct ArcRetry(Arc<dyn RetryStrategy>);

impl RetryStrategy for ArcRetry {
    fn decide(&self, error: &ErrorObject, attempts_made: u32) -> crate::retry::RetryDecision {
        self.0.decide(error, attempts_made)
    }
}
