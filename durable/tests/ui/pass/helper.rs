//! A helper taking `&DurableContext` (and one taking `&mut`), called from a workflow.
#![deny(warnings)]

use durable::{DurableContext, durable};

#[durable]
async fn send_email(ctx: &DurableContext, to: &str) -> durable::Result<u32> {
    let to = to.to_owned();
    ctx.step("send", async move |_| Ok(to.len() as u32)).await
}

#[durable]
async fn bump(ctx: &mut DurableContext) -> Result<u64, durable::Error> {
    ctx.random().await
}

#[durable]
async fn onboard(mut ctx: DurableContext, email: String) -> durable::Result<u64> {
    let sent = send_email(&ctx, &email).await?;
    let coupon = ctx
        .run_in_child_context("welcome", async |child| {
            let again = send_email(&child, "second@example.com").await?;
            Ok(again)
        })
        .await?;
    let bumped = bump(&mut ctx).await?;
    Ok(u64::from(sent + coupon) + bumped)
}

fn main() {
    let _ = durable::handler(onboard);
}
