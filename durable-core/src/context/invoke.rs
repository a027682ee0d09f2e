//! `invoke`: a chained invoke of another function. The target runs as an execution of
//! its own (durable targets with their own history); this execution suspends until it ends.

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Name, OpIdent};
use crate::engine::{Expect, park};
use crate::error::{Error, ErrorKind};
use crate::model::{
    ChainedInvokeOptions, ErrorObject, OperationAction, OperationStatus, OperationType, OperationUpdate, SubType,
};
use crate::serdes::{Json, Serdes};

/// A chained invoke, ready to be awaited. Created by [`DurableContext::invoke`].
#[must_use = "an invoke does nothing until awaited"]
pub struct Invoke<I, O> {
    ctx: DurableContext,
    op: OpIdent,
    name: Name,
    function_name: String,
    input: I,
    tenant_id: Option<String>,
    payload_serdes: Option<Arc<dyn Serdes<I>>>,
    result_serdes: Arc<dyn Serdes<O>>,
    _marker: PhantomData<fn() -> O>,
}

impl DurableContext {
    /// Invokes `function_name` (a function registered with the runner, or a Lambda
    /// function name or ARN, qualified or not) with `input`, and waits for its result. The
    /// target runs as an execution of its own; this execution suspends meanwhile. A
    /// failure, timeout or stop of the target is an error of kind [`ErrorKind::Invoke`]
    /// carrying the target's error.
    pub fn invoke<I, O>(&self, name: impl Into<Name>, function_name: impl Into<String>, input: I) -> Invoke<I, O>
    where
        I: Serialize,
        O: DeserializeOwned + Serialize + 'static,
    {
        Invoke {
            ctx: self.clone(),
            op: self.next_op(),
            name: name.into(),
            function_name: function_name.into(),
            input,
            tenant_id: None,
            payload_serdes: None,
            result_serdes: Arc::new(Json),
            _marker: PhantomData,
        }
    }
}

impl<I: Serialize + 'static, O: 'static> Invoke<I, O> {
    /// The tenant the target runs for.
    pub fn tenant_id(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }

    /// The codec of the input (default JSON).
    pub fn payload_serdes(mut self, serdes: impl Serdes<I> + 'static) -> Self {
        self.payload_serdes = Some(Arc::new(serdes));
        self
    }

    /// The codec of the result (default [`Json`]).
    pub fn result_serdes(mut self, serdes: impl Serdes<O> + 'static) -> Self {
        self.result_serdes = Arc::new(serdes);
        self
    }

    async fn run(self) -> Result<O, Error> {
        let engine = self.ctx.engine.clone();
        self.name.validate().map_err(Error::validation)?;
        if self.function_name.is_empty() {
            return Err(Error::validation("invoke needs a function name"));
        }
        let expect = Expect {
            op_type: OperationType::ChainedInvoke,
            sub_type: SubType::CHAINED_INVOKE,
            name: self.name.as_deref(),
            parent_id: self.ctx.scope.parent_id.as_deref(),
        };
        let Ok(recorded) = engine.visit(&self.op.id, &expect, &|| self.op.site.describe("invoke")) else {
            return park().await;
        };
        let op = match recorded {
            Some(op) if op.status.is_terminal() => op,
            Some(_) => engine.watch(self.op.id.clone()).await,
            None => {
                let payload = match &self.payload_serdes {
                    Some(s) => s.serialize(&self.input)?,
                    None => serde_json::to_string(&self.input)
                        .map_err(|e| Error::serdes(format!("cannot serialise the invoke's input: {e}")))?,
                };
                if payload.len() > engine.limits.max_operation_payload {
                    return Err(Error::from_object(
                        ErrorKind::PayloadTooLarge,
                        ErrorObject::new(
                            crate::PAYLOAD_TOO_LARGE_ERROR_TYPE,
                            format!(
                                "the input of invoke {} is {} bytes; at most {} are accepted",
                                self.function_name,
                                payload.len(),
                                engine.limits.max_operation_payload
                            ),
                        ),
                    ));
                }
                let mut u =
                    OperationUpdate::new(self.op.id.clone(), OperationType::ChainedInvoke, OperationAction::Start)
                        .placed(
                            self.ctx.scope.parent_id.clone(),
                            self.name.shared(),
                            SubType::new(SubType::CHAINED_INVOKE),
                        );
                u.payload = Some(payload.into());
                u.chained_invoke_options = Some(ChainedInvokeOptions {
                    function_name: self.function_name.clone(),
                    tenant_id: self.tenant_id.clone(),
                    xamzn_trace_id: None,
                });
                engine.enqueue_sync(u).await;
                engine.watch(self.op.id.clone()).await
            }
        };
        let details = op.chained_invoke_details.clone().unwrap_or_default();
        match op.status {
            OperationStatus::Succeeded => self.result_serdes.deserialize(details.result.as_deref().unwrap_or("null")),
            _ => Err(Error::from_object(
                ErrorKind::Invoke,
                details.error.unwrap_or_else(|| {
                    ErrorObject::new("InvokeError", format!("the invoke of {} ended {}", self.function_name, op.status))
                }),
            )),
        }
    }
}

impl<I: Serialize + 'static, O: 'static> IntoFuture for Invoke<I, O> {
    type Output = Result<O, Error>;
    type IntoFuture = LocalBoxFuture<'static, Result<O, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
