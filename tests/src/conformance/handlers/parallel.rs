//! Suite `parallel` (8-1 … 8-22).

use std::time::Duration;

use durable::prelude::*;
use durable::serdes::FnSerdes;
use durable::{BatchResult, CompletionConfig, Name, Nesting};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Registry;

pub(super) fn register(r: &mut Registry) {
    r.add("8-1", handler(basic));
    r.add("8-2", handler(unnamed));
    r.add("8-3", handler(named_branches));
    r.add("8-4", handler(heterogeneous));
    r.add("8-5", handler(empty));
    r.add("8-6", handler(fail_fast));
    r.add("8-7", handler(throw_if_error));
    r.add("8-8", handler(min_successful));
    r.add("8-9", handler(tolerated_count));
    r.add("8-10", handler(tolerated_count_exceeded));
    r.add("8-11", handler(concurrent));
    r.add("8-12", handler(flat));
    r.add("8-13", handler(tolerated_percentage_exceeded));
    r.add("8-14", handler(replay_after_wait));
    r.add("8-15", handler(item_serdes));
    r.add("8-16", handler(all_fail));
    r.add("8-17", handler(min_successful_not_reached));
    r.add("8-18", handler(combined_completion));
    r.add("8-19", handler(invalid_concurrency));
    r.add("8-20", handler(accessors));
    r.add("8-21", handler(nested));
    r.add("8-22", handler(percentage_boundary));
}

fn branch_failure(i: usize) -> Error {
    Error::new("BranchError", format!("branch {i} failed"))
}

/// The values of the branches that succeeded, in branch index order.
fn successful<T: Clone>(batch: &BatchResult<T>) -> Vec<T> {
    batch.results().into_iter().cloned().collect()
}

fn reason<T>(batch: &BatchResult<T>) -> Value {
    serde_json::to_value(batch.completion_reason).expect("a plain enum")
}

fn status<T>(batch: &BatchResult<T>) -> Value {
    serde_json::to_value(batch.status()).expect("a plain enum")
}

/// `{completionReason, status, successCount, failureCount, totalCount}`.
fn full_projection<T>(batch: &BatchResult<T>) -> Value {
    json!({
        "completionReason": reason(batch),
        "status": status(batch),
        "successCount": batch.success_count(),
        "failureCount": batch.failure_count(),
        "totalCount": batch.total_count(),
    })
}

/// `{completionReason, successCount, failureCount, totalCount}`.
fn count_projection<T>(batch: &BatchResult<T>) -> Value {
    json!({
        "completionReason": reason(batch),
        "successCount": batch.success_count(),
        "failureCount": batch.failure_count(),
        "totalCount": batch.total_count(),
    })
}

/// Runs `n` branches, one at a time, under `config`: branch `i` fails when `fails(i)`, else
/// returns `"ok"`.
async fn outcomes(
    ctx: &DurableContext,
    name: &str,
    n: usize,
    fails: impl Fn(usize) -> bool,
    config: CompletionConfig,
) -> Result<BatchResult<String>> {
    let mut parallel = ctx.parallel::<String>(name);
    for i in 0..n {
        let fail = fails(i);
        parallel = parallel.branch(
            async move |_c: DurableContext| {
                if fail { Err(branch_failure(i)) } else { Ok("ok".to_owned()) }
            },
        );
    }
    parallel.max_concurrency(1).completion(config).await
}

/// 8-1: two branches, each a step returning a constant, one at a time.
#[durable]
async fn basic(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx
        .parallel::<String>("parallel")
        .branch(async |c: DurableContext| c.step("task_1", async |_| Ok("task-1".to_owned())).await)
        .branch(async |c: DurableContext| c.step("task_2", async |_| Ok("task-2".to_owned())).await)
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 8-2: an unnamed parallel whose branches return constants directly.
#[durable]
async fn unnamed(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx
        .parallel::<String>(Name::NONE)
        .branch(async |_c: DurableContext| Ok("alpha".to_owned()))
        .branch(async |_c: DurableContext| Ok("beta".to_owned()))
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 8-3: named branches ("first", "second").
#[durable]
async fn named_branches(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx
        .parallel::<String>("named")
        .branch_named("first", async |_c: DurableContext| Ok("one".to_owned()))
        .branch_named("second", async |_c: DurableContext| Ok("two".to_owned()))
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 8-4: branches returning a string, a number and an object.
#[durable]
async fn heterogeneous(ctx: DurableContext, _input: Value) -> Result<Vec<Value>> {
    let batch = ctx
        .parallel::<Value>("hetero")
        .branch(async |_c: DurableContext| Ok(json!("hello")))
        .branch(async |_c: DurableContext| Ok(json!(42)))
        .branch(async |_c: DurableContext| Ok(json!({ "k": "v" })))
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 8-5: no branches at all.
#[durable]
async fn empty(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx.parallel::<String>("empty").await?;
    Ok(successful(&batch))
}

/// 8-6: fail fast: branch 0 succeeds, branch 1 fails, branch 2 never starts.
#[durable]
async fn fail_fast(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "failfast", 3, |i| i == 1, CompletionConfig::default().tolerated_failures(0)).await?;
    Ok(full_projection(&batch))
}

/// 8-7: fail fast on branch 0; the handler rethrows the branch's failure.
#[durable]
async fn throw_if_error(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = outcomes(&ctx, "throwing", 2, |i| i == 0, CompletionConfig::default().tolerated_failures(0)).await?;
    batch.throw_if_error()?;
    Ok(successful(&batch))
}

/// 8-8: four branches, complete once two succeeded.
#[durable]
async fn min_successful(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "min-successful", 4, |_| false, CompletionConfig::min_successful(2)).await?;
    Ok(json!({
        "completionReason": reason(&batch),
        "successCount": batch.success_count(),
        "totalCount": batch.total_count(),
    }))
}

/// 8-9: one failure tolerated; every branch runs.
#[durable]
async fn tolerated_count(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "tolerated", 3, |i| i == 1, CompletionConfig::default().tolerated_failures(1)).await?;
    Ok(full_projection(&batch))
}

/// 8-10: one failure tolerated, two happen: branch 2 never starts.
#[durable]
async fn tolerated_count_exceeded(ctx: DurableContext, _input: Value) -> Result<Value> {
    let config = CompletionConfig::default().tolerated_failures(1);
    let batch = outcomes(&ctx, "tolerated-exceeded", 3, |i| i < 2, config).await?;
    Ok(count_projection(&batch))
}

/// 8-11: three branches, two at a time; results in branch order.
#[durable]
async fn concurrent(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx
        .parallel::<String>("concurrent")
        .branch(async |_c: DurableContext| Ok("r0".to_owned()))
        .branch(async |_c: DurableContext| Ok("r1".to_owned()))
        .branch(async |_c: DurableContext| Ok("r2".to_owned()))
        .max_concurrency(2)
        .await?;
    Ok(successful(&batch))
}

/// 8-12: FLAT nesting: the branches' steps hang directly under the parallel.
#[durable]
async fn flat(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx
        .parallel::<String>("flat")
        .branch(async |c: DurableContext| c.step("task_fa", async |_| Ok("fa".to_owned())).await)
        .branch(async |c: DurableContext| c.step("task_fb", async |_| Ok("fb".to_owned())).await)
        .max_concurrency(1)
        .nesting(Nesting::Flat)
        .await?;
    Ok(successful(&batch))
}

/// 8-13: 25% of four branches tolerated; the second failure (50%) stops the batch.
#[durable]
async fn tolerated_percentage_exceeded(ctx: DurableContext, _input: Value) -> Result<Value> {
    let config = CompletionConfig::default().tolerated_failure_percentage(25.0);
    let batch = outcomes(&ctx, "tolerated-pct", 4, |i| i < 2, config).await?;
    Ok(count_projection(&batch))
}

/// 8-14: branch 0 runs a step, branch 1 waits 2 s; the replay skips branch 0.
#[durable]
async fn replay_after_wait(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx
        .parallel::<String>("replay")
        .branch(async |c: DurableContext| c.step("task_b0", async |_| Ok("b0".to_owned())).await)
        .branch(async |c: DurableContext| {
            c.wait(Name::NONE, Duration::from_secs(2)).await?;
            Ok("b1".to_owned())
        })
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// A codec that records `v` as `{"wrapped": v}` and reads it back.
fn wrapping<T: Serialize + DeserializeOwned>() -> impl durable::serdes::Serdes<T> {
    FnSerdes::new(
        |v: &T| -> Result<String> {
            let inner = serde_json::to_value(v).map_err(|e| Error::new("SerdesError", e.to_string()))?;
            Ok(json!({ "wrapped": inner }).to_string())
        },
        |p: &str| -> Result<T> {
            let mut envelope: Value = serde_json::from_str(p).map_err(|e| Error::new("SerdesError", e.to_string()))?;
            let inner = envelope
                .get_mut("wrapped")
                .map(Value::take)
                .ok_or_else(|| Error::new("SerdesError", "no \"wrapped\" envelope"))?;
            serde_json::from_value(inner).map_err(|e| Error::new("SerdesError", e.to_string()))
        },
    )
}

/// 8-15: each branch's result is recorded through a wrapping codec.
#[durable]
async fn item_serdes(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx
        .parallel::<String>("serde")
        .branch(async |_c: DurableContext| Ok("x".to_owned()))
        .branch(async |_c: DurableContext| Ok("y".to_owned()))
        .max_concurrency(1)
        .item_serdes(wrapping())
        .await?;
    Ok(successful(&batch))
}

/// 8-16: every branch fails, all within the tolerance of three.
#[durable]
async fn all_fail(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "all-fail", 3, |_| true, CompletionConfig::default().tolerated_failures(3)).await?;
    Ok(full_projection(&batch))
}

/// 8-17: three successes wanted, only two come; no failure tolerance is set.
#[durable]
async fn min_successful_not_reached(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "min-not-reached", 3, |i| i == 1, CompletionConfig::min_successful(3)).await?;
    Ok(full_projection(&batch))
}

/// 8-18: min-successful 3 and one failure tolerated; two failures come first.
#[durable]
async fn combined_completion(ctx: DurableContext, _input: Value) -> Result<Value> {
    let config = CompletionConfig::min_successful(3).tolerated_failures(1);
    let batch = outcomes(&ctx, "combined", 4, |i| i < 2, config).await?;
    Ok(count_projection(&batch))
}

/// 8-19: max-concurrency 0 is rejected before anything is checkpointed.
#[durable]
async fn invalid_concurrency(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = ctx
        .parallel::<String>("bad-concurrency")
        .branch(async |_c: DurableContext| Ok("a".to_owned()))
        .branch(async |_c: DurableContext| Ok("b".to_owned()))
        .max_concurrency(0)
        .await?;
    Ok(successful(&batch))
}

/// 8-20: the accessors of a result with two successes and one failure.
#[durable]
async fn accessors(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "accessors", 3, |i| i == 1, CompletionConfig::default().tolerated_failures(1)).await?;
    Ok(json!({
        "hasFailure": batch.has_failure(),
        "successCount": batch.succeeded().len(),
        "failureCount": batch.failed().len(),
        "errorCount": batch.errors().len(),
    }))
}

/// 8-21: the outer parallel's one branch runs an inner parallel of two steps.
#[durable]
async fn nested(ctx: DurableContext, _input: Value) -> Result<Vec<Vec<String>>> {
    let batch = ctx
        .parallel::<Vec<String>>("outer")
        .branch(async |branch: DurableContext| {
            let inner = branch
                .parallel::<String>("inner")
                .branch(async |c: DurableContext| c.step("task_i1", async |_| Ok("i1".to_owned())).await)
                .branch(async |c: DurableContext| c.step("task_i2", async |_| Ok("i2".to_owned())).await)
                .max_concurrency(1)
                .await?;
            Ok(successful(&inner))
        })
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 8-22: one failure in four is exactly the 25% tolerated: every branch runs.
#[durable]
async fn percentage_boundary(ctx: DurableContext, _input: Value) -> Result<Value> {
    let config = CompletionConfig::default().tolerated_failure_percentage(25.0);
    let batch = outcomes(&ctx, "pct-boundary", 4, |i| i == 0, config).await?;
    Ok(full_projection(&batch))
}
