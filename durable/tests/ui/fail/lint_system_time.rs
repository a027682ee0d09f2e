use durable::{DurableContext, durable};

#[durable]
async fn stamp(ctx: DurableContext) -> durable::Result<u64> {
    let now = std::time::SystemTime::now();
    let saved = ctx.step("save", async |_| Ok(1)).await?;
    Ok(saved + now.elapsed().map_or(0, |d| d.as_secs()))
}

fn main() {
    let _ = stamp;
}
