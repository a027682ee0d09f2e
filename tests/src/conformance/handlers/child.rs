//! Suite `child` (3-1 … 3-18).

use std::time::Duration;

use durable::Name;
use durable::prelude::*;
use durable::serdes::FnSerdes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Registry, log_even_when_replaying};
use crate::conformance::crash;

pub(super) fn register(r: &mut Registry) {
    r.add("3-1", handler(basic));
    r.add("3-2", handler(named));
    r.add("3-3", handler(sequential_steps));
    r.add("3-4", handler(step_fails));
    r.add("3-5", handler(failure_caught));
    r.add("3-6", handler(nested));
    r.add("3-7", handler(step_retry));
    r.add("3-8", handler(retry_exhaustion));
    r.add("3-9", handler(replay_cached));
    r.add("3-10", handler(step_and_wait_inside));
    r.add("3-11", handler(large_result));
    r.add("3-12", handler(interrupted));
    r.add("3-13", handler(wait_inside));
    r.add("3-14", handler(custom_serdes));
    r.add("3-15", handler(error_without_step));
    r.add("3-16", handler(returns_null));
    r.add("3-17", handler(logger_only));
    r.add("3-18", handler(inside_and_after));
}

fn failure() -> Error {
    Error::new("ChildStepError", "the step inside the child context failed")
}

/// 3-1: a child context with one step that returns the input.
#[durable]
async fn basic(ctx: DurableContext, input: String) -> Result<String> {
    ctx.run_in_child_context("child", async |child| child.step("return_input", async |_| Ok(input.clone())).await).await
}

#[derive(Deserialize)]
struct NameAndValue {
    name: String,
    value: String,
}

/// 3-2: a child context named by the input; its step returns the input's value.
#[durable]
async fn named(ctx: DurableContext, input: NameAndValue) -> Result<String> {
    ctx.run_in_child_context(input.name.as_str(), async |child| {
        child.step("return_value", async |_| Ok(input.value.clone())).await
    })
    .await
}

/// 3-3: two steps in a child context, the second fed by the first.
#[durable]
async fn sequential_steps(ctx: DurableContext, input: String) -> Result<String> {
    ctx.run_in_child_context("two_steps", async |child| {
        let first = child.step("first", async |_| Ok(input.clone())).await?;
        child.step("second", async |_| Ok(first.clone())).await
    })
    .await
}

/// 3-4: the step inside fails without retries; the child and the execution fail.
#[durable]
async fn step_fails(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.run_in_child_context("failing_child", async |child| {
        child.step("failing_step", async |_| Err::<String, _>(failure())).no_retry().await
    })
    .await
}

/// 3-5: the child's failure is caught; a recovery step returns the input.
#[durable]
async fn failure_caught(ctx: DurableContext, input: String) -> Result<String> {
    let failed = ctx
        .run_in_child_context("failing_child", async |child| {
            child.step("failing_step", async |_| Err::<String, _>(failure())).no_retry().await
        })
        .await;
    if failed.is_ok() {
        return Err(Error::new("UnexpectedSuccess", "the child context was meant to fail"));
    }
    ctx.step("recovery", async |_| Ok(input.clone())).await
}

/// 3-6: an outer child context with a step and an inner child context with its own step.
#[durable]
async fn nested(ctx: DurableContext, input: String) -> Result<String> {
    ctx.run_in_child_context("outer", async |outer| {
        outer.step("outer_step", async |_| Ok(input.clone())).await?;
        outer
            .run_in_child_context("inner", async |inner| inner.step("inner_step", async |_| Ok(input.clone())).await)
            .await
    })
    .await
}

/// 3-7: the step inside fails once and succeeds on its retry.
#[durable]
async fn step_retry(ctx: DurableContext, input: String) -> Result<String> {
    ctx.run_in_child_context("retrying_child", async |child| {
        child
            .step("flaky_step", async |s| {
                if s.attempt() < 2 {
                    return Err(Error::new("FlakyError", "the first attempt fails"));
                }
                Ok(input.clone())
            })
            .retry(Backoff::fixed(Duration::from_secs(1)).max_attempts(3))
            .await
    })
    .await
}

/// 3-8: the step inside always fails; after 2 attempts the child fails.
#[durable]
async fn retry_exhaustion(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.run_in_child_context("exhausted_child", async |child| {
        child
            .step("always_fails", async |_| Err::<String, _>(failure()))
            .retry(Backoff::fixed(Duration::from_secs(1)).max_attempts(2))
            .await
    })
    .await
}

/// 3-9: a child context, then a wait; the replay returns the child's recorded result.
#[durable]
async fn replay_cached(ctx: DurableContext, input: String) -> Result<String> {
    let value = ctx
        .run_in_child_context("child", async |child| child.step("return_input", async |_| Ok(input.clone())).await)
        .await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(value)
}

/// 3-10: a step then a wait inside a child context.
#[durable]
async fn step_and_wait_inside(ctx: DurableContext, input: String) -> Result<String> {
    ctx.run_in_child_context("step_and_wait", async |child| {
        let value = child.step("return_input", async |_| Ok(input.clone())).await?;
        child.wait(Name::NONE, Duration::from_secs(1)).await?;
        Ok(value)
    })
    .await
}

/// 3-11: the child logs the input (on replay too), runs a step returning the input and
/// builds a result of more than 256 KiB from it, so it is checkpointed with
/// `ReplayChildren`; after a wait the replay rebuilds it by running the child again.
#[durable]
async fn large_result(ctx: DurableContext, input: String) -> Result<Value> {
    let large = ctx
        .run_in_child_context("large_child", async |child| {
            log_even_when_replaying(&child, &format!("building a large result from {input}"));
            let piece = child.step("small_piece", async |_| Ok(input.clone())).await?;
            let copies = 300 * 1024 / piece.len().max(1) + 1;
            Ok(piece.repeat(copies))
        })
        .await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(json!({ "length": large.len(), "rebuilt": large.starts_with(&input) }))
}

/// 3-12: the step inside crashes the process once, after the child's and the step's
/// starts are checkpointed; the next invocation runs the step again and it succeeds.
#[durable]
async fn interrupted(ctx: DurableContext, input: String) -> Result<String> {
    ctx.run_in_child_context("interrupted_child", async |child| {
        child
            .step("crash_once", async |_| {
                if crash::crashes_so_far() == 0 {
                    return crash::exit_process::<std::result::Result<String, Error>>().await;
                }
                Ok(input.clone())
            })
            .await
    })
    .await
}

/// 3-13: a child context holding only a wait, then a step outside it.
#[durable]
async fn wait_inside(ctx: DurableContext, input: String) -> Result<String> {
    ctx.run_in_child_context("waiting_child", async |child| {
        child.wait(Name::NONE, Duration::from_secs(1)).await?;
        Ok(input.clone())
    })
    .await?;
    ctx.step("after_child", async |_| Ok(input.clone())).await
}

/// 3-14: the child's codec writes its result upper-cased (and not as JSON).
#[durable]
async fn custom_serdes(ctx: DurableContext, input: String) -> Result<String> {
    let uppercase = FnSerdes::new(
        |s: &String| -> Result<String> { Ok(s.to_uppercase()) },
        |p: &str| -> Result<String> { Ok(p.to_owned()) },
    );
    ctx.run_in_child_context("uppercase_child", async |child| {
        child.step("return_input", async |_| Ok(input.clone())).await
    })
    .serdes(uppercase)
    .await
}

/// 3-15: the child's body raises without running any operation.
#[durable]
async fn error_without_step(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.run_in_child_context("throwing_child", async |_| {
        Err::<String, _>(Error::new("ChildBodyError", "thrown directly in the child body"))
    })
    .await
}

/// 3-16: the child's body returns null without running any operation.
#[durable]
async fn returns_null(ctx: DurableContext, _input: Value) -> Result<Option<String>> {
    ctx.run_in_child_context("null_child", async |_| Ok(None::<String>)).await
}

/// 3-17: the child only logs (on replay too) and returns the input; a wait follows, and
/// the replay must not run the finished child again.
#[durable]
async fn logger_only(ctx: DurableContext, input: String) -> Result<String> {
    let value = ctx
        .run_in_child_context("logging_child", async |child| {
            log_even_when_replaying(&child, &format!("child context ran for {input}"));
            Ok(input.clone())
        })
        .await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(value)
}

/// 3-18: a step and a wait inside a child context, then a step and a wait after it.
#[durable]
async fn inside_and_after(ctx: DurableContext, input: String) -> Result<String> {
    ctx.run_in_child_context("step_and_wait", async |child| {
        let value = child.step("inner_step", async |_| Ok(input.clone())).await?;
        child.wait(Name::NONE, Duration::from_secs(1)).await?;
        Ok(value)
    })
    .await?;
    let value = ctx.step("outer_step", async |_| Ok(input.clone())).await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(value)
}
