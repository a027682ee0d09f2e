use durable::{DurableContext, durable};
use uuid::Uuid;

#[durable]
async fn order_id(ctx: DurableContext) -> durable::Result<String> {
    let id = Uuid::new_v4();
    ctx.step("record", async |_| Ok(id.to_string())).await
}

fn main() {
    let _ = order_id;
}
