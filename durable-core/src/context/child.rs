//! `run_in_child_context`: a group of operations with its own id namespace, checkpointed
//! as one CONTEXT operation.

use std::borrow::Cow;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::step::fit_error;
use super::{DurableContext, Name, OpIdent};
use crate::engine::{Expect, park};
use crate::error::{Error, ErrorKind};
use crate::model::{ContextOptions, OperationAction, OperationStatus, OperationType, OperationUpdate, SubType};
use crate::serdes::{Json, Serdes};

/// A child context, ready to be awaited. Created by [`DurableContext::run_in_child_context`].
#[must_use = "a child context does nothing until it is awaited"]
pub struct ChildContext<'a, T, E, F> {
    parts: Parts<T>,
    f: F,
    _marker: super::Marker<'a, E>,
}

struct Parts<T> {
    ctx: DurableContext,
    op: OpIdent,
    name: Name,
    serdes: Arc<dyn Serdes<T>>,
    sub_type: Cow<'static, str>,
}

impl DurableContext {
    /// Runs `f` in a child context: its operations get ids under this context's
    /// operation, and its result is checkpointed as one CONTEXT operation. On replay a
    /// finished child returns its recorded result without running `f`; an unfinished one
    /// runs `f` again and its operations replay from their own checkpoints.
    ///
    /// A result larger than the store's inline limit is checkpointed with
    /// `ReplayChildren`: replay then re-runs `f` (whose operations all replay) to rebuild it.
    pub fn run_in_child_context<'a, T, E, F>(&self, name: impl Into<Name>, f: F) -> ChildContext<'a, T, E, F>
    where
        F: AsyncFnOnce(DurableContext) -> Result<T, E> + 'a,
        T: Serialize + DeserializeOwned + 'static,
        E: Into<Error>,
    {
        ChildContext {
            parts: Parts {
                ctx: self.clone(),
                op: self.next_op(),
                name: name.into(),
                serdes: Arc::new(Json),
                sub_type: Cow::Borrowed(SubType::RUN_IN_CHILD_CONTEXT),
            },
            f,
            _marker: PhantomData,
        }
    }
}

impl<T, E, F> ChildContext<'_, T, E, F> {
    /// A child context whose id is already assigned (operations built on child contexts).
    pub(crate) fn from_parts(
        ctx: DurableContext,
        op: OpIdent,
        name: Name,
        f: F,
        serdes: Arc<dyn Serdes<T>>,
        sub_type: &'static str,
    ) -> Self {
        ChildContext {
            parts: Parts { ctx, op, name, serdes, sub_type: Cow::Borrowed(sub_type) },
            f,
            _marker: PhantomData,
        }
    }
}

impl<'a, T, E, F> ChildContext<'a, T, E, F>
where
    F: AsyncFnOnce(DurableContext) -> Result<T, E> + 'a,
    T: 'static,
    E: Into<Error> + 'a,
{
    /// The codec of the result (default [`Json`]).
    pub fn serdes(mut self, serdes: impl Serdes<T> + 'static) -> Self {
        self.parts.serdes = Arc::new(serdes);
        self
    }

    /// A custom sub-type (1 to 32 characters of `[A-Za-z0-9_-]`).
    pub fn sub_type(mut self, sub_type: impl Into<Cow<'static, str>>) -> Self {
        self.parts.sub_type = sub_type.into();
        self
    }
}

impl<T: 'static> Parts<T> {
    fn update(&self, action: OperationAction) -> OperationUpdate {
        OperationUpdate::new(self.op.id.clone(), OperationType::Context, action).placed(
            self.ctx.scope.parent_id.clone(),
            self.name.shared(),
            SubType::new(self.sub_type.clone()),
        )
    }

    async fn run<E: Into<Error>>(self, f: impl AsyncFnOnce(DurableContext) -> Result<T, E>) -> Result<T, Error> {
        let engine = self.ctx.engine.clone();
        self.name.validate().map_err(Error::validation)?;
        SubType::validate(&self.sub_type).map_err(Error::validation)?;
        let expect = Expect {
            op_type: OperationType::Context,
            sub_type: &self.sub_type,
            name: self.name.as_deref(),
            parent_id: self.ctx.scope.parent_id.as_deref(),
        };
        let Ok(recorded) = engine.visit(&self.op.id, &expect, &|| self.op.site.describe("run_in_child_context")) else {
            return park().await;
        };
        let mut rebuilding = false;
        match recorded {
            None => engine.enqueue(self.update(OperationAction::Start)),
            Some(op) => {
                let details = op.context_details.unwrap_or_default();
                match op.status {
                    OperationStatus::Succeeded if details.replay_children == Some(true) => rebuilding = true,
                    OperationStatus::Succeeded => {
                        return self.serdes.deserialize(details.result.as_deref().unwrap_or("null"));
                    }
                    OperationStatus::Started | OperationStatus::Pending | OperationStatus::Ready => {}
                    _ => return Err(Error::from_object(ErrorKind::ChildContext, details.error.unwrap_or_default())),
                }
            }
        }
        let child = self.ctx.child_of(self.op.id.clone());
        let result = f(child).await.map_err(Into::into);
        if rebuilding {
            return result;
        }
        match result {
            Ok(value) => {
                let payload = match self.serdes.serialize(&value) {
                    Ok(p) => p,
                    Err(e) => return self.fail(e).await,
                };
                let mut done = self.update(OperationAction::Succeed);
                if payload.len() > engine.limits.max_context_result {
                    // Too large to record inline: record that replay must rebuild it from
                    // the children, which are all checkpointed.
                    done.context_options = Some(ContextOptions { replay_children: Some(true) });
                    done.payload = Some("".into());
                    engine.enqueue_sync(done).await;
                    return Ok(value);
                }
                let back = match self.serdes.deserialize(&payload) {
                    Ok(v) => v,
                    Err(e) => return self.fail(e).await,
                };
                done.payload = Some(payload.into());
                engine.enqueue_sync(done).await;
                Ok(back)
            }
            Err(e) => self.fail(e).await,
        }
    }

    async fn fail(&self, e: Error) -> Result<T, Error> {
        let engine = &self.ctx.engine;
        let object = fit_error(e.into_object(), engine.limits.max_operation_payload);
        let mut u = self.update(OperationAction::Fail);
        u.error = Some(object.clone());
        engine.enqueue_sync(u).await;
        Err(Error::from_object(ErrorKind::ChildContext, object))
    }
}

impl<'a, T, E, F> IntoFuture for ChildContext<'a, T, E, F>
where
    F: AsyncFnOnce(DurableContext) -> Result<T, E> + 'a,
    T: 'static,
    E: Into<Error> + 'a,
{
    type Output = Result<T, Error>;
    type IntoFuture = LocalBoxFuture<'a, Result<T, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.parts.run(self.f))
    }
}
