//! The workflow the fault tests run (31 operations: at-least-once and at-most-once steps, a
//! wait, a child context, a map, a callback completed from outside), the log of its step
//! bodies' runs, and the checks that an execution run under faults ended as a fault-free
//! one does.
//!
//! The same function runs in process (the local runner) and as the `fault-workflow`
//! Lambda binary (self-hosted mode); every step body notes its run in this process's log
//! and, when [`BODY_LOG_VAR`] names a file, appends it there as a JSON line, so a test can
//! count the runs of a function that ran in another process.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use durable::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The function's name (the Lambda binary's too).
pub const FUNCTION: &str = "fault-workflow";
/// The name of the callback the test completes.
pub const CALLBACK: &str = "approval";
/// What the test completes the callback with (JSON text).
pub const CALLBACK_RESULT: &str = "\"approved\"";
/// The environment variable naming a file the step bodies append their runs to.
pub const BODY_LOG_VAR: &str = "DURABLE_FAULTS_BODY_LOG";
/// How many at-most-once steps the workflow has (8 top-level, 1 in the child, 4 in the
/// map, `finish`).
pub const AT_MOST_ONCE_STEPS: usize = 14;
/// How many steps the workflow has (9 at-least-once ones besides).
pub const STEPS: usize = 23;

/// The workflow's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// What the steps compute from.
    pub base: u64,
}

/// The input every fault test starts its executions with.
pub fn input() -> Input {
    Input { base: 7 }
}

/// The workflow's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The at-least-once steps' values.
    pub at_least_once: Vec<u64>,
    /// The at-most-once steps' values.
    pub at_most_once: Vec<u64>,
    /// The child context's value.
    pub child: u64,
    /// The map's values.
    pub mapped: Vec<u64>,
    /// The callback's result.
    pub approval: String,
    /// The last step's value.
    pub finish: String,
}

/// One run of a step body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BodyRun {
    /// The execution.
    pub arn: String,
    /// The step's name (unique within the workflow).
    pub step: String,
    /// The attempt (1-based).
    pub attempt: u32,
    /// Whether the step is at-most-once.
    pub at_most_once: bool,
}

static RUNS: Mutex<Vec<BodyRun>> = Mutex::new(Vec::new());

/// The body runs noted in this process so far.
pub fn body_runs() -> Vec<BodyRun> {
    RUNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// The body runs a [`BODY_LOG_VAR`] file holds (empty if there is none).
pub fn read_body_log(path: &str) -> Vec<BodyRun> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Notes a step body's run.
fn ran(s: &StepContext, at_most_once: bool) {
    let run = BodyRun {
        arn: s.execution_arn().to_owned(),
        step: s.name().unwrap_or_default().to_owned(),
        attempt: s.attempt(),
        at_most_once,
    };
    if let Ok(path) = std::env::var(BODY_LOG_VAR) {
        let mut line = serde_json::to_string(&run).expect("a body run is JSON");
        line.push('\n');
        // One append per line: lines of concurrent processes do not interleave.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            tracing::error!("cannot append to {path}: {e}");
        }
    }
    RUNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(run);
}

/// At-most-once steps retry an interrupted attempt after a second (their bodies never
/// fail: only an interruption can retry them).
fn at_most_once_retry() -> Backoff {
    Backoff::fixed(Duration::from_secs(1)).max_attempts(6)
}

/// The workflow.
#[durable(name = "fault-workflow")]
pub async fn fault_workflow(ctx: DurableContext, input: Input) -> Result<Receipt> {
    let base = input.base;
    let mut at_least_once = Vec::new();
    let mut at_most_once = Vec::new();
    for i in 0..8u64 {
        let value = ctx
            .step(format!("alo-{i}"), async |s| {
                ran(&s, false);
                Ok(base * i + 1)
            })
            .await?;
        at_least_once.push(value);
        let value = ctx
            .step(format!("amo-{i}"), async |s| {
                ran(&s, true);
                Ok(base * i + 2)
            })
            .at_most_once()
            .retry(at_most_once_retry())
            .await?;
        at_most_once.push(value);
    }

    ctx.wait("pause", Duration::from_secs(1)).await?;

    let child = ctx
        .run_in_child_context("child", async |c: DurableContext| {
            let a: u64 = c
                .step("child-alo", async |s| {
                    ran(&s, false);
                    Ok(base + 100)
                })
                .await?;
            let b: u64 = c
                .step("child-amo", async |s| {
                    ran(&s, true);
                    Ok(base + 200)
                })
                .at_most_once()
                .retry(at_most_once_retry())
                .await?;
            Ok(a + b)
        })
        .await?;

    // One item at a time: the history's order is then the same in every run.
    let items: Vec<u64> = (1..=4).collect();
    let mapped = ctx
        .map("fan", items, async |c: DurableContext, item: u64, i: usize| {
            c.step(format!("fan-{i}"), async |s| {
                ran(&s, true);
                Ok(item * base)
            })
            .at_most_once()
            .retry(at_most_once_retry())
            .await
        })
        .max_concurrency(1)
        .await?
        .into_results()?;

    let approval = ctx.create_callback::<String>(CALLBACK).timeout(Duration::from_mins(10)).await?;
    let approval = approval.result().await?;

    let finish = ctx
        .step("finish", async |s| {
            ran(&s, true);
            Ok(format!("done-{base}"))
        })
        .at_most_once()
        .retry(at_most_once_retry())
        .await?;

    Ok(Receipt { at_least_once, at_most_once, child, mapped, approval, finish })
}

/// A history as the checks compare it: `EventType Name` per event, without the
/// `InvocationCompleted` events (their number depends on how often invocations were cut
/// short), ids, timestamps and the execution's name. Takes events as JSON (`GetDurableExecutionHistory`'s shape,
/// which is how [`durable::model::Event`] serialises).
pub fn history_shape(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["EventType"] != "InvocationCompleted")
        .map(|e| {
            let kind = e["EventType"].as_str().unwrap_or("?");
            // The execution's own events carry the execution's name, which differs per run.
            let name = if kind.starts_with("Execution") { "-" } else { e["Name"].as_str().unwrap_or("-") };
            format!("{kind} {name}")
        })
        .collect()
}

/// What a fault-free execution ends with.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The result (JSON).
    pub result: Value,
    /// [`history_shape`] of its history.
    pub history: Vec<String>,
}

/// How one execution under faults ended, against the fault-free [`Reference`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Anomalies: it did not succeed, another result, another history, an at-most-once
    /// attempt that ran twice. Empty when all is well.
    pub anomalies: Vec<String>,
    /// Which kinds of anomalies (`status`, `result`, `history`, `at-most-once`).
    pub kinds: Vec<&'static str>,
    /// Extra runs of at-least-once step bodies (expected under faults).
    pub at_least_once_reruns: usize,
    /// At-most-once steps that needed another attempt (an interrupted attempt, which
    /// at-most-once semantics do not run again).
    pub at_most_once_new_attempts: usize,
    /// What happened to those steps' earlier attempts.
    pub notes: Vec<String>,
}

impl Verdict {
    /// Whether it ended as a fault-free execution.
    pub fn ok(&self) -> bool {
        self.anomalies.is_empty()
    }
}

/// Checks one execution: `status` (`SUCCEEDED`, ...), its result (JSON), its history (JSON
/// events) and the body runs noted for it.
pub fn check(
    reference: &Reference,
    status: &str,
    result: Option<&Value>,
    history: &[Value],
    runs: &[BodyRun],
) -> Verdict {
    let mut v = Verdict::default();
    if status != "SUCCEEDED" {
        v.kinds.push("status");
        v.anomalies.push(format!("ended {status}, not SUCCEEDED"));
    }
    if status == "SUCCEEDED" && result != Some(&reference.result) {
        v.kinds.push("result");
        v.anomalies.push(format!(
            "result {} instead of {}",
            result.map_or_else(|| "none".to_owned(), Value::to_string),
            reference.result
        ));
    }
    let shape = history_shape(history);
    if shape != reference.history {
        v.kinds.push("history");
        let at = shape
            .iter()
            .zip(&reference.history)
            .position(|(a, b)| a != b)
            .unwrap_or(shape.len().min(reference.history.len()));
        let window = |h: &[String]| h[at.saturating_sub(2)..(at + 3).min(h.len())].join(" | ");
        v.anomalies.push(format!(
            "history differs from event {at} on ({} events, fault-free {}): got [{}], fault-free [{}]",
            shape.len(),
            reference.history.len(),
            window(&shape),
            window(&reference.history)
        ));
    }
    let mut per_attempt: BTreeMap<(&str, u32), usize> = BTreeMap::new();
    let mut per_step: BTreeMap<&str, (bool, usize, u32)> = BTreeMap::new();
    for r in runs {
        *per_attempt.entry((&r.step, r.attempt)).or_default() += 1;
        let e = per_step.entry(&r.step).or_insert((r.at_most_once, 0, 0));
        e.1 += 1;
        e.2 = e.2.max(r.attempt);
    }
    for ((step, attempt), n) in &per_attempt {
        if *n > 1 && per_step[step].0 {
            v.kinds.push("at-most-once");
            v.anomalies.push(format!("attempt {attempt} of at-most-once step {step} ran {n} times"));
        }
    }
    for (step, (at_most_once, n, last_attempt)) in &per_step {
        if *at_most_once {
            if *last_attempt > 1 {
                v.at_most_once_new_attempts += 1;
                for attempt in 1..*last_attempt {
                    let ran = per_attempt.contains_key(&(*step, attempt));
                    v.notes.push(if ran {
                        format!(
                            "at-most-once step {step}: attempt {attempt}'s body ran but its outcome was not recorded \
                             (the checkpoint failed), so attempt {} ran",
                            attempt + 1
                        )
                    } else {
                        format!(
                            "at-most-once step {step}: attempt {attempt} was interrupted before its body ran (its \
                             START was recorded, but the invocation saw the checkpoint fail), so attempt {} ran",
                            attempt + 1
                        )
                    });
                }
            }
        } else {
            v.at_least_once_reruns += n - 1;
        }
    }
    v.kinds.dedup();
    v
}
