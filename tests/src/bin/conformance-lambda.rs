//! Every conformance handler in one Lambda function binary, for AWS's durable-execution
//! emulator (`tests/tests/emulator.rs` drives it through `dex-local-runner` and `cargo
//! lambda watch`; scripts/standins/lambda.sh starts them).
//!
//! The emulator invokes one function, `conformance-lambda`; the requirement an execution
//! runs is named by its execution name, `req_<id>_<nonce>`, which the emulator puts on the
//! `EXECUTION` operation of the invocation input. Everything else is the entry point's
//! managed mode as a user's binary gets it: [`durable::lambda::invoke_managed`] over a
//! [`durable::lambda::ManagedCheckpointer`] that talks to the emulator through aws-sdk-lambda.

use std::rc::Rc;

use durable::checkpoint::Checkpointer;
use durable::lambda::lambda_runtime::{self, Diagnostic, LambdaEvent, service_fn};
use durable::lambda::{DurableEvent, ManagedCheckpointer, init_tracing, invoke_managed};
use durable::model::OperationType;
use durable_tests::conformance::handlers::Registry;
use serde_json::Value;

/// The requirement id in an execution name `req_<id>_<nonce>`.
fn requirement_of(execution_name: &str) -> Option<&str> {
    execution_name.strip_prefix("req_")?.split('_').next()
}

async fn handle(registry: &Registry, checkpointer: Rc<dyn Checkpointer>, event: Value) -> Result<Value, Diagnostic> {
    let unknown =
        |message: String| Diagnostic { error_type: "Conformance.UnknownRequirement".into(), error_message: message };
    let DurableEvent::Managed(input) = DurableEvent::parse(event)? else {
        return Err(unknown("the conformance binary runs managed invocations only".to_owned()));
    };
    let name = input
        .initial_execution_state
        .operations
        .iter()
        .find(|o| o.op_type == OperationType::Execution)
        .and_then(|o| o.name.as_deref())
        .unwrap_or_default()
        .to_owned();
    let id = requirement_of(&name).ok_or_else(|| unknown(format!("execution name {name:?} names no requirement")))?;
    let handler = registry.get(id).ok_or_else(|| unknown(format!("no handler for requirement {id}")))?;
    let output = invoke_managed(handler, *input, checkpointer).await?;
    Ok(serde_json::to_value(output).expect("plain data"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let checkpointer: Rc<dyn Checkpointer> = Rc::new(ManagedCheckpointer::from_env().await);
    let registry = Rc::new(Registry::new());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (registry, checkpointer) = (registry.clone(), checkpointer.clone());
        async move { handle(&registry, checkpointer, event.payload).await }
    }))
    .await
}
