//! A pinned name and a custom crate path, on a method, with an opt-out.
use my_sdk::durable::{self, DurableContext};
pub struct Billing {
    pub gateway: Gateway,
}
impl Billing {
    pub async fn invoice(
        &self,
        ctx: &mut DurableContext,
        account: AccountId,
    ) -> Result<Invoice, durable::Error> {
        const __DURABLE_FN: &::core::primitive::str = "billing.invoice";
        static __DURABLE_SITES: [::my_sdk::durable::__private::Site; 3] = [
            ::my_sdk::durable::__private::Site::labelled(__DURABLE_FN, "step", "draft"),
            ::my_sdk::durable::__private::Site::labelled(
                __DURABLE_FN,
                "wait",
                "review window",
            ),
            ::my_sdk::durable::__private::Site::labelled(__DURABLE_FN, "step", "send"),
        ];
        let started = std::time::Instant::now();
        let invoice = ::my_sdk::durable::__private::at(&ctx, &__DURABLE_SITES[0])
            .step("draft", async |_| self.gateway.draft(account).await)
            .await?;
        ::my_sdk::durable::__private::at(&ctx, &__DURABLE_SITES[1])
            .wait("review window", std::time::Duration::from_secs(3600))
            .await?;
        let sent = ::my_sdk::durable::__private::at(&ctx, &__DURABLE_SITES[2])
            .step("send", async |_| self.gateway.send(&invoice).await)
            .await?;
        tracing::info!(elapsed = ? started.elapsed(), "invoiced");
        Ok(sent)
    }
}
