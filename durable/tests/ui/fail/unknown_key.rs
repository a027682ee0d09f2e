use durable::{DurableContext, durable};

#[durable(nmae = "checkout")]
async fn checkout(ctx: DurableContext) -> durable::Result<()> {
    ctx.step("charge", async |_| Ok(())).await
}

fn main() {
    let _ = checkout;
}
