use std::time::SystemTime;

use durable::{DurableContext, durable};

#[durable]
async fn logged(ctx: DurableContext) -> durable::Result<()> {
    println!("started at {:?}", SystemTime::now());
    let v = vec![rand::random::<u8>(), 2];
    ctx.step("work", async move |_| Ok(v.len())).await?;
    Ok(())
}

fn main() {
    let _ = logged;
}
