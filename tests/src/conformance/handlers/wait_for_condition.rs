//! Suite `wait_for_condition` (6-1 … 6-13).

use std::time::Duration;

use durable::prelude::*;
use durable::serdes::FnSerdes;
use durable::{Name, WaitDecision, poll_until};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Registry;

pub(super) fn register(r: &mut Registry) {
    r.add("6-1", handler(basic));
    r.add("6-2", handler(immediate));
    r.add("6-3", handler(named));
    r.add("6-4", handler(initial_state));
    r.add("6-5", handler(fixed_delay));
    r.add("6-6", handler(max_attempts));
    r.add("6-7", handler(check_fails));
    r.add("6-8", handler(check_fails_caught));
    r.add("6-9", handler(object_state));
    r.add("6-10", handler(null_state));
    r.add("6-11", handler(custom_serdes));
    r.add("6-12", handler(then_step));
    r.add("6-13", handler(two_sequential));
}

/// The check the suite mostly uses: the state plus one.
async fn increment(state: i64, _: StepContext) -> Result<i64> {
    Ok(state + 1)
}

fn check_error() -> Error {
    Error::new("CheckFailed", "the condition check failed")
}

/// 6-1: counts from 0 until the input threshold, with AWS's default strategy.
#[durable]
async fn basic(ctx: DurableContext, threshold: i64) -> Result<i64> {
    ctx.wait_for_condition(Name::NONE, 0, increment, poll_until(move |s: &i64| *s < threshold)).await
}

/// 6-2: starts at 5, which already meets the condition: one check, no suspension.
#[durable]
async fn immediate(ctx: DurableContext, _input: Value) -> Result<i64> {
    ctx.wait_for_condition(Name::NONE, 5, async |s: i64, _| Ok(s), poll_until(|s: &i64| *s < 5)).await
}

/// 6-3: named "poll-status"; counts from 0 until the input threshold (2).
#[durable]
async fn named(ctx: DurableContext, threshold: i64) -> Result<i64> {
    ctx.wait_for_condition("poll-status", 0, increment, poll_until(move |s: &i64| *s < threshold)).await
}

/// 6-4: counts from the initial state 5 until the input threshold (8).
#[durable]
async fn initial_state(ctx: DurableContext, threshold: i64) -> Result<i64> {
    ctx.wait_for_condition(Name::NONE, 5, increment, poll_until(move |s: &i64| *s < threshold)).await
}

/// 6-5: a fixed 2 s delay between polls (no backoff, no jitter).
#[durable]
async fn fixed_delay(ctx: DurableContext, threshold: i64) -> Result<i64> {
    let every_two_seconds = poll_until(move |s: &i64| *s < threshold)
        .initial_delay(Duration::from_secs(2))
        .backoff_rate(1.0)
        .jitter(Jitter::None);
    ctx.wait_for_condition(Name::NONE, 0, increment, every_two_seconds).await
}

/// 6-6: the condition never holds; the fixed-delay strategy allows 3 attempts and fails
/// on the third.
#[durable]
async fn max_attempts(ctx: DurableContext, start: i64) -> Result<i64> {
    let three_attempts = poll_until(|_: &i64| true)
        .max_attempts(3)
        .initial_delay(Duration::from_secs(2))
        .backoff_rate(1.0)
        .jitter(Jitter::None);
    ctx.wait_for_condition(Name::NONE, start, increment, three_attempts).await
}

/// 6-7: the check raises on its first attempt; the error fails the execution.
#[durable]
async fn check_fails(ctx: DurableContext, _input: Value) -> Result<i64> {
    ctx.wait_for_condition(Name::NONE, 0, async |_: i64, _| Err::<i64, _>(check_error()), poll_until(|_: &i64| true))
        .await
}

/// 6-8: the check raises on its first attempt; the handler catches it.
#[durable]
async fn check_fails_caught(ctx: DurableContext, _input: Value) -> Result<String> {
    let polled = ctx
        .wait_for_condition(Name::NONE, 0, async |_: i64, _| Err::<i64, _>(check_error()), poll_until(|_: &i64| true))
        .await;
    Ok(match polled {
        Ok(state) => state.to_string(),
        Err(_) => "recovered".to_owned(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    status: String,
    attempts: u32,
}

/// 6-9: the state is an object; DONE once it has been checked twice.
#[durable]
async fn object_state(ctx: DurableContext, _input: Value) -> Result<Job> {
    let initial = Job { status: "PENDING".to_owned(), attempts: 0 };
    let check = async |job: Job, _| {
        let attempts = job.attempts + 1;
        let status = if attempts >= 2 { "DONE" } else { "PENDING" };
        Ok(Job { status: status.to_owned(), attempts })
    };
    ctx.wait_for_condition(Name::NONE, initial, check, poll_until(|j: &Job| j.status == "PENDING")).await
}

/// 6-10: the check returns null and the strategy stops at once.
#[durable]
async fn null_state(ctx: DurableContext, _input: Value) -> Result<Value> {
    ctx.wait_for_condition(
        Name::NONE,
        Value::Null,
        async |_: Value, _| Ok(Value::Null),
        |_: &Value, _: u32| WaitDecision::Stop,
    )
    .await
}

/// 6-11: the string state goes through a custom codec (`{"encoded":"<reversed>"}`) at
/// every checkpoint; each check appends an "x" until there are two.
#[durable]
async fn custom_serdes(ctx: DurableContext, _input: Value) -> Result<String> {
    let encoded = FnSerdes::new(
        |s: &String| Ok(serde_json::json!({ "encoded": s.chars().rev().collect::<String>() }).to_string()),
        |p: &str| -> Result<String> {
            let v: Value = serde_json::from_str(p).map_err(|e| Error::new("SerDesError", e.to_string()))?;
            let text = v
                .get("encoded")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::new("SerDesError", format!("not an encoded state: {p}")))?;
            Ok(text.chars().rev().collect())
        },
    );
    ctx.wait_for_condition(
        Name::NONE,
        String::new(),
        async |s: String, _| Ok(s + "x"),
        poll_until(|s: &String| s.len() < 2),
    )
    .serdes(encoded)
    .await
}

/// 6-12: counts to the input threshold (2), then a step multiplies the result by 10.
#[durable]
async fn then_step(ctx: DurableContext, threshold: i64) -> Result<i64> {
    let reached = ctx.wait_for_condition(Name::NONE, 0, increment, poll_until(move |s: &i64| *s < threshold)).await?;
    ctx.step("multiply", async |_| Ok(reached * 10)).await
}

/// 6-13: counts 0 → 2, then a second operation counts on from there to 4.
#[durable]
async fn two_sequential(ctx: DurableContext, _input: Value) -> Result<i64> {
    let first = ctx.wait_for_condition(Name::NONE, 0, increment, poll_until(|s: &i64| *s < 2)).await?;
    ctx.wait_for_condition(Name::NONE, first, increment, poll_until(|s: &i64| *s < 4)).await
}
