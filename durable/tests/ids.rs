//! Operation ids through `#[durable]`: pinned by golden values, stable when named steps are
//! inserted elsewhere, distinct per loop iteration, and named in replay errors; a change
//! that executions in flight cannot replay fails them before any new work runs.

use std::time::Duration;

use durable::model::{ExecutionStatus, Operation};
use durable::testing::TestRunner;
use durable::{DurableContext, Result, durable, handler};

mod v1 {
    use super::*;

    #[durable(name = "golden-checkout")]
    pub(crate) async fn checkout(ctx: DurableContext, items: u32) -> Result<u32> {
        let reserved = ctx.step("reserve", async |_| Ok(items)).await?;
        for i in 0..2 {
            ctx.step("pick", async |_| Ok(i)).await?;
        }
        ctx.run_in_child_context("ship", async |c| c.step("label", async |_| Ok(1)).await).await?;
        let _at = ctx.now().await?;
        ctx.wait("cool-off", Duration::from_mins(1)).await?;
        Ok(reserved)
    }
}

mod v2 {
    use super::*;

    /// `v1::checkout` with a step inserted at the top and another after the loop.
    #[durable(name = "golden-checkout")]
    pub(crate) async fn checkout(ctx: DurableContext, items: u32) -> Result<u32> {
        ctx.step("audit", async |_| Ok(0)).await?;
        let reserved = ctx.step("reserve", async |_| Ok(items)).await?;
        for i in 0..2 {
            ctx.step("pick", async |_| Ok(i)).await?;
        }
        ctx.step("weigh", async |_| Ok(2)).await?;
        ctx.run_in_child_context("ship", async |c| c.step("label", async |_| Ok(1)).await).await?;
        let _at = ctx.now().await?;
        ctx.wait("cool-off", Duration::from_mins(1)).await?;
        Ok(reserved)
    }
}

fn id_of<'a>(ops: &'a [Operation], name: &str, nth: usize) -> &'a str {
    &ops.iter().filter(|o| o.name.as_deref() == Some(name)).nth(nth).unwrap_or_else(|| panic!("no {name}")).id
}

// Golden values for `durable-id-v1` through the macro (computed independently with
// Python's hashlib). If one changes, every execution in flight breaks.
const GOLDEN: &[(&str, usize, &str)] = &[
    ("reserve", 0, "1163a9493df00eed743b2fdaba95bc92"),
    ("pick", 0, "a40b784fcc061f0242208a7e948560fb"),
    ("pick", 1, "b12511dfa0ebb3804350ff2fbfbe1499"),
    ("ship", 0, "affd1581e2d577c4ed44b3abb7f295b8"),
    ("label", 0, "e7c687dabcfe7e34b3b97c8accdb9aab"),
    ("cool-off", 0, "155f8940d9145f8a98a99b3641cfa020"),
];

#[tokio::test]
async fn ids_are_pinned_stable_and_distinct() {
    let runner = TestRunner::new();
    let a = runner.run(v1::checkout, 3).await;
    let b = runner.run(v2::checkout, 3).await;
    assert_eq!(a.status(), ExecutionStatus::Succeeded);
    assert_eq!(b.status(), ExecutionStatus::Succeeded);
    for (name, nth, want) in GOLDEN {
        assert_eq!(id_of(&a.operations, name, *nth), *want, "{name} #{nth}");
        assert_eq!(id_of(&b.operations, name, *nth), *want, "{name} #{nth} moved when other steps were inserted");
    }
    assert_ne!(id_of(&a.operations, "pick", 0), id_of(&a.operations, "pick", 1), "loop iterations differ");
    let label = a.operations.iter().find(|o| o.name.as_deref() == Some("label")).unwrap();
    assert_eq!(label.parent_id.as_deref(), Some(id_of(&a.operations, "ship", 0)));
    for op in &a.operations {
        assert!(op.id.len() <= 64 && op.id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}

mod appended {
    use super::*;

    /// `v1::checkout` with a step added after its last operation: past what executions in
    /// flight recorded, so they run it when they get there.
    #[durable(name = "golden-checkout")]
    pub(crate) async fn checkout(ctx: DurableContext, items: u32) -> Result<u32> {
        let reserved = ctx.step("reserve", async |_| Ok(items)).await?;
        for i in 0..2 {
            ctx.step("pick", async |_| Ok(i)).await?;
        }
        ctx.run_in_child_context("ship", async |c| c.step("label", async |_| Ok(1)).await).await?;
        let _at = ctx.now().await?;
        ctx.wait("cool-off", Duration::from_mins(1)).await?;
        ctx.step("thank", async |_| Ok(())).await?;
        Ok(reserved)
    }
}

mod renamed {
    use super::*;

    /// `v1::checkout` after an edit that renamed the "reserve" step.
    #[durable(name = "golden-checkout")]
    pub(crate) async fn checkout(ctx: DurableContext, items: u32) -> Result<u32> {
        let reserved = ctx.step("hold-stock", async |_| Ok(items)).await?;
        ctx.wait("cool-off", Duration::from_mins(1)).await?;
        Ok(reserved)
    }

    /// `v1::checkout` after an edit that turned the first wait into a step.
    #[durable(name = "golden-checkout")]
    pub(crate) async fn retyped(ctx: DurableContext, items: u32) -> Result<u32> {
        let reserved = ctx.step("reserve", async |_| Ok(items)).await?;
        for i in 0..2 {
            ctx.step("pick", async |_| Ok(i)).await?;
        }
        ctx.run_in_child_context("ship", async |c| c.step("label", async |_| Ok(1)).await).await?;
        let _at = ctx.now().await?;
        ctx.step("cool-off", async |_| Ok(())).await?;
        Ok(reserved)
    }
}

#[tokio::test]
async fn changed_code_is_detected_and_named() {
    let runner = TestRunner::new();
    // An in-flight execution of v1, suspended in its wait.
    let arn = runner.start("checkout", None, Some("3".into())).await.unwrap();
    runner.invoke_once(&handler(v1::checkout), &arn).await;
    // v2 inserted a named step before recorded ones: their ids did not move, but the new
    // step would run in the middle of a replay, so the replay fails before it runs.
    let run = runner.drive(&handler(v2::checkout), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let msg = run.error().unwrap().error_message.clone().unwrap();
    assert!(msg.contains("golden-checkout, step \"audit\""), "names the call site: {msg}");
    assert!(msg.contains("recorded operation #1 of the root context, STEP/Step named \"reserve\""), "{msg}");
    assert!(run.operation("audit").is_none(), "the inserted step did not run");
    // A step added after the last recorded operation is new work past the history: fine.
    let arn = runner.start("checkout", None, Some("3".into())).await.unwrap();
    runner.invoke_once(&handler(v1::checkout), &arn).await;
    let ok = runner.drive(&handler(appended::checkout), &arn).await;
    assert_eq!(ok.status(), ExecutionStatus::Succeeded, "{:?}", ok.error());
    assert!(ok.operation("thank").is_some());

    let arn = runner.start("checkout", None, Some("3".into())).await.unwrap();
    runner.invoke_once(&handler(v1::checkout), &arn).await;
    let run = runner.drive(&handler(renamed::retyped), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let msg = run.error().unwrap().error_message.clone().unwrap();
    assert!(msg.contains("golden-checkout, step \"cool-off\""), "names the call site: {msg}");
    assert!(msg.contains("recorded WAIT/Wait named \"cool-off\""), "names the recorded side: {msg}");
    assert!(msg.contains("now calls STEP/Step named \"cool-off\""), "names the current side: {msg}");
    run.assert_well_formed();

    // A renamed step gets a new id, while the recorded "reserve" is still ahead: the
    // replay fails before the renamed step's body runs again.
    let arn = runner.start("checkout", None, Some("3".into())).await.unwrap();
    runner.invoke_once(&handler(v1::checkout), &arn).await;
    let run = runner.drive(&handler(renamed::checkout), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let msg = run.error().unwrap().error_message.clone().unwrap();
    assert!(msg.contains("STEP/Step named \"hold-stock\"") && msg.contains("named \"reserve\""), "{msg}");
    assert!(run.operation("hold-stock").is_none());
}
