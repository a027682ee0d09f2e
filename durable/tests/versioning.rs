//! Changing code under executions in flight: `patched` keeps old executions on the old
//! path, and a combinator whose members changed is refused with a clear message.

use std::future::IntoFuture;
use std::time::Duration;

use durable::model::{ExecutionStatus, OperationType};
use durable::testing::TestRunner;
use durable::{DurableContext, Error, PATCH_SUB_TYPE, Result, durable, handler};

mod v1 {
    use super::*;

    #[durable(name = "shipping")]
    pub(crate) async fn ship(ctx: DurableContext, order: String) -> Result<Vec<String>> {
        let mut path = vec![ctx.step("pack", async |_| Ok::<_, Error>(format!("packed {order}"))).await?];
        ctx.wait("pickup", Duration::from_mins(10)).await?;
        path.push(ctx.step("send", async |_| Ok::<_, Error>("sent".to_owned())).await?);
        Ok(path)
    }
}

mod v2 {
    use super::*;

    /// v1 with an insurance step added, behind a patch.
    #[durable(name = "shipping")]
    pub(crate) async fn ship(ctx: DurableContext, order: String) -> Result<Vec<String>> {
        let mut path = vec![ctx.step("pack", async |_| Ok::<_, Error>(format!("packed {order}"))).await?];
        if ctx.patched("insure-parcels").await? {
            path.push(ctx.step("insure", async |_| Ok::<_, Error>("insured".to_owned())).await?);
        }
        ctx.wait("pickup", Duration::from_mins(10)).await?;
        path.push(ctx.step("send", async |_| Ok::<_, Error>("sent".to_owned())).await?);
        Ok(path)
    }
}

#[tokio::test]
async fn patched_keeps_old_executions_on_the_old_path_and_new_ones_on_the_new() {
    let runner = TestRunner::new();
    let old_code = handler(v1::ship);
    let new_code = handler(v2::ship);

    // Started on v1, suspended at the pickup wait, resumed after v2 is deployed.
    let old = runner.start("shipping", None, Some("\"o-1\"".into())).await.unwrap();
    let waiting = runner.settle(&old_code, &old).await;
    assert_eq!(waiting.status(), ExecutionStatus::Running);
    let run = runner.drive(&new_code, &old).await;
    assert_eq!(run.result::<Vec<String>>().unwrap(), ["packed o-1", "sent"], "the old path");
    assert!(run.operation("insure-parcels").is_none(), "no marker in an old execution");
    assert!(run.operation("insure").is_none());

    // Started on v2: the marker is recorded and every replay takes the new path.
    let new = runner.start("shipping", None, Some("\"o-2\"".into())).await.unwrap();
    let run = runner.drive(&new_code, &new).await;
    assert_eq!(run.result::<Vec<String>>().unwrap(), ["packed o-2", "insured", "sent"]);
    assert_eq!(run.invocations(), 2, "the second invocation replayed through the marker");
    let marker = run.operation("insure-parcels").unwrap();
    assert_eq!(marker.op_type, OperationType::Step);
    assert_eq!(marker.sub_type.as_ref().unwrap().as_str(), PATCH_SUB_TYPE);
}

mod quotes_v1 {
    use super::*;

    #[durable(name = "quotes")]
    pub(crate) async fn best(ctx: DurableContext, (): ()) -> Result<u32> {
        let a = ctx.step("carrier a", async |_| Ok::<_, Error>(7)).into_future();
        let b = ctx.step("carrier b", async |_| Ok::<_, Error>(5)).into_future();
        let all = ctx.all("quotes", [a, b]).await?;
        ctx.wait("hold", Duration::from_secs(30)).await?;
        Ok(all.into_iter().min().unwrap_or(0))
    }
}

mod quotes_v2 {
    use super::*;

    /// A third carrier added without a patch: executions in flight cannot replay it.
    #[durable(name = "quotes")]
    pub(crate) async fn best(ctx: DurableContext, (): ()) -> Result<u32> {
        let a = ctx.step("carrier a", async |_| Ok::<_, Error>(7)).into_future();
        let b = ctx.step("carrier b", async |_| Ok::<_, Error>(5)).into_future();
        let c = ctx.step("carrier c", async |_| Ok::<_, Error>(4)).into_future();
        let all = ctx.all("quotes", [a, b, c]).await?;
        ctx.wait("hold", Duration::from_secs(30)).await?;
        Ok(all.into_iter().min().unwrap_or(0))
    }
}

#[tokio::test]
async fn a_combinator_with_different_members_fails_the_replay_clearly() {
    let runner = TestRunner::new();
    let arn = runner.start("quotes", None, Some("null".into())).await.unwrap();
    runner.settle(&handler(quotes_v1::best), &arn).await;
    let run = runner.drive(&handler(quotes_v2::best), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let error = run.error().unwrap();
    assert_eq!(error.error_type.as_deref(), Some("NonDeterministicExecutionError"));
    let message = error.error_message.as_deref().unwrap();
    assert!(message.contains("2 members") && message.contains("passes 3"), "{message}");
    assert!(message.contains("\"quotes\""), "names the call site: {message}");

    // Unchanged code replays fine, with the recorded values.
    let arn = runner.start("quotes", None, Some("null".into())).await.unwrap();
    let run = runner.drive(&handler(quotes_v1::best), &arn).await;
    assert_eq!(run.result::<u32>().unwrap(), 5);
}
