use durable::{DurableContext, durable};

#[durable]
async fn checkout(ctx: DurableContext) -> durable::Result<u32> {
    let a = ctx.step("charge", async |_| Ok::<_, durable::Error>(1)).await?;
    let b = ctx
        .run_in_child_context("retry", async |c| c.step("charge", async |_| Ok::<_, durable::Error>(2)).await)
        .await?;
    Ok(a + b)
}

fn main() {
    let _ = checkout;
}
