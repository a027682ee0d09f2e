//! Child contexts nested deeply: recursion through `run_in_child_context` works to any
//! depth the store can hold, in the first run and in every replay, without overflowing the
//! stack of the thread it runs on.

use std::time::Duration;

use durable_core::model::ExecutionStatus;
use durable_core::testing::TestRunner;
use durable_core::{DurableContext, Result};
use futures::future::LocalBoxFuture;

/// `depth` child contexts, one inside the other, with a step at the bottom; each level
/// adds one to the step's value.
fn nest(ctx: DurableContext, depth: u32) -> LocalBoxFuture<'static, Result<u32>> {
    Box::pin(async move {
        if depth == 0 {
            return ctx.step("leaf", async |_| Ok(0)).await;
        }
        ctx.run_in_child_context("level", async move |c| Ok(nest(c, depth - 1).await? + 1)).await
    })
}

async fn deep(ctx: DurableContext, depth: u32) -> Result<u32> {
    // The nesting is still open when the execution suspends: the replay re-enters every level.
    let inner = ctx.run_in_child_context("outer", async move |c| {
        let v = nest(c.clone(), depth).await?;
        c.wait("pause", Duration::from_secs(1)).await?;
        Ok(v)
    });
    inner.await
}

#[test]
fn ten_thousand_nested_child_contexts_run_and_replay() {
    // The test's own thread, with the stack every Rust test thread gets (2 MiB), as a
    // runner's worker thread would.
    let run = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let runner = TestRunner::new();
                let run = runner.run(deep, 10_000u32).await;
                (run.status(), run.result::<u32>().ok(), run.invocations(), run.operations.len())
            })
        })
        .unwrap()
        .join()
        .expect("the runner's thread did not crash");
    let (status, result, invocations, operations) = run;
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(result, Some(10_000));
    assert_eq!(invocations, 2, "the second invocation replayed through every level");
    assert_eq!(operations, 1 + 1 + 10_000 + 1 + 1, "execution, outer, the levels, the leaf, the wait");
}
