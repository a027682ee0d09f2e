//! `run_in_child_context`: a group of operations with its own id namespace, checkpointed
//! as one CONTEXT operation.

use std::borrow::Cow;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Name};
use crate::engine::{Call, Deep, Lifecycle, Next, Outcome, PANIC_ERROR_TYPE, drive, panic_message, park};
use crate::error::{Error, ErrorKind};
use crate::model::{ErrorObject, Operation, OperationStatus, OperationType, SubType};
use crate::serdes::{Json, Serdes};

/// A child context, ready to be awaited. Created by [`DurableContext::run_in_child_context`].
#[must_use = "a child context does nothing until it is awaited"]
pub struct ChildContext<'a, T, F> {
    call: Call,
    f: Option<F>,
    serdes: Arc<dyn Serdes<T>>,
    /// The result was too large to record: the body re-runs (its operations all replay)
    /// to rebuild it, and nothing is recorded.
    rebuilding: bool,
    _marker: super::Marker<'a>,
}

impl DurableContext {
    /// Runs `f` in a child context: its operations get ids under this context's
    /// operation, and its result is checkpointed as one CONTEXT operation. On replay a
    /// finished child returns its recorded result without running `f`; an unfinished one
    /// runs `f` again and its operations replay from their own checkpoints.
    ///
    /// A result larger than the store's inline limit is checkpointed with
    /// `ReplayChildren`: replay then re-runs `f` (whose operations all replay) to rebuild it.
    /// A panic in `f` fails the child context (as an error would), with error type `Panic`.
    pub fn run_in_child_context<'a, T, F>(&self, name: impl Into<Name>, f: F) -> ChildContext<'a, T, F>
    where
        F: AsyncFnOnce(DurableContext) -> Result<T, Error> + 'a,
        T: Serialize + DeserializeOwned + 'static,
    {
        let call =
            self.call("run_in_child_context", OperationType::Context, SubType::RUN_IN_CHILD_CONTEXT, name.into());
        ChildContext::new(call, f, Arc::new(Json))
    }
}

impl<T, F> ChildContext<'_, T, F> {
    /// A child context for an operation built on one (a batch item, `wait_for_callback`).
    pub(crate) fn new(call: Call, f: F, serdes: Arc<dyn Serdes<T>>) -> Self {
        ChildContext { call, f: Some(f), serdes, rebuilding: false, _marker: PhantomData }
    }
}

impl<'a, T, F> ChildContext<'a, T, F>
where
    F: AsyncFnOnce(DurableContext) -> Result<T, Error> + 'a,
    T: 'static,
{
    /// The codec of the result (default [`Json`]).
    pub fn serdes(mut self, serdes: impl Serdes<T> + 'static) -> Self {
        self.serdes = Arc::new(serdes);
        self
    }

    /// A custom sub-type (1 to 32 characters of `[A-Za-z0-9_-]`).
    pub fn sub_type(mut self, sub_type: impl Into<Cow<'static, str>>) -> Self {
        self.call.sub_type = sub_type.into();
        self
    }
}

impl<'a, T, F> Lifecycle for ChildContext<'a, T, F>
where
    F: AsyncFnOnce(DurableContext) -> Result<T, Error> + 'a,
    T: 'static,
{
    type Output = T;

    fn call(&self) -> &Call {
        &self.call
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<T> {
        let Some(op) = recorded else { return Next::Start { ack: false, attempt: 0 } };
        let details = op.context_details.unwrap_or_default();
        match op.status {
            OperationStatus::Succeeded if details.replay_children == Some(true) => {
                self.rebuilding = true;
                Next::Work(0)
            }
            OperationStatus::Succeeded => Next::Return(self.call.decode(&*self.serdes, details.result.as_deref())),
            OperationStatus::Started | OperationStatus::Pending | OperationStatus::Ready => Next::Work(0),
            _ => Next::Return(Err(Error::from_object(ErrorKind::ChildContext, details.error.unwrap_or_default()))),
        }
    }

    async fn work(&mut self, _: u32) -> Outcome<T> {
        let Some(f) = self.f.take() else {
            return Outcome::Return(Err(Error::msg("a child context's code runs once")));
        };
        let result = match run_child(&self.call, f).await {
            Ok(result) => result,
            // A rebuild records nothing: the context succeeded long ago.
            Err(panic) if self.rebuilding => {
                return Outcome::Return(Err(Error::from_object(ErrorKind::ChildContext, panic)));
            }
            Err(panic) => return Outcome::Fail { error: panic, kind: ErrorKind::ChildContext },
        };
        if self.rebuilding {
            return Outcome::Return(result);
        }
        let value = match result {
            Ok(value) => value,
            Err(e) => return Outcome::Fail { error: e.into_object(), kind: ErrorKind::ChildContext },
        };
        match self.call.encode_context(&*self.serdes, value) {
            Ok(Ok((payload, value))) => Outcome::succeed_context(value, payload, false),
            // Too large to record inline: record that a replay must rebuild it from the
            // children, which are all checkpointed.
            Ok(Err(value)) => Outcome::succeed_context(value, String::new(), true),
            Err(e) => Outcome::Fail { error: e.into_object(), kind: ErrorKind::ChildContext },
        }
    }
}

/// Runs a child context's code in its own context: a panic is the context's error (the
/// `Err` side), and when the code returns a value, every operation recorded in the context
/// must have been met (a context that fails explains itself and drops nothing silently).
pub(crate) async fn run_child<T>(
    call: &Call,
    f: impl AsyncFnOnce(DurableContext) -> Result<T, Error>,
) -> Result<Result<T, Error>, ErrorObject> {
    let child = call.ctx.child_of(call.id.clone());
    // Child contexts nest without bound (a recursion through them): the code inside gets
    // stack room of its own.
    let body: LocalBoxFuture<'_, Result<T, Error>> = Box::pin(f(child));
    let result = match AssertUnwindSafe(Deep::new(body)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            return Err(ErrorObject::new(
                PANIC_ERROR_TYPE,
                format!("{} {} panicked: {}", call.method, call.label(), panic_message(panic.as_ref())),
            ));
        }
    };
    if result.is_ok() && call.engine().close_context(&call.id, &|| call.describe()).is_err() {
        return park().await;
    }
    Ok(result)
}

impl<'a, T, F> IntoFuture for ChildContext<'a, T, F>
where
    F: AsyncFnOnce(DurableContext) -> Result<T, Error> + 'a,
    T: 'static,
{
    type Output = Result<T, Error>;
    type IntoFuture = LocalBoxFuture<'a, Result<T, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(drive(self))
    }
}
