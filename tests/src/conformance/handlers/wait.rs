//! Suite `wait` (2-1 … 2-5).

use std::time::Duration;

use durable::Name;
use durable::prelude::*;
use serde_json::{Value, json};

use super::Registry;

pub(super) fn register(r: &mut Registry) {
    r.add("2-1", handler(basic));
    r.add("2-2", handler(named));
    r.add("2-3", handler(sequential));
    r.add("2-4", handler(minutes));
    r.add("2-5", handler(one_hour));
}

/// 2-1: one 2 s wait.
#[durable]
async fn basic(ctx: DurableContext, _input: Value) -> Result<()> {
    ctx.wait(Name::NONE, Duration::from_secs(2)).await
}

/// 2-2: one named 2 s wait.
#[durable]
async fn named(ctx: DurableContext, _input: Value) -> Result<()> {
    ctx.wait("custom_wait_name", Duration::from_secs(2)).await
}

/// 2-3: two named 2 s waits, one after the other.
#[durable]
async fn sequential(ctx: DurableContext, _input: Value) -> Result<Value> {
    ctx.wait("wait-1", Duration::from_secs(2)).await?;
    ctx.wait("wait-2", Duration::from_secs(2)).await?;
    Ok(json!({ "completedWaits": 2 }))
}

/// 2-4: a wait of one minute.
#[durable]
async fn minutes(ctx: DurableContext, _input: Value) -> Result<()> {
    ctx.wait(Name::NONE, Duration::from_mins(1)).await
}

/// 2-5: a wait of one hour.
#[durable]
async fn one_hour(ctx: DurableContext, _input: Value) -> Result<()> {
    ctx.wait(Name::NONE, Duration::from_hours(1)).await
}
