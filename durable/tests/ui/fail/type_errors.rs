//! Type errors in rewritten calls point at the user's code, not at the attribute.
use durable::{DurableContext, durable};

#[durable]
async fn checkout(ctx: DurableContext) -> durable::Result<u32> {
    let draw: u32 = ctx.random::<u64>().await?;
    let _ = draw;
    ctx.step("charge", async |_| Ok("one")).await
}

fn main() {
    let _ = checkout;
}
