//! A pinned name and a custom crate path, on a method, with an opt-out.
use my_sdk::durable::{self, DurableContext};

pub struct Billing {
    pub gateway: Gateway,
}

impl Billing {
    #[durable::durable(name = "billing.invoice", crate = ::my_sdk::durable)]
    pub async fn invoice(&self, ctx: &mut DurableContext, account: AccountId) -> Result<Invoice, durable::Error> {
        #[nondeterministic] // only logged, never steers the workflow
        let started = std::time::Instant::now();
        let invoice = ctx.step("draft", async |_| self.gateway.draft(account).await).await?;
        ctx.wait("review window", std::time::Duration::from_secs(3600)).await?;
        let sent = ctx.step("send", async |_| self.gateway.send(&invoice).await).await?;
        tracing::info!(elapsed = ?started.elapsed(), "invoiced");
        Ok(sent)
    }
}
