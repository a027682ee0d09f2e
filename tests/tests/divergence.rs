//! Changed code never re-runs or drops recorded work: an execution started on one build of
//! a function and resumed on another either replays (the change is one a replay
//! tolerates) or fails with `NonDeterministicExecutionError` before any new work runs,
//! naming the call, the recorded operation and its position. The same verdicts from the
//! `TestRunner`, from the replay tester, and from a real resume on the embedded store in
//! another process (`src/bin/versioned.rs`).

use std::process::Command;
use std::time::Duration;

use durable::model::ExecutionStatus;
use durable::prelude::*;
use durable::replay::{RecordedExecution, Verdict, check};
use durable::testing::TestRunner;
use durable_tests::versions::{Order, build, effects_of};

/// What resuming an execution of `v1` (suspended in its cool-off wait, after reserve and
/// charge) on another build must do.
struct Case {
    build: &'static str,
    /// `None`: the replay goes on and the execution succeeds. `Some`: it fails with a
    /// message containing all of these.
    diverges: Option<&'static [&'static str]>,
    /// The bodies that run after the resume, in order.
    runs_after: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        build: "renamed",
        diverges: Some(&[
            "at payment, step \"charge-card\"",
            "STEP/Step named \"charge-card\"",
            "which the history does not have",
            "recorded operation #2 of the root context, STEP/Step named \"charge\"",
            "ctx.patched(",
        ]),
        runs_after: &[],
    },
    Case {
        build: "removed",
        diverges: Some(&[
            "at payment, wait \"cool-off\"",
            "recorded #3 of the root context",
            "recorded operation #2, STEP/Step named \"charge\"",
            "never called it",
            "ctx.patched(",
        ]),
        runs_after: &[],
    },
    Case {
        build: "swapped",
        diverges: Some(&[
            "at payment, step \"charge\"",
            "recorded #2 of the root context",
            "recorded operation #1, STEP/Step named \"reserve\"",
            "ctx.patched(",
        ]),
        runs_after: &[],
    },
    Case {
        build: "inserted",
        diverges: Some(&[
            "at payment, step \"fraud-check\"",
            "which the history does not have",
            "recorded operation #2 of the root context, STEP/Step named \"charge\"",
            "ctx.patched(",
        ]),
        runs_after: &[],
    },
    Case {
        build: "retyped",
        diverges: Some(&[
            "at payment, wait \"charge\"",
            "the history recorded STEP/Step named \"charge\" at the root",
            "now calls WAIT/Wait named \"charge\"",
            "ctx.patched(",
        ]),
        runs_after: &[],
    },
    Case { build: "patched", diverges: None, runs_after: &["ship"] },
    Case { build: "tolerant", diverges: None, runs_after: &["ship", "notify"] },
];

fn effects_file(dir: &tempfile::TempDir) -> String {
    dir.path().join("effects").to_string_lossy().into_owned()
}

fn input(id: &str, effects: &str) -> String {
    serde_json::to_string(&Order { id: id.to_owned(), effects: effects.to_owned() }).unwrap()
}

fn check_divergence(case: &Case, status: ExecutionStatus, error: Option<&str>, ran: &[String], before: usize) {
    let after: Vec<&str> = ran[before..].iter().map(String::as_str).collect();
    match case.diverges {
        Some(wanted) => {
            assert_eq!(status, ExecutionStatus::Failed, "{}: a divergence fails the execution", case.build);
            let error = error.unwrap_or_else(|| panic!("{}: no error", case.build));
            assert!(error.starts_with("NonDeterministicExecutionError"), "{}: {error}", case.build);
            for w in wanted {
                assert!(error.contains(w), "{}: the message lacks {w:?}:\n{error}", case.build);
            }
        }
        None => assert_eq!(status, ExecutionStatus::Succeeded, "{}: {error:?}", case.build),
    }
    assert_eq!(after, case.runs_after, "{}: the bodies that ran after the resume", case.build);
}

#[tokio::test]
async fn a_resume_on_changed_code_replays_or_fails_before_new_work_on_the_test_runner() {
    let dir = tempfile::tempdir().unwrap();
    let effects = effects_file(&dir);
    let runner = TestRunner::new();
    let v1 = build("v1").unwrap();
    for case in CASES {
        let id = format!("order-{}", case.build);
        let arn = runner.start("payment", None, Some(input(&id, &effects))).await.unwrap();
        let waiting = runner.settle(&v1, &arn).await;
        assert_eq!(waiting.status(), ExecutionStatus::Running, "suspended in the cool-off wait");
        let before = effects_of(&effects, &id).len();
        assert_eq!(before, 2, "reserve and charge ran once");

        let changed = build(case.build).unwrap();
        let run = runner.drive(&changed, &arn).await;
        let error = run.error().map(ToString::to_string);
        check_divergence(case, run.status(), error.as_deref(), &effects_of(&effects, &id), before);
        run.assert_well_formed();
    }

    // A new execution on the patched build takes the new path, and replays it.
    let arn = runner.start("payment", None, Some(input("new", &effects))).await.unwrap();
    let run = runner.drive(&build("patched").unwrap(), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Succeeded);
    assert_eq!(effects_of(&effects, "new"), ["reserve", "fraud-check", "charge", "ship"]);
    assert!(run.invocations() >= 2, "the path with the patch marker replayed after the wait");
}

#[tokio::test]
async fn the_replay_tester_gives_the_same_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let effects = effects_file(&dir);
    let runner = TestRunner::new();
    let arn = runner.start("payment", None, Some(input("saved", &effects))).await.unwrap();
    let history = runner.settle(&build("v1").unwrap(), &arn).await.history_json();
    let recorded = RecordedExecution::from_json(&history.to_string()).unwrap();
    let ran = effects_of(&effects, "saved").len();
    for case in CASES {
        let report = check(&build(case.build).unwrap(), &recorded).await;
        match (case.diverges, &report.verdict) {
            (Some(wanted), Verdict::Diverged(d)) => {
                for w in wanted {
                    assert!(d.message.contains(w), "{}: the report lacks {w:?}:\n{report}", case.build);
                }
            }
            (None, Verdict::Compatible) => {}
            _ => panic!("{}: unexpected verdict\n{report}", case.build),
        }
    }
    assert_eq!(effects_of(&effects, "saved").len(), ran, "the replay tester ran no body");
}

/// Runs `versioned` and returns its standard output, failing the test on an error.
fn versioned(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_versioned")).args(args).output().expect("versioned runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "versioned {args:?} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn line<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
}

#[test]
fn a_real_resume_on_the_embedded_store_across_two_builds() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    let effects = effects_file(&dir);
    for case in CASES {
        let name = format!("deploy-{}", case.build);
        // The first build runs until it suspends for an hour; the process ends.
        let out = versioned(&[store, "start", "v1", &name, &effects]);
        let arn = line(&out, "arn").expect("an arn").to_owned();
        let before = effects_of(&effects, &name);
        assert_eq!(before, ["reserve", "charge"]);
        // Another process, on the changed build, an hour later.
        let out = versioned(&[store, "resume", case.build, &arn]);
        let status = match line(&out, "status") {
            Some("SUCCEEDED") => ExecutionStatus::Succeeded,
            Some("FAILED") => ExecutionStatus::Failed,
            other => panic!("{}: status {other:?} in {out}", case.build),
        };
        check_divergence(case, status, line(&out, "error"), &effects_of(&effects, &name), before.len());
    }
}

// ---- concurrent code: members are checked as a set, each one's operations in order ----

mod concurrent {
    use super::*;
    use durable_tests::versions::effect;

    /// Three items, each a step, a wait as long as its index says, and another step: they
    /// finish in another order than they start, and resume across invocations.
    #[durable(name = "fan-out")]
    pub(super) async fn map_v1(ctx: DurableContext, order: Order) -> Result<u32> {
        let items = vec![3u64, 1, 2];
        let out = ctx
            .map("items", items, async |c, minutes, i| {
                c.step("take", async |_| effect(&order, &format!("take-{i}"))).await?;
                c.wait("settle", Duration::from_mins(minutes)).await?;
                c.step("put", async |_| effect(&order, &format!("put-{i}"))).await?;
                Ok(minutes as u32)
            })
            .await?;
        Ok(out.into_results()?.iter().sum())
    }

    /// Each item's "take" renamed.
    #[durable(name = "fan-out")]
    pub(super) async fn map_renamed(ctx: DurableContext, order: Order) -> Result<u32> {
        let items = vec![3u64, 1, 2];
        let out = ctx
            .map("items", items, async |c, minutes, i| {
                c.step("grab", async |_| effect(&order, &format!("grab-{i}"))).await?;
                c.wait("settle", Duration::from_mins(minutes)).await?;
                c.step("put", async |_| effect(&order, &format!("put-{i}"))).await?;
                Ok(minutes as u32)
            })
            .await?;
        Ok(out.into_results()?.iter().sum())
    }

    /// One item fewer than the executions in flight recorded.
    #[durable(name = "fan-out")]
    pub(super) async fn map_shrunk(ctx: DurableContext, order: Order) -> Result<u32> {
        let items = vec![3u64, 1];
        let out = ctx
            .map("items", items, async |c, minutes, i| {
                c.step("take", async |_| effect(&order, &format!("take-{i}"))).await?;
                c.wait("settle", Duration::from_mins(minutes)).await?;
                c.step("put", async |_| effect(&order, &format!("put-{i}"))).await?;
                Ok(minutes as u32)
            })
            .await?;
        Ok(out.into_results()?.iter().sum())
    }

    /// Two members of `all` that run several operations each, and a race whose loser had
    /// started a wait; then a step after both.
    #[durable(name = "members")]
    pub(super) async fn members_v1(ctx: DurableContext, order: Order) -> Result<String> {
        let a = async {
            ctx.step("a1", async |_| effect(&order, "a1")).await?;
            ctx.wait("a-wait", Duration::from_mins(5)).await?;
            ctx.step("a2", async |_| effect(&order, "a2")).await
        };
        let b = async {
            ctx.step("b1", async |_| effect(&order, "b1")).await?;
            ctx.wait("b-wait", Duration::from_mins(1)).await?;
            ctx.step("b2", async |_| effect(&order, "b2")).await
        };
        let both = ctx.all("both", (a, b)).await?;
        let quick = ctx.step("quick", async |_| effect(&order, "quick"));
        let slow = async { ctx.wait("slow", Duration::from_hours(1)).await.map(|()| "slow".to_owned()) };
        let winner = ctx.race("first", (quick, slow)).await?;
        ctx.wait("after", Duration::from_mins(1)).await?;
        let last = ctx.step("last", async |_| effect(&order, "last")).await?;
        Ok(format!("{both:?} {winner} {last}"))
    }

    /// `members_v1` with member b's second step renamed.
    #[durable(name = "members")]
    pub(super) async fn members_renamed(ctx: DurableContext, order: Order) -> Result<String> {
        let a = async {
            ctx.step("a1", async |_| effect(&order, "a1")).await?;
            ctx.wait("a-wait", Duration::from_mins(5)).await?;
            ctx.step("a2", async |_| effect(&order, "a2")).await
        };
        let b = async {
            ctx.step("b1", async |_| effect(&order, "b1")).await?;
            ctx.wait("b-wait", Duration::from_mins(1)).await?;
            ctx.step("b2-renamed", async |_| effect(&order, "b2-renamed")).await
        };
        let both = ctx.all("both", (a, b)).await?;
        let quick = ctx.step("quick", async |_| effect(&order, "quick"));
        let slow = async { ctx.wait("slow", Duration::from_hours(1)).await.map(|()| "slow".to_owned()) };
        let winner = ctx.race("first", (quick, slow)).await?;
        ctx.wait("after", Duration::from_mins(1)).await?;
        let last = ctx.step("last", async |_| effect(&order, "last")).await?;
        Ok(format!("{both:?} {winner} {last}"))
    }
}

/// Runs one invocation at a time, moving the clock a minute between them, until the
/// execution ends: members resume in several invocations, in another order than they
/// started.
async fn step_through(runner: &TestRunner, handler: &dyn durable::Handler, arn: &str) -> ExecutionStatus {
    for _ in 0..100 {
        let run = runner.settle(handler, arn).await;
        if run.status() != ExecutionStatus::Running {
            return run.status();
        }
        runner.advance(Duration::from_mins(1));
    }
    panic!("the execution did not end");
}

#[tokio::test]
async fn map_items_and_combinator_members_replay_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let effects = effects_file(&dir);
    let runner = TestRunner::new();

    let map = handler(concurrent::map_v1);
    let arn = runner.start("fan-out", None, Some(input("map", &effects))).await.unwrap();
    assert_eq!(step_through(&runner, &map, &arn).await, ExecutionStatus::Succeeded);
    let ran = effects_of(&effects, "map");
    for i in 0..3 {
        assert_eq!(ran.iter().filter(|e| **e == format!("take-{i}")).count(), 1, "{ran:?}");
        assert_eq!(ran.iter().filter(|e| **e == format!("put-{i}")).count(), 1, "{ran:?}");
    }
    assert_ne!(ran[3..], ["put-0", "put-1", "put-2"], "items finished in another order than they started");

    let members = handler(concurrent::members_v1);
    let arn = runner.start("members", None, Some(input("members", &effects))).await.unwrap();
    assert_eq!(step_through(&runner, &members, &arn).await, ExecutionStatus::Succeeded);
    let ran = effects_of(&effects, "members");
    assert_eq!(ran.len(), 6, "every body once: {ran:?}");
    assert_eq!(ran.last().map(String::as_str), Some("last"));
}

#[tokio::test]
async fn changed_concurrent_code_fails_before_new_work() {
    let dir = tempfile::tempdir().unwrap();
    let effects = effects_file(&dir);
    let runner = TestRunner::new();

    // Items suspended in their waits; each item's first step renamed.
    let arn = runner.start("fan-out", None, Some(input("map-renamed", &effects))).await.unwrap();
    runner.settle(&handler(concurrent::map_v1), &arn).await;
    let run = runner.drive(&handler(concurrent::map_renamed), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let msg = run.error().unwrap().to_string();
    assert!(msg.contains("STEP/Step named \"grab\"") && msg.contains("STEP/Step named \"take\""), "{msg}");
    assert!(msg.contains("context \"map-item-"), "names the item's context: {msg}");
    assert!(!effects_of(&effects, "map-renamed").iter().any(|e| e.starts_with("grab")), "no renamed body ran");

    // A recorded item the code no longer has.
    let arn = runner.start("fan-out", None, Some(input("map-shrunk", &effects))).await.unwrap();
    runner.settle(&handler(concurrent::map_v1), &arn).await;
    let run = runner.drive(&handler(concurrent::map_shrunk), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let msg = run.error().unwrap().to_string();
    assert!(msg.contains("CONTEXT/MapIteration named \"map-item-2\"") && msg.contains("never called"), "{msg}");

    // A member's operation renamed, while the other member still replays: the new step
    // waits for the recorded ones, which never come, and the replay fails without running it.
    let arn = runner.start("members", None, Some(input("members-renamed", &effects))).await.unwrap();
    runner.settle(&handler(concurrent::members_v1), &arn).await;
    runner.advance(Duration::from_mins(2));
    runner.settle(&handler(concurrent::members_v1), &arn).await;
    let before = effects_of(&effects, "members-renamed");
    assert!(before.contains(&"b2".to_owned()), "member b finished in the first build: {before:?}");
    let run = runner.drive(&handler(concurrent::members_renamed), &arn).await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let msg = run.error().unwrap().to_string();
    assert!(msg.contains("b2-renamed") && msg.contains("named \"b2\""), "{msg}");
    assert_eq!(effects_of(&effects, "members-renamed"), before, "nothing new ran");
}
