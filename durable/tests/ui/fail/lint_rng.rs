use durable::{DurableContext, durable};
use rand::{Rng as _, rng};

// Stands in for rand 0.8's `thread_rng`: the lint goes by the path as written.
mod old_rand {
    pub fn thread_rng() -> u64 {
        4
    }
}

#[durable]
async fn draw(ctx: DurableContext) -> durable::Result<u64> {
    let a = rand::rng().next_u64();
    let b = rng().next_u64();
    let c = old_rand::thread_rng();
    ctx.step("use", async |_| Ok(a ^ b ^ c)).await
}

fn main() {
    let _ = draw;
}
