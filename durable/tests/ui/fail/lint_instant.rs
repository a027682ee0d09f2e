use std::time::Instant;

use durable::{DurableContext, durable};

#[durable]
async fn timed(ctx: DurableContext) -> durable::Result<u128> {
    let started = Instant::now();
    ctx.step("work", async |_| Ok(())).await?;
    Ok(started.elapsed().as_millis())
}

fn main() {
    let _ = timed;
}
