use durable::{DurableContext, durable};

#[durable]
async fn checkout(ctx: DurableContext) -> u32 {
    let _ = ctx;
    1
}

#[durable]
async fn nothing(ctx: DurableContext) {
    let _ = ctx;
}

fn main() {
    let _ = (checkout, nothing);
}
