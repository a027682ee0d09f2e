use std::time::Instant;

use durable::{DurableContext, durable};

// Every lint and label error of a function comes out at once, not one per build.
#[durable]
async fn checkout(ctx: DurableContext) -> durable::Result<u32> {
    let started = Instant::now();
    let a = ctx.step("charge", async |_| Ok(1)).await?;
    let b = ctx.step("charge", async |_| Ok(2)).await?;
    let id = uuid::Uuid::new_v4();
    drop((started, id));
    Ok(a + b)
}

fn main() {
    let _ = checkout;
}
