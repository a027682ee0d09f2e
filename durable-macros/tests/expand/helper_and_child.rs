//! A helper taking `&DurableContext`, called from a workflow that runs a child context
//! with durable calls nested inside it.
use durable::{DurableContext, durable};

/// Helpers get their own site table: their labels cannot clash with the caller's.
#[durable]
async fn send_email(ctx: &DurableContext, to: &str) -> durable::Result<()> {
    ctx.step("send", async |_| mailer::send(to).await).await
}

#[durable]
async fn onboard(ctx: DurableContext, user: User) -> durable::Result<()> {
    let account = ctx.step("create account", async |_| accounts::create(&user).await).await?;
    ctx.run_in_child_context("welcome", async |child| {
        send_email(&child, &user.email).await?;
        child.wait("a day later", std::time::Duration::from_secs(86_400)).await?;
        let coupon: u32 = child.random().await?;
        child.step("send coupon", async |_| mailer::coupon(&user.email, coupon).await).await
    })
    .await?;
    // Not a context: left alone (and a helper without #[durable] would get positional ids).
    let names: Vec<String> = account.members.iter().map(|m| m.name.clone()).collect();
    ctx.step(None::<&str>, async |_| audit::log(&names).await).await
}

/// No durable calls: the function comes out unchanged, with no site table.
#[durable]
async fn noop(_ctx: DurableContext) -> durable::Result<()> {
    Ok(())
}
