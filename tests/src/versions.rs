//! Builds of one durable function, as successive deploys change it: what an execution
//! started on [`v1`] meets when it resumes on another build. The divergence tests run them
//! in process on the `TestRunner` and across processes on the embedded store (the
//! `versioned` binary hosts each build under the same name, as a redeploy would).
//!
//! Every step body appends `<step> <order>` to the file named in the input, so a test can
//! tell which bodies ran, in which process.

use std::io::Write as _;
use std::time::Duration;

use durable::prelude::*;
use serde::{Deserialize, Serialize};

/// The input: an order id and the file step bodies append to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// The order.
    pub id: String,
    /// Where bodies record that they ran.
    pub effects: String,
}

/// Records that the body of `step` ran for `order`.
pub fn effect(order: &Order, step: &str) -> Result<String> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&order.effects)?;
    f.write_all(format!("{step} {}\n", order.id).as_bytes())?;
    f.sync_data()?;
    Ok(format!("{step}:{}", order.id))
}

/// The bodies that ran for `order`, in order.
pub fn effects_of(path: &str, order: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| l.strip_suffix(&format!(" {order}")).map(str::to_owned)).collect()
}

/// The first build: reserve, charge, an hour's cool-off, ship.
#[durable(name = "payment")]
pub async fn v1(ctx: DurableContext, order: Order) -> Result<Vec<String>> {
    let reserved = ctx.step("reserve", async |_| effect(&order, "reserve")).await?;
    let charged = ctx.step("charge", async |_| effect(&order, "charge")).await?;
    ctx.wait("cool-off", Duration::from_hours(1)).await?;
    let shipped = ctx.step("ship", async |_| effect(&order, "ship")).await?;
    Ok(vec![reserved, charged, shipped])
}

/// `charge` renamed `charge-card`: a new id, while the recorded `charge` is ahead.
#[durable(name = "payment")]
pub async fn renamed(ctx: DurableContext, order: Order) -> Result<Vec<String>> {
    let reserved = ctx.step("reserve", async |_| effect(&order, "reserve")).await?;
    let charged = ctx.step("charge-card", async |_| effect(&order, "charge-card")).await?;
    ctx.wait("cool-off", Duration::from_hours(1)).await?;
    let shipped = ctx.step("ship", async |_| effect(&order, "ship")).await?;
    Ok(vec![reserved, charged, shipped])
}

/// `charge` removed: the recorded charge is passed by.
#[durable(name = "payment")]
pub async fn removed(ctx: DurableContext, order: Order) -> Result<Vec<String>> {
    let reserved = ctx.step("reserve", async |_| effect(&order, "reserve")).await?;
    ctx.wait("cool-off", Duration::from_hours(1)).await?;
    let shipped = ctx.step("ship", async |_| effect(&order, "ship")).await?;
    Ok(vec![reserved, shipped])
}

/// `reserve` and `charge` swapped.
#[durable(name = "payment")]
pub async fn swapped(ctx: DurableContext, order: Order) -> Result<Vec<String>> {
    let charged = ctx.step("charge", async |_| effect(&order, "charge")).await?;
    let reserved = ctx.step("reserve", async |_| effect(&order, "reserve")).await?;
    ctx.wait("cool-off", Duration::from_hours(1)).await?;
    let shipped = ctx.step("ship", async |_| effect(&order, "ship")).await?;
    Ok(vec![reserved, charged, shipped])
}

/// A fraud check inserted before the charge, without a patch.
#[durable(name = "payment")]
pub async fn inserted(ctx: DurableContext, order: Order) -> Result<Vec<String>> {
    let reserved = ctx.step("reserve", async |_| effect(&order, "reserve")).await?;
    ctx.step("fraud-check", async |_| effect(&order, "fraud-check")).await?;
    let charged = ctx.step("charge", async |_| effect(&order, "charge")).await?;
    ctx.wait("cool-off", Duration::from_hours(1)).await?;
    let shipped = ctx.step("ship", async |_| effect(&order, "ship")).await?;
    Ok(vec![reserved, charged, shipped])
}

/// `charge` turned into a wait of the same name (the same id, another type).
#[durable(name = "payment")]
pub async fn retyped(ctx: DurableContext, order: Order) -> Result<Vec<String>> {
    let reserved = ctx.step("reserve", async |_| effect(&order, "reserve")).await?;
    ctx.wait("charge", Duration::from_mins(1)).await?;
    ctx.wait("cool-off", Duration::from_hours(1)).await?;
    let shipped = ctx.step("ship", async |_| effect(&order, "ship")).await?;
    Ok(vec![reserved, shipped])
}

/// The fraud check inserted behind `ctx.patched`: executions recorded before it keep the
/// old path, new ones take the new one.
#[durable(name = "payment")]
pub async fn patched(ctx: DurableContext, order: Order) -> Result<Vec<String>> {
    let reserved = ctx.step("reserve", async |_| effect(&order, "reserve")).await?;
    if ctx.patched("add-fraud-check").await? {
        ctx.step("fraud-check", async |_| effect(&order, "fraud-check")).await?;
    }
    let charged = ctx.step("charge", async |_| effect(&order, "charge")).await?;
    ctx.wait("cool-off", Duration::from_hours(1)).await?;
    let shipped = ctx.step("ship", async |_| effect(&order, "ship")).await?;
    Ok(vec![reserved, charged, shipped])
}

/// Changes a replay tolerates: code and logging between operations, an operation in a
/// branch not taken, and a new operation after the last one executions in flight
/// recorded.
#[durable(name = "payment")]
pub async fn tolerant(ctx: DurableContext, order: Order) -> Result<Vec<String>> {
    // A comment, and some plain code.
    let express = order.id.ends_with('!');
    durable::info!(ctx, "processing order {}", order.id);
    let reserved = ctx.step("reserve", async |_| effect(&order, "reserve")).await?;
    if express {
        ctx.step("expedite", async |_| effect(&order, "expedite")).await?;
    }
    let charged = ctx.step("charge", async |_| effect(&order, "charge")).await?;
    ctx.wait("cool-off", Duration::from_hours(1)).await?;
    let shipped = ctx.step("ship", async |_| effect(&order, "ship")).await?;
    let notified = ctx.step("notify", async |_| effect(&order, "notify")).await?;
    Ok(vec![reserved, charged, shipped, notified])
}

/// The builds by name, as `versioned` and the tests select them.
pub const BUILDS: &[&str] = &["v1", "renamed", "removed", "swapped", "inserted", "retyped", "patched", "tolerant"];

/// A build by name.
pub fn build(name: &str) -> Option<impl durable::Handler + Send + Sync + 'static> {
    // Each build is its own function type: give them one shape.
    type Build = fn(DurableContext, Order) -> futures::future::LocalBoxFuture<'static, Result<Vec<String>>>;
    let f: Build = match name {
        "v1" => |c, o| Box::pin(v1(c, o)),
        "renamed" => |c, o| Box::pin(renamed(c, o)),
        "removed" => |c, o| Box::pin(removed(c, o)),
        "swapped" => |c, o| Box::pin(swapped(c, o)),
        "inserted" => |c, o| Box::pin(inserted(c, o)),
        "retyped" => |c, o| Box::pin(retyped(c, o)),
        "patched" => |c, o| Box::pin(patched(c, o)),
        "tolerant" => |c, o| Box::pin(tolerant(c, o)),
        _ => return None,
    };
    Some(handler(f))
}
