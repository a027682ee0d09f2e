//! One label in mutually exclusive branches: only one of them runs in a pass, and they
//! share the label's site key, so they cannot clash.
#![deny(warnings)]

use std::time::Duration;

use durable::{DurableContext, durable};

enum Plan {
    Ship,
    Hold,
    Cancel,
}

#[durable]
async fn settle(ctx: DurableContext, paid: bool, plan: Plan) -> durable::Result<u32> {
    let charged = if paid {
        ctx.step("charge", async |_| Ok::<_, durable::Error>(0)).await?
    } else if plan_is_free(&plan) {
        ctx.step("charge", async |_| Ok::<_, durable::Error>(1)).await?
    } else {
        ctx.wait("charge", Duration::from_secs(1)).await?;
        2
    };
    let next = match plan {
        Plan::Ship => ctx.step("next", async |_| Ok::<_, durable::Error>(10)).await?,
        Plan::Hold => {
            ctx.wait("next", Duration::from_secs(60)).await?;
            20
        }
        Plan::Cancel => {
            ctx.run_in_child_context("refund", async |c| c.step("next", async |_| Ok::<_, durable::Error>(30)).await)
                .await?
        }
    };
    for attempt in 0..3u32 {
        if attempt % 2 == 0 {
            ctx.step("poll", async |_| Ok::<_, durable::Error>(())).await?;
        } else {
            ctx.wait("poll", Duration::from_secs(5)).await?;
        }
    }
    Ok(charged + next)
}

fn plan_is_free(plan: &Plan) -> bool {
    matches!(plan, Plan::Cancel)
}

fn main() {
    let _ = settle;
}
