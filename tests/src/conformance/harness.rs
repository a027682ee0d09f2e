//! One requirement, end to end, as AWS's validator runs it: resolve the variables, start the
//! handler with the input, run the execution (callbacks and all), then check the history,
//! the result and the logs, in that order, stopping at the first phase that fails.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use durable::model::Event;
use serde::Serialize;

use super::driver::{Finished, drive};
use super::handlers::{Registry, missing_feature};
use super::logs::{LogCapture, LogRecord, of_execution, validate_logs};
use super::matcher::match_history;
use super::placeholders::Placeholders;
use super::pyvalue::PyValue;
use super::requirement::Requirement;
use super::{crash, requirement};

/// How one requirement went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The requirement's id.
    pub id: String,
    /// Its suite.
    pub suite: String,
    /// Its description.
    pub description: String,
    /// Whether AWS marks it optional.
    pub optional: bool,
    /// Why it failed (empty: it passed).
    pub errors: Vec<String>,
}

impl Outcome {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }

    /// The failure in one line.
    pub fn reason(&self) -> Option<String> {
        (!self.errors.is_empty()).then(|| self.errors.join("; "))
    }
}

/// What `target/conformance/<ID>.json` holds: the run's variables, the execution's status
/// and result, and its whole history as `GetDurableExecutionHistory` returns it.
#[derive(Debug, Serialize)]
pub struct RunRecord {
    /// The requirement's id.
    #[serde(rename = "Id")]
    pub id: String,
    /// Each resolved variable and its value.
    #[serde(rename = "Variables")]
    pub variables: serde_json::Value,
    /// `GetDurableExecution`'s `Status`.
    #[serde(rename = "ExecutionStatus")]
    pub execution_status: String,
    /// The execution's result as its JSON text.
    #[serde(rename = "Result")]
    pub result: Option<String>,
    /// The history, `ExecutionStarted` included, with payloads.
    #[serde(rename = "Events")]
    pub events: Vec<Event>,
}

/// The reason of a requirement whose suite durable cannot express yet.
pub fn not_written_reason(suite: &str) -> String {
    format!("handler not written yet: needs {}", missing_feature(suite))
}

/// Runs one requirement on a fresh runtime and store; also returns what the run produced
/// (nothing when no handler ran).
pub fn run_requirement(req: &Requirement, registry: &Registry) -> (Outcome, Option<RunRecord>) {
    let outcome = |errors| Outcome {
        id: req.id.clone(),
        suite: req.suite.clone(),
        description: req.description.clone(),
        optional: req.optional,
        errors,
    };
    let Some(handler) = registry.get(&req.id) else {
        return (outcome(vec![not_written_reason(&req.suite)]), None);
    };
    let run = std::panic::catch_unwind(AssertUnwindSafe(|| evaluate(req, handler, registry)));
    match run {
        Ok(Ok((errors, record))) => (outcome(errors), Some(record)),
        Ok(Err(e)) => (outcome(vec![e]), None),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            (outcome(vec![format!("the harness panicked: {message}")]), None)
        }
    }
}

fn evaluate(
    req: &Requirement,
    handler: &dyn durable::Handler,
    registry: &Registry,
) -> Result<(Vec<String>, RunRecord), String> {
    let mut ctx = Placeholders::new();
    ctx.resolve_variables(req.variables.as_ref());
    let variables = PyValue::Dict(ctx.bindings().to_vec()).to_json();
    let actions = req.callback_actions.clone().map_err(|e| format!("Invalid CallbackAction: {e}"))?;
    let input = ctx.substitute(&req.input).to_json().to_string();

    let capture = LogCapture::new();
    let finished = {
        let _guard = capture.install();
        crash::reset();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot build a runtime: {e}"))?;
        rt.block_on(drive(handler, &format!("conformance-{}", req.id), registry, input, actions, &ctx))?
    };
    let errors = check(req, &finished, &capture, &mut ctx);
    let record = RunRecord {
        id: req.id.clone(),
        variables,
        execution_status: finished.status.as_str().to_owned(),
        result: finished.result.clone(),
        events: finished.events,
    };
    Ok((errors, record))
}

/// The validator's verdict on a finished run.
fn check(req: &Requirement, run: &Finished, capture: &LogCapture, ctx: &mut Placeholders) -> Vec<String> {
    let events = run.events_py();
    let logs = of_execution(capture.records(), &run.arn);
    check_run(req, run, &events, &logs, ctx)
}

/// The validator's verdict on a finished run whose history is `events` (as the service
/// returned them) and whose logs are `logs`: the history, then the result, then the logs.
pub fn check_run(
    req: &Requirement,
    run: &Finished,
    events: &[PyValue],
    logs: &[LogRecord],
    ctx: &mut Placeholders,
) -> Vec<String> {
    let expected_result = req.expected_result.as_ref().filter(|r| r.truthy());
    let mut errors = Vec::new();
    if req.async_invoke {
        // Polling: without an expected result the validator stops at the first poll whose
        // history matches; otherwise it waits for a terminal status (30 s without news
        // ends it), then matches the history and checks the result.
        if expected_result.is_none() && !req.expected_history.is_empty() {
            let mut trial = ctx.clone();
            if match_history(&req.expected_history, events, &mut trial).is_empty() {
                *ctx = trial;
                return validate_logs(&req.expected_logs, logs, ctx);
            }
        }
        errors.extend(run.errors.iter().cloned());
        if !run.settled() {
            errors.push(format!(
                "the execution is still {} and waits on something nothing completes (AWS's validator gives up after \
                 30 s without new events)",
                run.status.as_str()
            ));
        }
        if !req.expected_history.is_empty() {
            let mismatches = match_history(&req.expected_history, events, ctx);
            if !mismatches.is_empty() {
                errors.extend(mismatches);
                return errors;
            }
        }
        if let Some(expected) = expected_result {
            errors.extend(check_result(expected, run, ctx));
        }
        if !errors.is_empty() {
            return errors;
        }
    } else {
        if req.expected_history.is_empty() {
            return vec!["No ExpectedExecutionHistory found in description file".to_owned()];
        }
        let mismatches = match_history(&req.expected_history, events, ctx);
        if !mismatches.is_empty() {
            return mismatches;
        }
        if let Some(expected) = expected_result {
            let wrong = check_result(expected, run, ctx);
            if !wrong.is_empty() {
                return wrong;
            }
        }
    }
    validate_logs(&req.expected_logs, logs, ctx)
}

/// `ExpectedResult`: the status always; the result only of a succeeded execution, compared
/// after one `json.loads` with bound placeholders substituted.
pub fn check_result(expected: &PyValue, run: &Finished, ctx: &Placeholders) -> Vec<String> {
    let actual_status = run.status.as_str();
    if let Some(want) = expected.get("ExecutionStatus").filter(|s| s.truthy())
        && !want.py_eq(&PyValue::str(actual_status))
    {
        return vec![format!(
            "Expected ExecutionStatus={}, got {}",
            want.py_repr(),
            PyValue::str(actual_status).py_repr()
        )];
    }
    if actual_status != "SUCCEEDED" {
        return Vec::new();
    }
    let Some(want) = expected.get("Result") else { return Vec::new() };
    let actual = match &run.result {
        None => PyValue::None,
        Some(text) => PyValue::json_loads(text).unwrap_or_else(|| PyValue::str(text.as_str())),
    };
    let want = ctx.substitute(want);
    if want.py_eq(&actual) {
        Vec::new()
    } else {
        vec![format!("Expected Result={}, got {}", want.py_repr(), actual.py_repr())]
    }
}

/// Runs every requirement under `requirements_dir`; writes each run's record under `out_dir`
/// when given (clearing records left by earlier runs).
pub fn run_all(requirements_dir: &Path, only: &[String], out_dir: Option<&Path>) -> Result<Vec<Outcome>, String> {
    let registry = Registry::new();
    let requirements = requirement::load_all(requirements_dir)?;
    for id in registry.ids() {
        if !requirements.iter().any(|r| r.id == id) {
            return Err(format!("a handler is registered for {id}, which is no requirement"));
        }
    }
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if only.is_empty() {
            for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
                let path = entry.map_err(|e| e.to_string())?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
        }
    }
    let mut outcomes = Vec::new();
    for req in requirements.iter().filter(|r| only.is_empty() || only.contains(&r.id)) {
        let (outcome, record) = run_requirement(req, &registry);
        if let (Some(dir), Some(record)) = (out_dir, record) {
            let path = dir.join(format!("{}.json", req.id));
            let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())?;
            std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests package is in the workspace").to_owned()
}

/// Where the requirement files are: `$DURABLE_CONFORMANCE_REQUIREMENTS`, set by
/// `scripts/fetch-conformance`, or that script's cache in the workspace.
pub fn requirements_dir() -> PathBuf {
    match std::env::var_os("DURABLE_CONFORMANCE_REQUIREMENTS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join(DEFAULT_REQUIREMENTS_DIR),
    }
}

/// The requirements' folder in the workspace's cache, as `scripts/fetch-conformance`
/// unpacks the pinned wheel.
pub const DEFAULT_REQUIREMENTS_DIR: &str = ".cache/conformance/aws-durable-execution-conformance-tests-1.0.0/aws_durable_execution_conformance_tests/test_requirements";

/// Where run records go: `<target>/conformance`.
pub fn records_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let target = if target.is_absolute() { target } else { workspace_root().join(target) };
    target.join("conformance")
}
