//! Suite `invoke` (5-1 … 5-16), and the target functions its chained invokes call.

use std::time::Duration;

use durable::Name;
use durable::prelude::*;
use durable::serdes::FnSerdes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Registry;

/// Returns its input.
const ECHO: &str = "echo-target";
/// Returns its input too: the second function of 5-14.
const SECOND_ECHO: &str = "second-echo-target";
/// Always fails.
const FAILING: &str = "failing-target";
/// Reports the size of the large payload it received (5-7).
const MEASURE: &str = "measure-target";

pub(super) fn register(r: &mut Registry) {
    r.add_target(ECHO, handler(echo));
    r.add_target(SECOND_ECHO, handler(echo));
    r.add_target(FAILING, handler(failing));
    r.add_target(MEASURE, handler(measure));
    r.add("5-1", handler(basic));
    r.add("5-2", handler(named));
    r.add("5-3", handler(complex_object));
    r.add("5-4", handler(null_payload));
    r.add("5-5", handler(target_fails));
    r.add("5-6", handler(target_fails_caught));
    r.add("5-7", handler(large_payload));
    r.add("5-8", handler(tenant));
    r.add("5-9", handler(replay_skips));
    r.add("5-10", handler(replay_rethrows));
    r.add("5-11", handler(step_then_invoke));
    r.add("5-12", handler(invoke_then_step));
    r.add("5-13", handler(inside_child));
    r.add("5-14", handler(two_sequential));
    r.add("5-15", handler(payload_serdes));
    r.add("5-16", handler(result_serdes));
}

/// Target: returns what it receives.
#[durable]
async fn echo(_ctx: DurableContext, input: Value) -> Result<Value> {
    Ok(input)
}

/// Target: fails.
#[durable]
async fn failing(_ctx: DurableContext, _input: Value) -> Result<Value> {
    Err(Error::new("TargetFunctionError", "the target function failed"))
}

#[derive(Serialize, Deserialize)]
struct Large {
    data: String,
}

/// Target: how many bytes of data it received.
#[durable]
async fn measure(_ctx: DurableContext, input: Large) -> Result<Value> {
    Ok(json!({ "receivedBytes": input.data.len() }))
}

/// 5-1: invokes the echo target with the input and returns its result.
#[durable]
async fn basic(ctx: DurableContext, input: Value) -> Result<Value> {
    ctx.invoke(Name::NONE, ECHO, input).await
}

#[derive(Deserialize)]
struct NamedInput {
    name: String,
    payload: Value,
}

/// 5-2: the invoke is named by the input.
#[durable]
async fn named(ctx: DurableContext, input: NamedInput) -> Result<Value> {
    ctx.invoke(input.name.as_str(), ECHO, input.payload).await
}

/// 5-3: the echo target returns a nested object.
#[durable]
async fn complex_object(ctx: DurableContext, input: Value) -> Result<Value> {
    ctx.invoke(Name::NONE, ECHO, input).await
}

/// 5-4: the echo target receives null and returns it.
#[durable]
async fn null_payload(ctx: DurableContext, _input: Value) -> Result<Value> {
    ctx.invoke(Name::NONE, ECHO, Value::Null).await
}

/// 5-5: the target fails; the error fails the execution.
#[durable]
async fn target_fails(ctx: DurableContext, input: Value) -> Result<Value> {
    ctx.invoke(Name::NONE, FAILING, input).await
}

/// 5-6: the target fails; the error is caught and a fallback returned.
#[durable]
async fn target_fails_caught(ctx: DurableContext, input: Value) -> Result<Value> {
    match ctx.invoke::<_, Value>(Name::NONE, FAILING, input).await {
        Ok(value) => Ok(value),
        Err(e) => Ok(json!({ "fallback": true, "error": e.error_type() })),
    }
}

/// 5-7: a payload of 200,000 bytes, near the 256 KiB an operation's payload may have.
#[durable]
async fn large_payload(ctx: DurableContext, _input: Value) -> Result<Value> {
    ctx.invoke(Name::NONE, MEASURE, Large { data: "x".repeat(200_000) }).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TenantInput {
    tenant_id: String,
    payload: Value,
}

/// 5-8: the invoke carries the input's tenant id.
#[durable]
async fn tenant(ctx: DurableContext, input: TenantInput) -> Result<Value> {
    ctx.invoke(Name::NONE, ECHO, input.payload).tenant_id(input.tenant_id).await
}

/// 5-9: an invoke, then a 1 s wait; the replay takes the invoke's recorded result.
#[durable]
async fn replay_skips(ctx: DurableContext, input: Value) -> Result<Value> {
    let value = ctx.invoke(Name::NONE, ECHO, input).await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(value)
}

/// 5-10: a failing invoke, caught, then a 1 s wait; the replay rethrows the recorded error.
#[durable]
async fn replay_rethrows(ctx: DurableContext, input: Value) -> Result<Value> {
    let caught = ctx.invoke::<_, Value>(Name::NONE, FAILING, input).await.err();
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(json!({ "caught": caught.and_then(|e| e.error_type().map(str::to_owned)) }))
}

/// 5-11: a step, then an invoke of its result.
#[durable]
async fn step_then_invoke(ctx: DurableContext, _input: Value) -> Result<Value> {
    let prepared = ctx.step("prepare", async |_| Ok(json!({ "prepared": true }))).await?;
    ctx.invoke(Name::NONE, ECHO, prepared).await
}

/// 5-12: an invoke, then a step that uses its result.
#[durable]
async fn invoke_then_step(ctx: DurableContext, _input: Value) -> Result<Value> {
    let echoed: Value = ctx.invoke(Name::NONE, ECHO, json!({ "value": 21 })).await?;
    ctx.step("use_result", async |_| Ok(json!({ "processed": echoed }))).await
}

/// 5-13: an invoke inside a child context, whose result is the child's.
#[durable]
async fn inside_child(ctx: DurableContext, _input: Value) -> Result<Value> {
    ctx.run_in_child_context("invoke_child", async |child| {
        child.invoke::<_, Value>(Name::NONE, ECHO, json!({ "from": "child" })).await
    })
    .await
}

/// 5-14: two invokes of two target functions, one after the other.
#[durable]
async fn two_sequential(ctx: DurableContext, _input: Value) -> Result<Value> {
    let first: Value = ctx.invoke(Name::NONE, ECHO, json!({ "call": 1 })).await?;
    let second: Value = ctx.invoke(Name::NONE, SECOND_ECHO, json!({ "call": 2 })).await?;
    Ok(json!([first, second]))
}

/// 5-15: the payload's codec upper-cases its JSON text.
#[durable]
async fn payload_serdes(ctx: DurableContext, input: Value) -> Result<Value> {
    let uppercase = FnSerdes::new(
        |v: &Value| Ok(v.to_string().to_uppercase()),
        |p: &str| serde_json::from_str::<Value>(p).map_err(|e| Error::new("SerDesError", e.to_string())),
    );
    ctx.invoke(Name::NONE, ECHO, input).payload_serdes(uppercase).await
}

/// 5-16: the result's codec upper-cases the raw result text (so `"hello"` becomes the
/// string `"HELLO"`, quotes included).
#[durable]
async fn result_serdes(ctx: DurableContext, input: Value) -> Result<String> {
    let uppercase = FnSerdes::new(|s: &String| Ok(s.clone()), |p: &str| Ok(p.to_uppercase()));
    ctx.invoke(Name::NONE, ECHO, input).result_serdes(uppercase).await
}
