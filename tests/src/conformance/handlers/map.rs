//! Suite `map` (9-1 … 9-20).

use std::time::Duration;

use durable::model::ErrorObject;
use durable::prelude::*;
use durable::serdes::{FnSerdes, Serdes};
use durable::{BatchItem, BatchResult, CompletionConfig, CompletionReason, ItemStatus, Name, Nesting};
use serde_json::{Value, json};

use super::Registry;

pub(super) fn register(r: &mut Registry) {
    r.add("9-1", handler(basic));
    r.add("9-2", handler(unnamed));
    r.add("9-3", handler(item_and_index));
    r.add("9-4", handler(empty));
    r.add("9-5", handler(fail_fast));
    r.add("9-6", handler(throw_if_error));
    r.add("9-7", handler(min_successful));
    r.add("9-8", handler(tolerated_count));
    r.add("9-9", handler(tolerated_count_exceeded));
    r.add("9-10", handler(tolerated_percentage_exceeded));
    r.add("9-11", handler(concurrent));
    r.add("9-12", handler(flat));
    r.add("9-13", handler(item_namer));
    r.add("9-14", handler(item_serdes));
    r.add("9-15", handler(suspend_inside));
    r.add("9-16", handler(large_result));
    r.add("9-17", handler(wait_after));
    r.add("9-18", handler(wait_after_failure));
    r.add("9-19", handler(operation_serdes));
    r.add("9-20", handler(operation_serdes_replay));
}

fn item_failure(item: &str) -> Error {
    Error::new("ItemError", format!("item {item} failed"))
}

/// The values of the items that succeeded, in index order.
fn successful<T: Clone>(batch: &BatchResult<T>) -> Vec<T> {
    batch.results().into_iter().cloned().collect()
}

fn reason<T>(batch: &BatchResult<T>) -> Value {
    serde_json::to_value(batch.completion_reason).expect("a plain enum")
}

/// `{completionReason, status, successCount, failureCount, totalCount}`.
fn full_projection<T>(batch: &BatchResult<T>) -> Value {
    json!({
        "completionReason": reason(batch),
        "status": serde_json::to_value(batch.status()).expect("a plain enum"),
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

/// Items `i0`, `i1`, ... of which those named in `failing` raise; the others return
/// `"ok"`. One at a time, under `config`.
async fn outcomes(
    ctx: &DurableContext,
    name: &str,
    n: usize,
    failing: &[usize],
    config: CompletionConfig,
) -> Result<BatchResult<String>> {
    let items: Vec<(String, bool)> = (0..n).map(|i| (format!("i{i}"), failing.contains(&i))).collect();
    ctx.map(
        name,
        items,
        async |_c: DurableContext, (item, fails): (String, bool), _i| {
            if fails { Err(item_failure(&item)) } else { Ok("ok".to_owned()) }
        },
    )
    .max_concurrency(1)
    .completion(config)
    .await
}

/// 9-1: each item greeted by a step, one at a time.
#[durable]
async fn basic(ctx: DurableContext, items: Vec<String>) -> Result<Vec<String>> {
    let batch = ctx
        .map("map", items, async |c: DurableContext, item: String, _i| {
            c.step("greet", async |_| Ok(format!("Hello, {item}!"))).await
        })
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 9-2: an unnamed map doubling numbers directly.
#[durable]
async fn unnamed(ctx: DurableContext, items: Vec<i64>) -> Result<Vec<i64>> {
    let batch =
        ctx.map(Name::NONE, items, async |_c: DurableContext, item: i64, _i| Ok(item * 2)).max_concurrency(1).await?;
    Ok(successful(&batch))
}

/// 9-3: item plus index.
#[durable]
async fn item_and_index(ctx: DurableContext, items: Vec<i64>) -> Result<Vec<i64>> {
    let batch = ctx
        .map("indexed", items, async |_c: DurableContext, item: i64, i: usize| {
            Ok(item + i64::try_from(i).expect("a small index"))
        })
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 9-4: no items at all.
#[durable]
async fn empty(ctx: DurableContext, items: Vec<Value>) -> Result<Vec<Value>> {
    let batch = ctx.map("empty", items, async |_c: DurableContext, item: Value, _i| Ok(item)).await?;
    Ok(successful(&batch))
}

/// 9-5: fail fast: item 0 succeeds, item 1 fails, item 2 never starts.
#[durable]
async fn fail_fast(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "failfast", 3, &[1], CompletionConfig::default().tolerated_failures(0)).await?;
    Ok(full_projection(&batch))
}

/// 9-6: fail fast on item 0; the handler rethrows the item's failure.
#[durable]
async fn throw_if_error(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let batch = outcomes(&ctx, "throwing", 2, &[0], CompletionConfig::default().tolerated_failures(0)).await?;
    batch.throw_if_error()?;
    Ok(successful(&batch))
}

/// 9-7: four items, complete once two succeeded.
#[durable]
async fn min_successful(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "min-successful", 4, &[], CompletionConfig::min_successful(2)).await?;
    Ok(json!({
        "completionReason": reason(&batch),
        "successCount": batch.success_count(),
        "totalCount": batch.total_count(),
    }))
}

/// 9-8: one failure tolerated; every item runs.
#[durable]
async fn tolerated_count(ctx: DurableContext, _input: Value) -> Result<Value> {
    let batch = outcomes(&ctx, "tolerated", 3, &[1], CompletionConfig::default().tolerated_failures(1)).await?;
    Ok(full_projection(&batch))
}

/// 9-9: one failure tolerated, two happen: item 2 never starts.
#[durable]
async fn tolerated_count_exceeded(ctx: DurableContext, _input: Value) -> Result<Value> {
    let config = CompletionConfig::default().tolerated_failures(1);
    let batch = outcomes(&ctx, "tolerated-exceeded", 3, &[0, 1], config).await?;
    Ok(count_projection(&batch))
}

/// 9-10: 25% of four items tolerated; the second failure (50%) stops the map.
#[durable]
async fn tolerated_percentage_exceeded(ctx: DurableContext, _input: Value) -> Result<Value> {
    let config = CompletionConfig::default().tolerated_failure_percentage(25.0);
    let batch = outcomes(&ctx, "tolerated-pct", 4, &[0, 1], config).await?;
    Ok(count_projection(&batch))
}

/// 9-11: three items, two at a time; results in index order.
#[durable]
async fn concurrent(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let items = vec!["r0", "r1", "r2"];
    let batch = ctx
        .map("concurrent", items, async |_c: DurableContext, item: &str, _i| Ok(item.to_owned()))
        .max_concurrency(2)
        .await?;
    Ok(successful(&batch))
}

/// 9-12: FLAT nesting: the items' steps hang directly under the map.
#[durable]
async fn flat(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let items = vec!["fa", "fb"];
    let batch = ctx
        .map("flat", items, async |c: DurableContext, item: &str, _i| {
            c.step("return_item", async |_| Ok(item.to_owned())).await
        })
        .max_concurrency(1)
        .nesting(Nesting::Flat)
        .await?;
    Ok(successful(&batch))
}

/// 9-13: iterations named from their item (`item-1`, `item-2`).
#[durable]
async fn item_namer(ctx: DurableContext, items: Vec<i64>) -> Result<Vec<i64>> {
    let batch = ctx
        .map("named-items", items, async |_c: DurableContext, item: i64, _i| Ok(item * 10))
        .item_namer(|item: &i64, _i| format!("item-{item}"))
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 9-14: each iteration's result is recorded as `wrapped:<value>`.
#[durable]
async fn item_serdes(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let wrapped = FnSerdes::new(
        |v: &String| -> Result<String> { Ok(format!("wrapped:{v}")) },
        |p: &str| -> Result<String> {
            p.strip_prefix("wrapped:")
                .map(str::to_owned)
                .ok_or_else(|| Error::new("SerdesError", format!("{p:?} is not wrapped")))
        },
    );
    let items = vec!["x", "y"];
    let batch = ctx
        .map("serdes", items, async |_c: DurableContext, item: &str, _i| Ok(item.to_uppercase()))
        .item_serdes(wrapped)
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 9-15: iteration 1 waits a second before its step; the replay skips iteration 0.
#[durable]
async fn suspend_inside(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let items = vec!["r0", "r1"];
    let batch = ctx
        .map("suspend", items, async |c: DurableContext, item: &str, i: usize| {
            if i == 1 {
                c.wait(Name::NONE, Duration::from_secs(1)).await?;
            }
            c.step("return_item", async |_| Ok(item.to_owned())).await
        })
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 9-16: four iterations of about 70 KB each: the map's result is over 256 KiB, so it is
/// recorded as a summary with `ReplayChildren`.
#[durable]
async fn large_result(ctx: DurableContext, _input: Value) -> Result<Value> {
    let items = vec!['a', 'b', 'c', 'd'];
    let batch = ctx
        .map("large", items, async |_c: DurableContext, ch: char, _i| Ok(ch.to_string().repeat(70_000)))
        .max_concurrency(1)
        .await?;
    Ok(json!({ "successCount": batch.success_count(), "totalCount": batch.total_count() }))
}

/// 9-17: a map of two upper-cased items, then a one-second wait.
#[durable]
async fn wait_after(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let items = vec!["a", "b"];
    let batch = ctx
        .map("then-wait", items, async |_c: DurableContext, item: &str, _i| Ok(item.to_uppercase()))
        .max_concurrency(1)
        .await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(successful(&batch))
}

/// 9-18: a map with a tolerated failure, not rethrown, then a one-second wait.
#[durable]
async fn wait_after_failure(ctx: DurableContext, _input: Value) -> Result<Value> {
    let items = vec!["ok", "fail"];
    let batch = ctx
        .map(
            "fail-then-wait",
            items,
            async |_c: DurableContext, item: &str, _i| {
                if item == "fail" { Err(item_failure(item)) } else { Ok(item.to_owned()) }
            },
        )
        .completion(CompletionConfig::default().tolerated_failures(1))
        .max_concurrency(1)
        .await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(full_projection(&batch))
}

/// The codec of a whole map result of strings: `OPSERDE:` and the successful results
/// joined by commas; read back as that many succeeded items.
fn opserde() -> impl Serdes<BatchResult<String>> {
    FnSerdes::new(
        |batch: &BatchResult<String>| -> Result<String> {
            let values: Vec<&str> = batch.results().into_iter().map(String::as_str).collect();
            Ok(format!("OPSERDE:{}", values.join(",")))
        },
        |p: &str| -> Result<BatchResult<String>> {
            let joined = p
                .strip_prefix("OPSERDE:")
                .ok_or_else(|| Error::new("SerdesError", format!("{p:?} is not an OPSERDE payload")))?;
            let all = joined
                .split(',')
                .filter(|v| !v.is_empty())
                .enumerate()
                .map(|(index, v)| BatchItem {
                    index,
                    status: ItemStatus::Succeeded,
                    result: Some(v.to_owned()),
                    error: None::<ErrorObject>,
                })
                .collect();
            Ok(BatchResult { all, completion_reason: CompletionReason::AllCompleted })
        },
    )
}

/// 9-19: the whole map result is recorded through an operation-level codec.
#[durable]
async fn operation_serdes(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let items = vec!["x", "y"];
    let batch = ctx
        .map("op-serde", items, async |_c: DurableContext, item: &str, _i| Ok(item.to_uppercase()))
        .serdes(opserde())
        .max_concurrency(1)
        .await?;
    Ok(successful(&batch))
}

/// 9-20: the same, then a wait: the replay reads the map's result through the codec.
#[durable]
async fn operation_serdes_replay(ctx: DurableContext, _input: Value) -> Result<Vec<String>> {
    let items = vec!["x", "y"];
    let batch = ctx
        .map("op-serde-replay", items, async |_c: DurableContext, item: &str, _i| Ok(item.to_uppercase()))
        .serdes(opserde())
        .max_concurrency(1)
        .await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(successful(&batch))
}
