use std::thread;
use std::time::Duration;

use durable::{DurableContext, durable};

#[durable]
async fn poll(ctx: DurableContext) -> durable::Result<()> {
    thread::sleep(Duration::from_secs(5));
    ctx.step("check", async |_| Ok(())).await
}

fn main() {
    let _ = poll;
}
