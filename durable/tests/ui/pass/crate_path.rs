//! `crate = ..` for a re-exported `durable`, in both spellings.
#![deny(warnings)]

mod sdk {
    pub use ::durable;
}

use sdk::durable::{DurableContext, durable};

#[durable(crate = crate::sdk::durable, name = "sdk-flow")]
async fn flow(ctx: DurableContext) -> sdk::durable::Result<u32> {
    ctx.step("one", async |_| Ok(1)).await
}

#[durable(crate = "crate::sdk::durable")]
async fn flow2(ctx: DurableContext) -> sdk::durable::Result<u32> {
    ctx.step("two", async |_| Ok(2)).await
}

/// No durable calls: no site table, and nothing to warn about.
#[durable]
async fn nothing(_ctx: DurableContext) -> sdk::durable::Result<()> {
    Ok(())
}

fn main() {
    let _ = (flow, flow2, nothing);
}
