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

/// A [`Handler`] made from an async function `fn(DurableContext, I) -> Result<O, E>`.
pub struct FnHandler<F, I, O, E> {
    f: F,
    plugins: Vec<Arc<dyn Plugin>>,
    _marker: PhantomData<fn(I) -> (O, E)>,
}

impl<F, I, O, E> FnHandler<F, I, O, E> {
    /// Adds a plugin; plugins are called in the order they were added.
    #[must_use]
    pub fn plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }
}

/// Wraps an async function taking the context and a deserialisable input.
///
/// ```
/// use durable_core::{DurableContext, Error, Handler, handler};
///
/// async fn checkout(ctx: DurableContext, order_id: u64) -> Result<String, Error> {
///     ctx.step("charge", async |_| Ok::<_, Error>(format!("paid {order_id}"))).await
/// }
///
/// let h: Box<dyn Handler> = Box::new(handler(checkout));
/// ```
pub fn handler<F, Fut, I, O, E>(f: F) -> FnHandler<F, I, O, E>
where
    F: Fn(DurableContext, I) -> Fut + 'static,
    Fut: Future<Output = Result<O, E>> + 'static,
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: Into<Error> + 'static,
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

impl<F, Fut, I, O, E> Handler for FnHandler<F, I, O, E>
where
    F: Fn(DurableContext, I) -> Fut + 'static,
    Fut: Future<Output = Result<O, E>> + 'static,
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: Into<Error> + 'static,
{
    fn call(&self, ctx: DurableContext, input: Option<String>) -> LocalBoxFuture<'static, Result<String, Error>> {
        let parsed = parse_input::<I>(input.as_deref());
        let fut = parsed.map(|i| (self.f)(ctx, i));
        Box::pin(async move {
            let out = fut?.await.map_err(Into::into)?;
            serde_json::to_string(&out)
                .map_err(|e| Error::serdes(format!("cannot serialise the execution result: {e}")))
        })
    }

    fn plugins(&self) -> Plugins {
        Plugins::new(self.plugins.clone())
    }
}
