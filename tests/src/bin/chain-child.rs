//! The target of `chain-parent`'s chained invoke, as a Lambda function: it waits a second
//! (so its wake-up goes through the queue) and doubles its input.

use std::time::Duration;

use durable::prelude::*;

#[durable(name = "chain-child")]
async fn child(ctx: DurableContext, n: u32) -> Result<u32> {
    ctx.wait("breather", Duration::from_secs(1)).await?;
    ctx.step("double", async |_| Ok(n * 2)).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), durable::lambda::lambda_runtime::Error> {
    durable::lambda::run(handler(child)).await
}
