use durable::{DurableContext, durable};

#[durable]
async fn draw(ctx: DurableContext) -> durable::Result<u64> {
    let a: u64 = rand::random();
    let b = rand::random::<u64>();
    ctx.step("use", async |_| Ok(a ^ b)).await
}

fn main() {
    let _ = draw;
}
