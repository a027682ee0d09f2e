use std::env;

use durable::{DurableContext, durable};

#[durable]
async fn configured(ctx: DurableContext) -> durable::Result<bool> {
    let region = std::env::var("AWS_REGION").is_ok();
    let home = env::var_os("HOME").is_some();
    ctx.step("record", async move |_| Ok(region && home)).await
}

fn main() {
    let _ = configured;
}
