//! Changing code under executions in flight: `patched` keeps old executions on the old
//! path, and a combinator whose members changed is refused with a clear message.

use std::future::IntoFuture;
use std::time::Duration;

use durable::model::{ExecutionStatus, OperationType};
use durable::testing::TestRunner;
use durable::{DurableContext, PATCH_SUB_TYPE, Result, durable, handler};

mod v1 {
    use super::*;

    #[durable(name = "shipping")]
    pub(crate) async fn ship(ctx: DurableContext, order: String) -> Result<Vec<String>> {
        let mut path = vec![ctx.step("pack", async |_| Ok(format!("packed {order}"))).await?];
        ctx.wait("pickup", Duration::from_mins(10)).await?;
        path.push(ctx.step("send", async |_| Ok("sent".to_owned())).await?);
        Ok(path)
    }
}

mod v2 {
    use super::*;

    /// v1 with an insurance step added, behind a patch.
    #[durable(name = "shipping")]
    pub(crate) async fn ship(ctx: DurableContext, order: String) -> Result<Vec<String>> {
        let mut path = vec![ctx.step("pack", async |_| Ok(format!("packed {order}"))).await?];
        if ctx.patched("insure-parcels").await? {
            path.push(ctx.step("insure", async |_| Ok("insured".to_owned())).await?);
        }
        ctx.wait("pickup", Duration::from_mins(10)).await?;
        path.push(ctx.step("send", async |_| Ok("sent".to_owned())).await?);
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
        let a = ctx.step("carrier a", async |_| Ok(7)).into_future();
        let b = ctx.step("carrier b", async |_| Ok(5)).into_future();
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
        let a = ctx.step("carrier a", async |_| Ok(7)).into_future();
        let b = ctx.step("carrier b", async |_| Ok(5)).into_future();
        let c = ctx.step("carrier c", async |_| Ok(4)).into_future();
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

// ---- the replay tester ----

mod changed {
    use super::*;

    /// v1 with the result type of "pack" changed: recorded results no longer deserialise.
    #[durable(name = "shipping")]
    pub(crate) async fn retyped(ctx: DurableContext, order: String) -> Result<Vec<String>> {
        let size: u32 = ctx.step("pack", async |_| Ok(order.len() as u32)).await?;
        ctx.wait("pickup", Duration::from_mins(10)).await?;
        Ok(vec![size.to_string()])
    }

    /// v1 with the final result computed differently.
    #[durable(name = "shipping")]
    pub(crate) async fn reworded(ctx: DurableContext, order: String) -> Result<Vec<String>> {
        let packed = ctx.step("pack", async |_| Ok(format!("packed {order}"))).await?;
        ctx.wait("pickup", Duration::from_mins(10)).await?;
        let sent = ctx.step("send", async |_| Ok("sent".to_owned())).await?;
        Ok(vec![sent, packed])
    }

    /// v1 with a step inserted before the wait, without a patch.
    #[durable(name = "shipping")]
    pub(crate) async fn inserted(ctx: DurableContext, order: String) -> Result<Vec<String>> {
        let packed = ctx.step("pack", async |_| Ok(format!("packed {order}"))).await?;
        ctx.step("weigh", async |_| Ok(1)).await?;
        ctx.wait("pickup", Duration::from_mins(10)).await?;
        let sent = ctx.step("send", async |_| Ok("sent".to_owned())).await?;
        Ok(vec![packed, sent])
    }
}

mod unlabelled_v1 {
    use super::*;

    #[durable(name = "unlabelled")]
    pub(crate) async fn f(ctx: DurableContext, label: String) -> Result<()> {
        ctx.step(label.as_str(), async |_| Ok(())).await?;
        ctx.wait(durable::Name::NONE, Duration::from_secs(5)).await?;
        Ok(())
    }
}

mod unlabelled_v2 {
    use super::*;

    /// The two unlabelled calls swapped: the first unlabelled site is now a wait.
    #[durable(name = "unlabelled")]
    pub(crate) async fn f(ctx: DurableContext, label: String) -> Result<()> {
        ctx.wait(durable::Name::NONE, Duration::from_secs(5)).await?;
        ctx.step(label.as_str(), async |_| Ok(())).await?;
        Ok(())
    }
}

fn recorded(history: &impl ToString) -> durable::replay::RecordedExecution {
    durable::replay::RecordedExecution::from_json(&history.to_string()).expect("a saved history reads back")
}

#[tokio::test]
async fn the_replay_tester_accepts_compatible_code_and_names_the_first_divergence() {
    use durable::replay::{Verdict, check};

    let runner = TestRunner::new();
    // A finished execution of v1, and one suspended at the pickup wait.
    let done = runner.run(v1::ship, "o-1").await;
    assert_eq!(done.status(), ExecutionStatus::Succeeded);
    let done = recorded(&done.history_json());
    let arn = runner.start("shipping", None, Some("\"o-2\"".into())).await.unwrap();
    let waiting = runner.settle(&handler(v1::ship), &arn).await;
    let waiting = recorded(&waiting.history_json());

    // The same code, and v2 with its patch, replay both.
    for (name, recording) in [("finished", &done), ("suspended", &waiting)] {
        let report = check(&handler(v1::ship), recording).await;
        report.assert_compatible();
        assert!(report.unreached.is_empty(), "{name}: {report}");
        check(&handler(v2::ship), recording).await.assert_compatible();
    }
    let report = check(&handler(v1::ship), &done).await;
    assert_eq!(report.replayed_operations, 3, "pack, pickup, send");

    // A changed result type: the recorded value no longer reads.
    let report = check(&handler(changed::retyped), &waiting).await;
    let Verdict::Failed { error } = &report.verdict else { panic!("expected a failure: {report}") };
    assert_eq!(error.error_type.as_deref(), Some("SerDesError"), "{report}");

    // A finished execution that would now end with another result.
    let report = check(&handler(changed::reworded), &done).await;
    assert!(matches!(report.verdict, Verdict::OutcomeChanged { .. }), "{report}");
    assert!(report.to_string().contains("[\"packed o-1\",\"sent\"]"), "{report}");

    // An unpatched insertion before recorded work: diverged, as the real replay fails,
    // naming the new call and the recorded operation it would pass.
    let report = check(&handler(changed::inserted), &waiting).await;
    let Verdict::Diverged(d) = &report.verdict else { panic!("expected a divergence: {report}") };
    assert!(d.call_site.contains("weigh"), "{report}");
    assert_eq!(d.recorded.as_ref().unwrap().name.as_deref(), Some("pickup"), "{report}");
    assert_eq!(d.current.as_ref().unwrap().name.as_deref(), Some("weigh"), "{report}");

    // Swapped unlabelled calls: same id, different operation.
    let arn = runner.start("unlabelled", None, Some("\"tidy\"".into())).await.unwrap();
    let history = runner.settle(&handler(unlabelled_v1::f), &arn).await.history_json();
    let report = check(&handler(unlabelled_v2::f), &recorded(&history)).await;
    let Verdict::Diverged(d) = &report.verdict else { panic!("expected a divergence: {report}") };
    assert_eq!(d.recorded.as_ref().unwrap().op_type, OperationType::Step);
    assert_eq!(d.current.as_ref().unwrap().op_type, OperationType::Wait);
    assert!(report.to_string().starts_with("diverged at "), "{report}");
}

#[tokio::test]
async fn the_replay_tester_runs_no_step_body() {
    use std::sync::atomic::{AtomicU32, Ordering};
    static BODIES: AtomicU32 = AtomicU32::new(0);

    #[durable(name = "counted")]
    async fn counted(ctx: DurableContext, (): ()) -> Result<u32> {
        let a = ctx.step("a", async |_| Ok(BODIES.fetch_add(1, Ordering::SeqCst))).await?;
        ctx.wait("w", Duration::from_secs(1)).await?;
        let b = ctx.step("b", async |_| Ok(BODIES.fetch_add(1, Ordering::SeqCst))).await?;
        Ok(a + b)
    }

    let runner = TestRunner::new();
    let arn = runner.start("counted", None, Some("null".into())).await.unwrap();
    let history = runner.settle(&handler(counted), &arn).await.history_json();
    let before = BODIES.load(Ordering::SeqCst);
    let report = durable::replay::check(&handler(counted), &recorded(&history)).await;
    report.assert_compatible();
    assert_eq!(BODIES.load(Ordering::SeqCst), before, "nothing ran");
}
