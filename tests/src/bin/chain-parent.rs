//! The parent of a chained invoke, as a Lambda function: it invokes `chain-child` (another
//! function) and adds one to its result. `tests/tests/selfhosted.rs` runs the pair in
//! self-hosted mode under `cargo lambda watch`: the parent's invocation invokes the child's
//! function asynchronously, and the child, when it ends, resumes the parent's.

use durable::prelude::*;

#[durable(name = "chain-parent")]
async fn parent(ctx: DurableContext, n: u32) -> Result<u32> {
    let doubled: u32 = ctx.invoke("double", "chain-child", n).await?;
    Ok(doubled + 1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), durable::lambda::lambda_runtime::Error> {
    durable::lambda::run(handler(parent)).await
}
