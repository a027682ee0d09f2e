//! Racing and joining futures with non-durable combinators is fine where nondeterminism
//! is: in a step body (it runs once) and in code marked `#[nondeterministic]`.
#![deny(warnings)]

use durable::{DurableContext, durable};
use futures::future::{self, join_all};
use futures::stream::FuturesUnordered;

#[durable]
async fn in_steps(ctx: DurableContext) -> durable::Result<u32> {
    let both = ctx
        .step("both", async |_| {
            let (a, b) = tokio::join!(async { 1 }, async { 2 });
            let (c, d) = future::try_join(async { Ok::<u32, durable::Error>(3) }, async { Ok(4) }).await?;
            Ok(a + b + c + d)
        })
        .await?;
    let first = ctx
        .step("first", async |_| {
            let winner = tokio::select! {
                a = async { 1 } => a,
                b = async { 2 } => b,
            };
            let every: u32 = join_all((0..3).map(|i| async move { i })).await.into_iter().sum();
            let unordered: FuturesUnordered<future::Ready<u32>> = FuturesUnordered::new();
            Ok(winner + every + u32::try_from(unordered.len()).unwrap_or(0))
        })
        .await?;
    Ok(both + first)
}

#[durable]
async fn marked(ctx: DurableContext) -> durable::Result<u32> {
    // Only a local cache warm-up whose outcome never steers the function.
    #[nondeterministic]
    tokio::select! {
        _ = async {} => {}
        _ = async {} => {}
    }
    #[nondeterministic]
    let (a, b) = futures::join!(async { 1 }, async { 2 });
    let every = #[nondeterministic]
    join_all((0..3).map(|i| async move { i })).await;
    #[nondeterministic]
    {
        let tasks: tokio::task::JoinSet<u32> = tokio::task::JoinSet::new();
        drop(tasks);
    }
    let sum = a + b + every.into_iter().sum::<u32>();
    ctx.step("record", async move |_| Ok(sum)).await
}

fn main() {
    let _ = (in_steps, marked);
}
