use durable::{DurableContext, durable};

#[durable]
async fn first_reply(ctx: DurableContext) -> durable::Result<u32> {
    let fast = async { 1 };
    let slow = async { 2 };
    // A statement...
    tokio::select! {
        _ = async {} => {}
        _ = async {} => {}
    }
    // ...and an expression.
    let winner = tokio::select! {
        a = fast => a,
        b = slow => b,
    };
    ctx.step("record", async move |_| Ok(winner)).await
}

fn main() {
    let _ = first_reply;
}
