use durable::{DurableContext, durable};

#[durable]
fn checkout(ctx: DurableContext) -> durable::Result<()> {
    let _ = ctx;
    Ok(())
}

fn main() {
    let _ = checkout;
}
