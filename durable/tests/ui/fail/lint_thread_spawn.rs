use durable::{DurableContext, durable};

#[durable]
async fn background(ctx: DurableContext) -> durable::Result<u32> {
    let worker = std::thread::spawn(|| 1);
    let n = worker.join().unwrap_or(0);
    ctx.step("record", async move |_| Ok(n)).await
}

fn main() {
    let _ = background;
}
