use durable::{DurableContext, durable};

#[durable]
async fn fan_out(ctx: DurableContext) -> durable::Result<()> {
    let handle = tokio::spawn(async { 1 });
    let local = tokio::task::spawn_local(async { 2 });
    drop((handle, local));
    ctx.step("done", async |_| Ok(())).await
}

fn main() {
    let _ = fan_out;
}
