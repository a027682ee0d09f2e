//! Durable functions as the runners see them: JSON text in, JSON text out.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::DurableContext;
use crate::error::{Error, SERDES_ERROR_TYPE};
use crate::model::ErrorObject;
use crate::plugin::{Plugin, Plugins};

/// A durable function with its input and output codecs erased.
pub trait Handler: 'static {
    /// Runs the function on the root context with the execution's input payload (JSON
    /// text, absent when the execution was started without input).
    fn call(&self, ctx: DurableContext, input: Option<String>) -> LocalBoxFuture<'static, Result<String, Error>>;

    /// The plugins the engine calls while this handler runs (none by default).
    fn plugins(&self) -> Plugins {
        Plugins::default()
    }
}

/// A [`Handler`] made from an async function (see [`handler`]).
pub struct FnHandler<F, M> {
    f: F,
    plugins: Vec<Arc<dyn Plugin>>,
    _marker: PhantomData<fn() -> M>,
}

impl<F, M> FnHandler<F, M> {
    /// Adds a plugin; plugins are called in the order they were added.
    #[must_use]
    pub fn plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }
}

/// An async function a durable handler can be made of: `async fn(DurableContext, I) ->
/// Result<O, E>` or, for a function that takes no input, `async fn(DurableContext) ->
/// Result<O, E>`. `I` is any deserialisable type, `O` any serialisable one; `E` is any
/// error that converts into `Box<dyn std::error::Error + Send + Sync>`: [`Error`] itself,
/// every standard error type, boxed errors, `anyhow::Error`, `String`. (Its recorded
/// `ErrorType` is described at [`Error`].)
///
/// The marker `M` only tells the two shapes apart; it is inferred.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a durable function",
    label = "not an `async fn(DurableContext, I) -> Result<O, E>` or `async fn(DurableContext) -> Result<O, E>`",
    note = "the input `I` must be `Deserialize`, the output `O` `Serialize`, the error `E` convert into \
            `Box<dyn std::error::Error + Send + Sync>` (`durable::Error`, any standard error, `anyhow::Error`), \
            and the function and its future `'static`"
)]
pub trait DurableFn<M>: 'static {
    /// Calls the function on the root context with the execution's input payload.
    fn call(&self, ctx: DurableContext, input: Option<String>) -> LocalBoxFuture<'static, Result<String, Error>>;
}

/// Marks a [`DurableFn`] that takes an input of type `I`.
pub struct WithInput<I, O, E>(PhantomData<fn(I) -> (O, E)>);

/// Marks a [`DurableFn`] that takes no input.
pub struct NoInput<O, E>(PhantomData<fn() -> (O, E)>);

/// A function's outcome as the runners see it: the result's JSON, or a durable error.
fn finish<O: Serialize, E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static>(
    outcome: Result<O, E>,
) -> Result<String, Error> {
    let out = outcome.map_err(Error::from_any)?;
    serde_json::to_string(&out).map_err(|e| Error::serdes(format!("cannot serialise the execution result: {e}")))
}

impl<F, Fut, I, O, E> DurableFn<WithInput<I, O, E>> for F
where
    F: Fn(DurableContext, I) -> Fut + 'static,
    Fut: Future<Output = Result<O, E>> + 'static,
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    fn call(&self, ctx: DurableContext, input: Option<String>) -> LocalBoxFuture<'static, Result<String, Error>> {
        let fut = parse_input::<I>(input.as_deref()).map(|i| self(ctx, i));
        Box::pin(async move { finish(fut?.await) })
    }
}

impl<F, Fut, O, E> DurableFn<NoInput<O, E>> for F
where
    F: Fn(DurableContext) -> Fut + 'static,
    Fut: Future<Output = Result<O, E>> + 'static,
    O: Serialize + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    fn call(&self, ctx: DurableContext, _input: Option<String>) -> LocalBoxFuture<'static, Result<String, Error>> {
        let fut = self(ctx);
        Box::pin(async move { finish(fut.await) })
    }
}

/// Wraps an async function taking the context (and, if it has one, a deserialisable
/// input) as a [`Handler`].
///
/// ```
/// use durable_core::{DurableContext, Handler, Result, handler};
///
/// async fn checkout(ctx: DurableContext, order_id: u64) -> Result<String> {
///     ctx.step("charge", async |_| Ok(format!("paid {order_id}"))).await
/// }
///
/// async fn nightly(ctx: DurableContext) -> std::result::Result<u32, Box<dyn std::error::Error + Send + Sync>> {
///     let rows: u32 = ctx.step("count", async |_| Ok("42".parse()?)).await?;
///     Ok(rows)
/// }
///
/// let handlers: Vec<Box<dyn Handler>> = vec![Box::new(handler(checkout)), Box::new(handler(nightly))];
/// ```
pub fn handler<F, M>(f: F) -> FnHandler<F, M>
where
    F: DurableFn<M>,
{
    FnHandler { f, plugins: Vec::new(), _marker: PhantomData }
}

/// Parses an execution input. An absent or empty input reads as JSON `null`, and, if the
/// input type rejects `null`, as `{}`.
pub fn parse_input<I: DeserializeOwned>(input: Option<&str>) -> Result<I, Error> {
    match input.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            Error::from_object(
                crate::ErrorKind::Serdes,
                ErrorObject::new(
                    SERDES_ERROR_TYPE,
                    format!("the execution input is not a valid {}: {e}", std::any::type_name::<I>()),
                ),
            )
        }),
        None => serde_json::from_str("null").or_else(|_| serde_json::from_str("{}")).map_err(|e| {
            Error::from_object(
                crate::ErrorKind::Serdes,
                ErrorObject::new(
                    SERDES_ERROR_TYPE,
                    format!("the execution has no input, and {} needs one: {e}", std::any::type_name::<I>()),
                ),
            )
        }),
    }
}

impl<F: DurableFn<M>, M: 'static> Handler for FnHandler<F, M> {
    fn call(&self, ctx: DurableContext, input: Option<String>) -> LocalBoxFuture<'static, Result<String, Error>> {
        self.f.call(ctx, input)
    }

    fn plugins(&self) -> Plugins {
        Plugins::new(self.plugins.clone())
    }
}
