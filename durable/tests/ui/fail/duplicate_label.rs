use durable::{DurableContext, durable};

#[durable]
async fn checkout(ctx: DurableContext) -> durable::Result<u32> {
    let a = ctx.step("charge", async |_| Ok(1)).await?;
    let b = ctx
        .run_in_child_context("retry", async |c| c.step("charge", async |_| Ok(2)).await)
        .await?;
    Ok(a + b)
}

// Only different arms of one `if` or `match` keep a label's uses apart: a then-block and
// the code after the `if` both run.
#[durable]
async fn branches(ctx: DurableContext, paid: bool) -> durable::Result<u32> {
    let a = if paid {
        ctx.step("ship", async |_| Ok::<_, durable::Error>(1)).await?
    } else {
        ctx.step("ship", async |_| Ok::<_, durable::Error>(2)).await?
    };
    let b = ctx.step("ship", async |_| Ok::<_, durable::Error>(3)).await?;
    Ok(a + b)
}

fn main() {
    let _ = checkout;
    let _ = branches;
}
