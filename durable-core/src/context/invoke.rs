//! `invoke`: a chained invoke of another function. The target runs as an execution of
//! its own (durable targets with their own history); this execution suspends until it ends.

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DurableContext, Name};
use crate::engine::{Call, Lifecycle, Next, drive};
use crate::error::{Error, ErrorKind};
use crate::model::{
    ChainedInvokeOptions, ErrorObject, Operation, OperationStatus, OperationType, OperationUpdate, SubType,
};
use crate::serdes::{Json, Serdes};

/// A chained invoke, ready to be awaited. Created by [`DurableContext::invoke`].
#[must_use = "an invoke does nothing until awaited"]
pub struct Invoke<I, O> {
    call: Call,
    function_name: String,
    input: I,
    tenant_id: Option<String>,
    payload_serdes: Option<Arc<dyn Serdes<I>>>,
    result_serdes: Arc<dyn Serdes<O>>,
    /// The encoded input, once validated.
    payload: String,
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
            call: self.call("invoke", OperationType::ChainedInvoke, SubType::CHAINED_INVOKE, name.into()),
            function_name: function_name.into(),
            input,
            tenant_id: None,
            payload_serdes: None,
            result_serdes: Arc::new(Json),
            payload: String::new(),
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
}

impl<I: Serialize + 'static, O: 'static> Lifecycle for Invoke<I, O> {
    type Output = O;

    fn call(&self) -> &Call {
        &self.call
    }

    fn validate(&mut self) -> Result<(), Error> {
        if self.function_name.is_empty() {
            return Err(Error::validation("invoke needs a function name"));
        }
        self.payload = match &self.payload_serdes {
            Some(s) => s.serialize(&self.input)?,
            None => serde_json::to_string(&self.input)
                .map_err(|e| Error::serdes(format!("cannot serialise the invoke's input: {e}")))?,
        };
        // Checked before anything is recorded: the invoke fails, the caller may handle it.
        let limit = self.call.engine().limits.max_invoke_input();
        if self.payload.len() > limit {
            return Err(Error::payload_too_large(
                format_args!("the input of invoke {}", self.function_name),
                self.payload.len(),
                limit,
            ));
        }
        Ok(())
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<O> {
        let Some(op) = recorded else { return Next::Start { ack: true, attempt: 0 } };
        if !op.status.is_terminal() {
            return Next::Watch;
        }
        let details = op.chained_invoke_details.unwrap_or_default();
        Next::Return(match op.status {
            OperationStatus::Succeeded => self.call.decode(&*self.result_serdes, details.result.as_deref()),
            status => Err(Error::from_object(
                ErrorKind::Invoke,
                details.error.unwrap_or_else(|| {
                    ErrorObject::new("InvokeError", format!("the invoke of {} ended {status}", self.function_name))
                }),
            )),
        })
    }

    fn start(&self, update: &mut OperationUpdate) {
        update.payload = Some(self.payload.as_str().into());
        update.chained_invoke_options = Some(ChainedInvokeOptions {
            function_name: self.function_name.clone(),
            tenant_id: self.tenant_id.clone(),
            xamzn_trace_id: None,
        });
    }

    fn started(&mut self, _: Option<&Operation>, _: u32) -> Next<O> {
        Next::Watch
    }
}

impl<I: Serialize + 'static, O: 'static> IntoFuture for Invoke<I, O> {
    type Output = Result<O, Error>;
    type IntoFuture = LocalBoxFuture<'static, Result<O, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(drive(self))
    }
}
