//! Suite `wait_for_callback` (7-1 … 7-15).

use std::time::Duration;

use durable::Name;
use durable::prelude::*;
use serde_json::Value;

use super::Registry;

pub(super) fn register(r: &mut Registry) {
    r.add("7-1", handler(basic));
    r.add("7-2", handler(named));
    r.add("7-3", handler(anonymous));
    r.add("7-4", handler(external_failure));
    r.add("7-5", handler(timeout));
    r.add("7-6", handler(external_failure_caught));
    r.add("7-7", handler(submitter_exhausted));
    r.add("7-8", handler(inside_child));
    r.add("7-9", handler(two_sequential));
    r.add("7-10", handler(after_wait_and_step));
    r.add("7-11", handler(json_result));
    r.add("7-12", handler(heartbeat_timeout));
    r.add("7-13", handler(heartbeat_then_success));
    r.add("7-14", handler(timeout_caught));
    r.add("7-15", handler(empty_success));
}

/// The submitter of most requirements: it has the id; handing it over needs nothing durable.
async fn submit(_callback_id: String, _step: StepContext) -> Result<()> {
    Ok(())
}

/// 7-1: named by the input; the callback's payload is the result.
#[durable]
async fn basic(ctx: DurableContext, name: String) -> Result<String> {
    ctx.wait_for_callback::<String>(name.as_str(), submit).await
}

/// 7-2: named "approval".
#[durable]
async fn named(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.wait_for_callback::<String>("approval", submit).await
}

/// 7-3: no name, only an inline submitter.
#[durable]
async fn anonymous(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.wait_for_callback::<String>(Name::NONE, async |_id: String, _s| Ok(())).await
}

/// 7-4: the outside reports a failure, which the handler does not catch.
#[durable]
async fn external_failure(ctx: DurableContext, name: String) -> Result<String> {
    ctx.wait_for_callback::<String>(name.as_str(), submit).await
}

/// 7-5: a 3 s timeout, and nobody completes the callback.
#[durable]
async fn timeout(ctx: DurableContext, name: String) -> Result<String> {
    ctx.wait_for_callback::<String>(name.as_str(), submit).timeout(Duration::from_secs(3)).await
}

/// 7-6: the outside reports a failure; the handler catches it.
#[durable]
async fn external_failure_caught(ctx: DurableContext, name: String) -> Result<String> {
    match ctx.wait_for_callback::<String>(name.as_str(), submit).await {
        Ok(value) => Ok(value),
        Err(_) => Ok("recovered".to_owned()),
    }
}

/// 7-7: the submitter always fails; 2 attempts 1 s apart, then the operation fails.
#[durable]
async fn submitter_exhausted(ctx: DurableContext, name: String) -> Result<String> {
    ctx.wait_for_callback::<String>(name.as_str(), async |_id: String, _s| {
        Err(Error::new("SubmitterError", "the external system refused the callback id"))
    })
    .retry(Backoff::fixed(Duration::from_secs(1)).max_attempts(2))
    .await
}

/// 7-8: inside a child context named "wrapper".
#[durable]
async fn inside_child(ctx: DurableContext, name: String) -> Result<String> {
    ctx.run_in_child_context("wrapper", async |child| child.wait_for_callback::<String>(name.as_str(), submit).await)
        .await
}

/// 7-9: "first", then "second"; the second's result is returned.
#[durable]
async fn two_sequential(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.wait_for_callback::<String>("first", submit).await?;
    ctx.wait_for_callback::<String>("second", submit).await
}

/// 7-10: a 1 s wait, a step returning fixed data, then the operation.
#[durable]
async fn after_wait_and_step(ctx: DurableContext, name: String) -> Result<String> {
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    ctx.step("fixed_data", async |_| Ok("fixed".to_owned())).await?;
    ctx.wait_for_callback::<String>(name.as_str(), submit).await
}

/// 7-11: the payload is read as a JSON object; its "status" is returned.
#[durable]
async fn json_result(ctx: DurableContext, name: String) -> Result<Value> {
    let object = ctx.wait_for_callback::<Value>(name.as_str(), submit).await?;
    Ok(object.get("status").cloned().unwrap_or(Value::Null))
}

/// 7-12: a 5 s heartbeat timeout, and no heartbeat comes.
#[durable]
async fn heartbeat_timeout(ctx: DurableContext, name: String) -> Result<String> {
    ctx.wait_for_callback::<String>(name.as_str(), submit).heartbeat_timeout(Duration::from_secs(5)).await
}

/// 7-13: a 10 s heartbeat timeout, a heartbeat, then the success.
#[durable]
async fn heartbeat_then_success(ctx: DurableContext, name: String) -> Result<String> {
    ctx.wait_for_callback::<String>(name.as_str(), submit).heartbeat_timeout(Duration::from_secs(10)).await
}

/// 7-14: a 3 s timeout; the handler catches the timeout.
#[durable]
async fn timeout_caught(ctx: DurableContext, name: String) -> Result<String> {
    match ctx.wait_for_callback::<String>(name.as_str(), submit).timeout(Duration::from_secs(3)).await {
        Ok(value) => Ok(value),
        Err(_) => Ok("timed-out-handled".to_owned()),
    }
}

/// 7-15: the success carries no payload: the result is null.
#[durable]
async fn empty_success(ctx: DurableContext, name: String) -> Result<Value> {
    ctx.wait_for_callback::<Value>(name.as_str(), submit).await
}
