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

use super::child::ChildContext;
use super::{DurableContext, Name, StepContext};
use crate::engine::{Call, Engine, Lifecycle, Next, drive};
use crate::error::{Error, ErrorKind};
use crate::model::{
    CallbackOptions, ErrorObject, MAX_CALLBACK_SECONDS, Operation, OperationStatus, OperationType, OperationUpdate,
    SubType,
};
use crate::retry::RetryStrategy;
use crate::serdes::{Json, Serdes};

/// A callback being created; await it to get the [`Callback`]. Created by
/// [`DurableContext::create_callback`].
#[must_use = "a callback is not created until awaited"]
pub struct CreateCallback<T> {
    call: Call,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    serdes: Arc<dyn Serdes<T>>,
    options: CallbackOptions,
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
            call: self.call("create_callback", OperationType::Callback, SubType::CALLBACK, name.into()),
            timeout: None,
            heartbeat: None,
            serdes: Arc::new(Json),
            options: CallbackOptions::default(),
        }
    }
}

/// Whole seconds of a callback timeout (0, as none, means no timeout). The protocol counts
/// whole seconds: a fraction of a second is refused, not rounded.
fn seconds(d: Option<Duration>, what: &str) -> Result<u32, Error> {
    let Some(d) = d else { return Ok(0) };
    if d.subsec_nanos() != 0 || d.as_secs() > u64::from(MAX_CALLBACK_SECONDS) {
        return Err(Error::validation(format!(
            "a callback {what} of {d:?}: it lasts a whole number of seconds, at most {MAX_CALLBACK_SECONDS} (0 for \
             none)"
        )));
    }
    Ok(d.as_secs() as u32)
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

    /// The codec of the result (default [`Json`]). The self-hosted service refuses results
    /// that are not JSON text, since it cannot see which codec a callback uses; for a codec
    /// whose payloads are not JSON, turn that check off
    /// ([`ServiceConfig::require_json_callback_results`](crate::service::ServiceConfig::require_json_callback_results)).
    pub fn serdes(mut self, serdes: impl Serdes<T> + 'static) -> Self {
        self.serdes = Arc::new(serdes);
        self
    }

    /// A custom sub-type (1 to 32 characters of `[A-Za-z0-9_-]`).
    pub fn sub_type(mut self, sub_type: impl Into<Cow<'static, str>>) -> Self {
        self.call.sub_type = sub_type.into();
        self
    }

    /// The callback of a recorded (or just started) operation.
    fn callback(&self, op: Operation) -> Result<Callback<T>, Error> {
        let id = op.callback_details.as_ref().and_then(|d| d.callback_id.clone()).ok_or_else(|| {
            Error::from_object(
                ErrorKind::CallbackFailed,
                ErrorObject::new("CallbackError", format!("callback {} has no id recorded", self.call.id)),
            )
        })?;
        Ok(Callback {
            id,
            op_id: self.call.id.clone(),
            engine: self.call.engine().clone(),
            recorded: RefCell::new(Some(op)),
            serdes: self.serdes.clone(),
        })
    }
}

impl<T: 'static> Lifecycle for CreateCallback<T> {
    type Output = Callback<T>;

    fn call(&self) -> &Call {
        &self.call
    }

    fn validate(&mut self) -> Result<(), Error> {
        self.options = CallbackOptions {
            timeout_seconds: Some(seconds(self.timeout, "timeout")?),
            heartbeat_timeout_seconds: Some(seconds(self.heartbeat, "heartbeat timeout")?),
        };
        Ok(())
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<Callback<T>> {
        match recorded {
            None => Next::Start { ack: true, attempt: 0 },
            Some(op) => Next::Return(self.callback(op)),
        }
    }

    fn start(&self, update: &mut OperationUpdate) {
        update.callback_options = Some(self.options.clone());
    }

    fn started(&mut self, current: Option<&Operation>, _: u32) -> Next<Callback<T>> {
        Next::Return(match current {
            Some(op) => self.callback(op.clone()),
            None => Err(Error::from_object(
                ErrorKind::CallbackFailed,
                ErrorObject::new("CallbackError", "the service did not return the callback's id"),
            )),
        })
    }
}

impl<T: 'static> IntoFuture for CreateCallback<T> {
    type Output = Result<Callback<T>, Error>;
    type IntoFuture = LocalBoxFuture<'static, Result<Callback<T>, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(drive(self))
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
pub struct WaitForCallback<'a, T, F> {
    call: Call,
    submitter: F,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    retry: Option<Arc<dyn RetryStrategy>>,
    serdes: Arc<dyn Serdes<T>>,
    _marker: super::Marker<'a>,
}

impl DurableContext {
    /// Creates a callback, runs `submitter` with its id as a step (to hand the id to the
    /// outside world; it is retried with the step's strategy), then waits for the
    /// callback's result. All three run in a child context (`WaitForCallback`) named
    /// `name`, as AWS's SDKs do: the callback is named `"<name> create callback id"` and the
    /// step `"<name> submitter"`.
    ///
    /// ```
    /// use durable_core::{DurableContext, Result};
    ///
    /// async fn approve(ctx: DurableContext) -> Result<bool> {
    ///     ctx.wait_for_callback::<bool>("manager", async |id, _| {
    ///         println!("ask the manager to answer callback {id}");
    ///         Ok(())
    ///     })
    ///     .await
    /// }
    /// ```
    pub fn wait_for_callback<'a, T>(
        &self,
        name: impl Into<Name>,
        submitter: impl AsyncFnMut(String, StepContext) -> Result<(), Error> + 'a,
    ) -> WaitForCallback<'a, T, impl AsyncFnMut(String, StepContext) -> Result<(), Error> + 'a>
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        WaitForCallback {
            call: self.call("wait_for_callback", OperationType::Context, SubType::WAIT_FOR_CALLBACK, name.into()),
            submitter,
            timeout: None,
            heartbeat: None,
            retry: None,
            serdes: Arc::new(Json),
            _marker: PhantomData,
        }
    }
}

impl<'a, T, F> WaitForCallback<'a, T, F>
where
    F: AsyncFnMut(String, StepContext) -> Result<(), Error> + 'a,
    T: Serialize + DeserializeOwned + 'static,
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

    /// The codec of the result (default [`Json`]). The self-hosted service refuses results
    /// that are not JSON text, since it cannot see which codec a callback uses; for a codec
    /// whose payloads are not JSON, turn that check off
    /// ([`ServiceConfig::require_json_callback_results`](crate::service::ServiceConfig::require_json_callback_results)).
    pub fn serdes(mut self, serdes: impl Serdes<T> + 'static) -> Self {
        self.serdes = Arc::new(serdes);
        self
    }

    async fn run(self) -> Result<T, Error> {
        let WaitForCallback { call, mut submitter, timeout, heartbeat, retry, serdes, .. } = self;
        let prefix = call.name.as_deref().map(|n| format!("{n} ")).unwrap_or_default();
        let engine = call.engine().clone();
        let context_id = call.id.clone();
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
            let mut step = child.step(format!("{prefix}submitter"), async |s| submitter(id.clone(), s).await);
            if let Some(r) = &retry {
                step = step.retry_shared(r.clone());
            }
            if let Err(e) = step.await {
                submitter_failed.set(true);
                return Err(e);
            }
            callback.result().await
        };
        let result = ChildContext::new(call, body, serdes.clone()).await;
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

impl<'a, T, F> IntoFuture for WaitForCallback<'a, T, F>
where
    F: AsyncFnMut(String, StepContext) -> Result<(), Error> + 'a,
    T: Serialize + DeserializeOwned + 'static,
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
