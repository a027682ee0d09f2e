//! Suite `callback` (4-1 … 4-19).

use std::time::Duration;

use durable::Name;
use durable::model::Timestamp;
use durable::prelude::*;
use durable::serdes::FnSerdes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Registry;

pub(super) fn register(r: &mut Registry) {
    r.add("4-1", handler(basic));
    r.add("4-2", handler(named));
    r.add("4-3", handler(general_timeout));
    r.add("4-4", handler(heartbeat_timeout));
    r.add("4-5", handler(heartbeat_then_success));
    r.add("4-6", handler(external_failure));
    r.add("4-7", handler(step_between_failure));
    r.add("4-8", handler(step_between_timeout));
    r.add("4-9", handler(wait_between_success));
    r.add("4-10", handler(wait_between_failure));
    r.add("4-11", handler(wait_between_timeout));
    r.add("4-12", handler(success_then_wait));
    r.add("4-13", handler(failure_caught_then_wait));
    r.add("4-14", handler(timeout_caught_then_wait));
    r.add("4-15", handler(serdes_typed_object));
    r.add("4-16", handler(serdes_number));
    r.add("4-17", handler(two_sequential));
    r.add("4-18", handler(two_in_order));
    r.add("4-19", handler(two_in_reverse));
}

/// 4-1: a callback named by the input; its result is the execution's.
#[durable]
async fn basic(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).await?;
    callback.result().await
}

/// 4-2: a callback named "approval".
#[durable]
async fn named(ctx: DurableContext, _input: Value) -> Result<String> {
    let callback = ctx.create_callback::<String>("approval").await?;
    callback.result().await
}

/// 4-3: a callback with a 5 s timeout that nobody completes.
#[durable]
async fn general_timeout(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).timeout(Duration::from_secs(5)).await?;
    callback.result().await
}

/// 4-4: a callback with a 5 s heartbeat timeout that hears nothing.
#[durable]
async fn heartbeat_timeout(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).heartbeat_timeout(Duration::from_secs(5)).await?;
    callback.result().await
}

/// 4-5: a callback with a 10 s heartbeat timeout, kept alive by a heartbeat, then completed.
#[durable]
async fn heartbeat_then_success(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).heartbeat_timeout(Duration::from_secs(10)).await?;
    callback.result().await
}

/// 4-6: the outside reports a failure, which the handler does not catch.
#[durable]
async fn external_failure(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).await?;
    callback.result().await
}

/// 4-7: create the callback, run a step, then wait for the (failed) callback.
#[durable]
async fn step_between_failure(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).await?;
    ctx.step("between", async |_| Ok("step done".to_owned())).await?;
    callback.result().await
}

/// 4-8: create the callback (5 s timeout), run a step, then wait until it times out.
#[durable]
async fn step_between_timeout(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).timeout(Duration::from_secs(5)).await?;
    ctx.step("between", async |_| Ok("step done".to_owned())).await?;
    callback.result().await
}

/// 4-9: create the callback, wait 5 s (it succeeds meanwhile), then take its result.
#[durable]
async fn wait_between_success(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).await?;
    ctx.wait(Name::NONE, Duration::from_secs(5)).await?;
    callback.result().await
}

/// 4-10: create the callback, wait 5 s (it fails meanwhile), then take its result.
#[durable]
async fn wait_between_failure(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).await?;
    ctx.wait(Name::NONE, Duration::from_secs(5)).await?;
    callback.result().await
}

/// 4-11: a callback with a 3 s timeout, a 6 s wait (it times out meanwhile), then its result.
#[durable]
async fn wait_between_timeout(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).timeout(Duration::from_secs(3)).await?;
    ctx.wait(Name::NONE, Duration::from_secs(6)).await?;
    callback.result().await
}

/// 4-12: the callback's result, then a 2 s wait, then that result.
#[durable]
async fn success_then_wait(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).await?;
    let value = callback.result().await?;
    ctx.wait(Name::NONE, Duration::from_secs(2)).await?;
    Ok(value)
}

/// 4-13: the callback's failure is caught; a 2 s wait follows; the message is returned.
#[durable]
async fn failure_caught_then_wait(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).await?;
    let message = match callback.result().await {
        Ok(value) => value,
        Err(e) => format!("callback failed: {}", e.message().unwrap_or_default()),
    };
    ctx.wait(Name::NONE, Duration::from_secs(2)).await?;
    Ok(message)
}

/// 4-14: a callback with a 3 s timeout; the timeout is caught; a 2 s wait follows.
#[durable]
async fn timeout_caught_then_wait(ctx: DurableContext, name: String) -> Result<String> {
    let callback = ctx.create_callback::<String>(name.as_str()).timeout(Duration::from_secs(3)).await?;
    let message = match callback.result().await {
        Ok(value) => value,
        Err(e) => format!("callback timed out: {}", e.error_type().unwrap_or_default()),
    };
    ctx.wait(Name::NONE, Duration::from_secs(2)).await?;
    Ok(message)
}

/// What the outside sends in 4-15, with its timestamp turned into epoch seconds.
#[derive(Debug, Serialize, Deserialize)]
struct Received {
    id: String,
    message: String,
    timestamp: i64,
}

fn serdes_error(e: impl std::fmt::Display) -> Error {
    Error::new("SerDesError", e.to_string())
}

/// 4-15: a codec reads the raw JSON into a typed object, its ISO-8601 timestamp as epoch
/// seconds.
#[durable]
async fn serdes_typed_object(ctx: DurableContext, name: String) -> Result<Value> {
    let typed = FnSerdes::new(
        |r: &Received| serde_json::to_string(r).map_err(serdes_error),
        |raw: &str| -> Result<Received> {
            let value: Value = serde_json::from_str(raw).map_err(serdes_error)?;
            let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
            let at = text("timestamp")
                .and_then(|t| Timestamp::parse_rfc3339(&t))
                .ok_or_else(|| serdes_error("the payload's timestamp is not an ISO-8601 date"))?;
            Ok(Received {
                id: text("id").unwrap_or_default(),
                message: text("message").unwrap_or_default(),
                timestamp: at.as_millis().div_euclid(1000),
            })
        },
    );
    let callback = ctx.create_callback::<Received>(name.as_str()).serdes(typed).await?;
    let received = callback.result().await?;
    Ok(json!({ "received": received }))
}

/// 4-16: a codec reads the raw payload as a number; the handler returns it and its double.
#[durable]
async fn serdes_number(ctx: DurableContext, name: String) -> Result<Value> {
    let number = FnSerdes::new(
        |n: &i64| Ok(n.to_string()),
        |raw: &str| raw.trim().trim_matches('"').parse::<i64>().map_err(serdes_error),
    );
    let callback = ctx.create_callback::<i64>(name.as_str()).serdes(number).await?;
    let count = callback.result().await?;
    Ok(json!({ "count": count, "doubled": count * 2 }))
}

/// 4-17: callback A and its result, then callback B and its result.
#[durable]
async fn two_sequential(ctx: DurableContext, names: (String, String)) -> Result<Vec<String>> {
    let a = ctx.create_callback::<String>(names.0.as_str()).await?;
    let a = a.result().await?;
    let b = ctx.create_callback::<String>(names.1.as_str()).await?;
    let b = b.result().await?;
    Ok(vec![a, b])
}

/// 4-18: callbacks A and B, then A's result, then B's.
#[durable]
async fn two_in_order(ctx: DurableContext, names: (String, String)) -> Result<Vec<String>> {
    let a = ctx.create_callback::<String>(names.0.as_str()).await?;
    let b = ctx.create_callback::<String>(names.1.as_str()).await?;
    let a = a.result().await?;
    let b = b.result().await?;
    Ok(vec![a, b])
}

/// 4-19: callbacks A and B, then B's result, then A's.
#[durable]
async fn two_in_reverse(ctx: DurableContext, names: (String, String)) -> Result<Vec<String>> {
    let a = ctx.create_callback::<String>(names.0.as_str()).await?;
    let b = ctx.create_callback::<String>(names.1.as_str()).await?;
    let b = b.result().await?;
    let a = a.result().await?;
    Ok(vec![a, b])
}
