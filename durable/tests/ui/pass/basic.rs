//! A workflow using every operation of the context, with both closure forms.
#![deny(warnings)]

use std::time::{Duration, SystemTime};

use durable::{DurableContext, durable};

#[durable]
async fn workflow(ctx: DurableContext, order: u32) -> durable::Result<u64> {
    let reserved = ctx.step("reserve", async |_| Ok(1)).await?;
    let priced = ctx.step("price", |_| async move { Ok(u64::from(order) * 2) }).await?;
    let attempt = ctx.step(None::<&str>, async |step| Ok(step.attempt())).await?;
    ctx.wait("cool off", Duration::from_secs(60)).await?;
    let mut total = 0;
    for i in 0..3u64 {
        total += ctx.step("item", async move |_| Ok(i)).await?;
    }
    let child: u64 = ctx
        .run_in_child_context("child", async |c| {
            let inner = c.step("inner", async |_| Ok(5u64)).await?;
            c.wait(None::<&str>, Duration::from_secs(1)).await?;
            let _when: SystemTime = c.now().await?;
            Ok(inner)
        })
        .await?;
    let other: u64 =
        ctx.run_in_child_context("child 2", |c| async move {
            c.step("inner 2", async |_| Ok(6u64)).await
        })
        .await?;
    let now: SystemTime = ctx.now().await?;
    let random: u64 = ctx.random().await?;
    let id = ctx.uuid().await?;
    let _ = (now, id);
    Ok(reserved + priced + u64::from(attempt) + total + child + other + random)
}

fn main() {
    // The signature is still one the runners accept.
    let _ = durable::handler(workflow);
}
