use durable::{DurableContext, durable};
use futures::future;

#[durable]
async fn both(ctx: DurableContext) -> durable::Result<u32> {
    let (a, b) = tokio::join!(async { 1 }, async { 2 });
    let (c, d) = futures::join!(async { 3 }, async { 4 });
    let (e, f) = tokio::try_join!(async { Ok::<_, durable::Error>(5) }, async { Ok(6) })?;
    let (g, h) = future::join(async { 7 }, async { 8 }).await;
    let (i, j) = future::try_join(async { Ok::<_, durable::Error>(9) }, async { Ok(10) }).await?;
    let sum = a + b + c + d + e + f + g + h + i + j;
    ctx.step("record", async move |_| Ok(sum)).await
}

fn main() {
    let _ = both;
}
