use std::time::Duration;

use durable::{DurableContext, durable};

#[durable]
async fn checkout(ctx: DurableContext) -> durable::Result<u32> {
    ctx.step("charge", async |_| {
        ctx.wait("settle", Duration::from_secs(60)).await?;
        Ok(1)
    })
    .await
}

fn main() {
    let _ = checkout;
}
