//! Suite `step` (1-1 … 1-20).

use std::time::Duration;

use durable::Name;
use durable::model::ErrorObject;
use durable::prelude::*;
use durable::retry::RetryDecision;
use durable::serdes::FnSerdes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Registry;
use crate::conformance::crash;

pub(super) fn register(r: &mut Registry) {
    r.add("1-1", handler(basic));
    r.add("1-2", handler(named));
    r.add("1-3", handler(sequential));
    r.add("1-4", handler(complex_object));
    r.add("1-5", handler(null_result));
    r.add("1-6", handler(custom_serdes));
    r.add("1-7", handler(context_logger));
    r.add("1-8", handler(step_then_wait));
    r.add("1-9", handler(replay_skips_succeeded));
    r.add("1-10", handler(replay_rethrows_failed));
    r.add("1-11", handler(retry_then_succeed));
    r.add("1-12", handler(retry_exhaustion));
    r.add("1-13", handler(default_retry));
    r.add("1-14", handler(custom_backoff));
    r.add("1-15", handler(retry_transient));
    r.add("1-16", handler(no_retry_on_transient));
    r.add("1-17", handler(at_most_once_interrupted));
    r.add("1-18", handler(at_most_once_retried));
    r.add("1-19", handler(fails_permanently));
    r.add("1-20", handler(error_caught));
}

fn transient() -> Error {
    Error::new("TransientError", "a transient failure")
}

fn is_transient(e: &ErrorObject) -> bool {
    e.error_type.as_deref() == Some("TransientError")
}

/// 1-1: one step greets the input.
#[durable]
async fn basic(ctx: DurableContext, name: String) -> Result<String> {
    ctx.step("greet", async |_| Ok(format!("Hello, {name}!"))).await
}

/// 1-2: the same, with an explicit name.
#[durable]
async fn named(ctx: DurableContext, name: String) -> Result<String> {
    ctx.step("custom_step_name", async |_| Ok(format!("Hello, {name}!"))).await
}

/// 1-3: the second step uses the first one's result.
#[durable]
async fn sequential(ctx: DurableContext, _input: Value) -> Result<String> {
    let first = ctx.step("step_one", async |_| Ok("first".to_owned())).await?;
    ctx.step("step_two", async |_| Ok(format!("{first}_second"))).await
}

#[derive(Debug, Serialize, Deserialize)]
struct Person {
    name: String,
    tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Response {
    user: Person,
    count: usize,
}

/// 1-4: a step returns a nested object.
#[durable]
async fn complex_object(ctx: DurableContext, input: Person) -> Result<Response> {
    ctx.step("build_response", async |_| {
        let count = input.tags.len();
        Ok(Response { user: Person { name: input.name.clone(), tags: input.tags.clone() }, count })
    })
    .await
}

/// 1-5: a step returns null.
#[durable]
async fn null_result(ctx: DurableContext, _input: Value) -> Result<Option<String>> {
    ctx.step("do_nothing", async |_| Ok(None::<String>)).await
}

/// 1-6: a step whose codec upper-cases strings when it serialises them.
#[durable]
async fn custom_serdes(ctx: DurableContext, input: String) -> Result<String> {
    let uppercase = FnSerdes::new(
        |s: &String| serde_json::to_string(&s.to_uppercase()).map_err(|e| Error::new("SerDesError", e.to_string())),
        |p: &str| serde_json::from_str::<String>(p).map_err(|e| Error::new("SerDesError", e.to_string())),
    );
    ctx.step("return_input", async |_| Ok(input.clone())).serdes(uppercase).await
}

/// 1-7: the step context's logger, at the start and the end of the step.
#[durable]
async fn context_logger(ctx: DurableContext, name: String) -> Result<String> {
    ctx.step("greet", async |s| {
        durable::info!(s, "Greeting step started for: {name}");
        let greeting = format!("Hello, {name}!");
        durable::info!(s, "Greeting step completed with: {greeting}");
        Ok(greeting)
    })
    .await
}

/// 1-8: a step, then a 2 s wait; the replay skips the step.
#[durable]
async fn step_then_wait(ctx: DurableContext, _input: Value) -> Result<String> {
    let value = ctx.step("compute", async |_| Ok("computed".to_owned())).await?;
    ctx.wait(Name::NONE, Duration::from_secs(2)).await?;
    Ok(value)
}

/// 1-9: a step that logs, then a 1 s wait; the replay returns the recorded value.
#[durable]
async fn replay_skips_succeeded(ctx: DurableContext, _input: Value) -> Result<String> {
    let value = ctx
        .step("cache", async |s| {
            durable::info!(s, "step executed");
            Ok("cached_value".to_owned())
        })
        .await?;
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(value)
}

/// 1-10: a step that fails for good, caught, then a 1 s wait; the replay re-raises the
/// recorded error without running the step.
#[durable]
async fn replay_rethrows_failed(ctx: DurableContext, _input: Value) -> Result<String> {
    let outcome = ctx
        .step("always_fails", async |s| {
            durable::info!(s, "step executed");
            Err::<String, _>(Error::new("PermanentError", "the step fails for good"))
        })
        .no_retry()
        .await;
    let caught = match outcome {
        Ok(v) => v,
        Err(e) => format!("caught: {}", e.message().unwrap_or_default()),
    };
    ctx.wait(Name::NONE, Duration::from_secs(1)).await?;
    Ok(caught)
}

/// 1-11: fails on the first attempt, succeeds on the second.
#[durable]
async fn retry_then_succeed(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.step("unreliable_func", async |s| {
        if s.attempt() < 2 {
            return Err(Error::new("UnreliableError", "first attempt fails"));
        }
        Ok("Operation succeeded".to_owned())
    })
    .retry(Backoff::fixed(Duration::from_secs(1)).max_attempts(3))
    .await
}

/// 1-12: always fails; 4 attempts, 1 s apart.
#[durable]
async fn retry_exhaustion(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.step("always_fail", async |s| {
        Err::<String, _>(Error::new("AlwaysFails", format!("attempt {} failed", s.attempt())))
    })
    .retry(Backoff::fixed(Duration::from_secs(1)).max_attempts(4))
    .await
}

/// 1-13: fails twice, succeeds the third time, with the default strategy.
#[durable]
async fn default_retry(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.step("unreliable_func", async |s| {
        if s.attempt() < 3 {
            return Err(Error::new("UnreliableError", format!("attempt {} fails", s.attempt())));
        }
        Ok(format!("succeeded on attempt {}", s.attempt()))
    })
    .await
}

/// 1-14: fails twice, succeeds the third time; 2 s initial delay, backoff ×3, no jitter.
#[durable]
async fn custom_backoff(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.step("flaky", async |s| {
        if s.attempt() < 3 {
            return Err(Error::new("UnreliableError", format!("attempt {} fails", s.attempt())));
        }
        Ok(format!("succeeded on attempt {}", s.attempt()))
    })
    .retry(
        Backoff::exponential()
            .max_attempts(5)
            .initial_delay(Duration::from_secs(2))
            .backoff_rate(3.0)
            .jitter(Jitter::None),
    )
    .await
}

/// 1-15: a `TransientError` on the first attempt; the strategy retries only that type.
#[durable]
async fn retry_transient(ctx: DurableContext, _input: Value) -> Result<String> {
    let retry_on_transient = |e: &ErrorObject, attempts: u32| {
        if is_transient(e) && attempts < 3 { RetryDecision::Retry(Duration::from_secs(1)) } else { RetryDecision::Stop }
    };
    ctx.step("transient_once", async |s| {
        if s.attempt() < 2 {
            return Err(transient());
        }
        Ok("recovered".to_owned())
    })
    .retry(retry_on_transient)
    .await
}

/// 1-16: a `TransientError`; the strategy never retries that type.
#[durable]
async fn no_retry_on_transient(ctx: DurableContext, _input: Value) -> Result<String> {
    let no_retry_on_transient = |e: &ErrorObject, _attempts: u32| {
        if is_transient(e) { RetryDecision::Stop } else { RetryDecision::Retry(Duration::from_secs(1)) }
    };
    ctx.step("always_transient", async |_| Err::<String, _>(transient())).retry(no_retry_on_transient).await
}

/// 1-17: an at-most-once step without retries logs the input and crashes the process;
/// the next invocation finds it interrupted and fails it.
#[durable]
async fn at_most_once_interrupted(ctx: DurableContext, input: String) -> Result<String> {
    ctx.step("at_most_once_flaky_step", async |s| {
        durable::info!(s, "processing {input}");
        crash::exit_process::<std::result::Result<String, Error>>().await
    })
    .at_most_once()
    .no_retry()
    .await
}

/// 1-18: an at-most-once step with retries: the first attempt logs and crashes the
/// process, the interruption is retried, the second attempt logs and succeeds.
#[durable]
async fn at_most_once_retried(ctx: DurableContext, input: String) -> Result<String> {
    ctx.step("at_most_once_step", async |s| {
        durable::info!(s, "attempt {} processing {input}", s.attempt());
        if s.attempt() == 1 {
            return crash::exit_process::<std::result::Result<String, Error>>().await;
        }
        Ok("succeeded on second attempt".to_owned())
    })
    .at_most_once()
    .retry(Backoff::fixed(Duration::from_secs(1)).max_attempts(3))
    .await
}

/// 1-19: a step that always raises, without retries.
#[durable]
async fn fails_permanently(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.step("failing_func", async |_| Err::<String, _>(Error::new("StepFailure", "the step always fails")))
        .retry(presets::none())
        .await
}

/// 1-20: a failing step caught by the handler, which continues with a second step that
/// returns a fallback value.
#[durable]
async fn error_caught(ctx: DurableContext, _input: Value) -> Result<String> {
    let failed = ctx
        .step("failing_func", async |_| Err::<String, _>(Error::new("StepFailure", "the step fails")))
        .no_retry()
        .await;
    match failed {
        Ok(v) => Ok(v),
        Err(_) => ctx.step("fallback", async |_| Ok("fallback_result".to_owned())).await,
    }
}
