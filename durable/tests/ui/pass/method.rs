//! `#[durable]` on methods of an impl block, and on a generic function.
#![deny(warnings)]

use durable::{DurableContext, durable};
use serde::Serialize;
use serde::de::DeserializeOwned;

struct Shop {
    fee: u64,
}

impl Shop {
    #[durable]
    async fn checkout(&self, ctx: DurableContext, amount: u64) -> durable::Result<u64> {
        let fee = self.fee;
        let charged = ctx.step("charge", async |_| Ok(amount + fee)).await?;
        ctx.step("receipt", async |_| Ok(charged)).await
    }

    #[durable(name = "shop.refund")]
    pub async fn refund(&mut self, ctx: &DurableContext, amount: u64) -> Result<u64, durable::Error> {
        self.fee = 0;
        ctx.step("refund", async |_| Ok(amount)).await
    }

    #[durable]
    async fn echo<T>(ctx: DurableContext, input: T) -> durable::Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + 'static,
    {
        ctx.step("echo", async |_| Ok(input.clone())).await
    }
}

fn main() {
    let mut shop = Shop { fee: 1 };
    let ctx_less = &mut shop;
    let _ = ctx_less.fee;
    let _ = Shop::checkout;
    let _ = Shop::refund;
    let _ = durable::handler(Shop::echo::<String>);
}
