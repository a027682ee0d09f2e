use durable::{DurableContext, durable};

// Stands in for the chrono crate: the lint goes by the path as written.
mod chrono {
    pub struct Utc;
    impl Utc {
        pub fn now() -> u64 {
            0
        }
    }
    pub struct Local;
    impl Local {
        pub fn now() -> u64 {
            0
        }
    }
}

use chrono::Local;

#[durable]
async fn dated(ctx: DurableContext) -> durable::Result<u64> {
    let utc = chrono::Utc::now();
    ctx.run_in_child_context("local", async |child| {
        let local = Local::now();
        child.step("store", async |_| Ok(local)).await
    })
    .await
    .map(|l| l + utc)
}

fn main() {
    let _ = dated;
}
