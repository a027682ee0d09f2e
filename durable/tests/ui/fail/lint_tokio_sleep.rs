use std::time::Duration;

use durable::{DurableContext, durable};

#[durable]
async fn remind(ctx: DurableContext) -> durable::Result<()> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    ctx.step("send reminder", async |_| Ok(())).await
}

fn main() {
    let _ = remind;
}
