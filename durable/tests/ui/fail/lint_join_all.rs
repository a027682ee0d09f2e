use durable::{DurableContext, durable};
use futures::future::{self, join_all, try_join_all};
use futures::stream::FuturesUnordered;

#[durable]
async fn fan_in(ctx: DurableContext) -> durable::Result<usize> {
    let every = join_all((0..3).map(|i| async move { i })).await;
    let ok = try_join_all((0..3).map(|i| async move { Ok::<_, durable::Error>(i) })).await?;
    let (first, _, _) = future::select_all((1..3).map(|i| Box::pin(async move { i }))).await;
    let (good, _) = future::select_ok([Box::pin(async { Ok::<_, durable::Error>(1) })]).await?;
    let either = future::select(Box::pin(async { 1 }), Box::pin(async { 2 })).await.factor_first().0;
    let unordered: FuturesUnordered<future::Ready<u32>> = FuturesUnordered::new();
    let tasks: tokio::task::JoinSet<u32> = tokio::task::JoinSet::new();
    let n = every.len() + ok.len() + unordered.len() + tasks.len();
    let total = n + usize::try_from(first + good + either).unwrap_or(0);
    ctx.step("record", async move |_| Ok(total)).await
}

fn main() {
    let _ = fan_in;
}
