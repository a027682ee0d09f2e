//! The requirement files: one YAML per requirement, `test_requirements/<suite>/<id>.yaml`.

use std::path::{Path, PathBuf};

use super::pyvalue::PyValue;

/// What a callback action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOperation {
    /// `SendDurableExecutionCallbackSuccess`.
    Success,
    /// `SendDurableExecutionCallbackFailure`.
    Failure,
    /// `SendDurableExecutionCallbackHeartbeat`.
    Heartbeat,
}

/// One of a requirement's `CallbackActions`.
#[derive(Debug, Clone)]
pub struct CallbackAction {
    /// The callback's name: exact, `*`, or `${/re/}` (placeholders substituted first).
    pub callback_name: String,
    /// What to send.
    pub operation: CallbackOperation,
    /// The payload: any value for a success (sent as `json.dumps`), an error dict for a
    /// failure.
    pub payload: PyValue,
    /// Seconds to wait before sending.
    pub delay_seconds: f64,
}

impl CallbackAction {
    /// Parses one entry of `CallbackActions`, with the validator's checks.
    pub fn from_value(v: &PyValue) -> Result<CallbackAction, String> {
        let callback_name = v
            .get("CallbackName")
            .filter(|n| n.truthy())
            .ok_or("CallbackAction requires a 'CallbackName' field")?
            .py_str();
        let operation =
            v.get("Operation").filter(|n| n.truthy()).ok_or("CallbackAction requires an 'Operation' field")?;
        let operation = match operation.py_str().to_lowercase().as_str() {
            "success" => CallbackOperation::Success,
            "failure" => CallbackOperation::Failure,
            "heartbeat" => CallbackOperation::Heartbeat,
            other => return Err(format!("Invalid operation '{other}'. Must be one of: failure, heartbeat, success")),
        };
        let delay_seconds = match v.get("Delay") {
            None | Some(PyValue::None) => 0.0,
            Some(PyValue::Int(i)) => *i as f64,
            Some(PyValue::Float(f)) => *f,
            Some(other) => other.py_str().parse().map_err(|_| format!("bad Delay {}", other.py_repr()))?,
        };
        Ok(CallbackAction {
            callback_name,
            operation,
            payload: v.get("Payload").cloned().unwrap_or(PyValue::None),
            delay_seconds,
        })
    }
}

/// One conformance requirement.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// The id, e.g. `1-1` (the file's stem).
    pub id: String,
    /// The suite (the folder), e.g. `step`.
    pub suite: String,
    /// The file.
    pub path: PathBuf,
    /// The one-line description.
    pub description: String,
    /// What the handler does, in prose.
    pub handler: String,
    /// What each invocation should checkpoint, in prose.
    pub invocations: String,
    /// The input (`None` when absent or empty).
    pub input: PyValue,
    /// `ExpectedResult`, when present.
    pub expected_result: Option<PyValue>,
    /// `ExpectedExecutionHistory`.
    pub expected_history: Vec<PyValue>,
    /// `AsyncInvoke`: the validator polls, sends callbacks, and without an expected result
    /// stops as soon as the history matches.
    pub async_invoke: bool,
    /// `Variables`.
    pub variables: Option<PyValue>,
    /// `CallbackActions`, or the error that makes them invalid.
    pub callback_actions: Result<Vec<CallbackAction>, String>,
    /// `ExpectedLogs`.
    pub expected_logs: Vec<PyValue>,
    /// `optional: true` (AWS reports it without blocking).
    pub optional: bool,
}

impl Requirement {
    /// Parses one requirement file.
    pub fn load(path: &Path) -> Result<Requirement, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: not YAML: {e}", path.display()))?;
        let doc = PyValue::from_yaml(&yaml);
        let id = path.file_stem().and_then(|s| s.to_str()).ok_or("file without a stem")?.to_owned();
        let suite = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|s| s.to_str())
            .ok_or("file outside a suite folder")?
            .to_owned();
        let text_of = |key: &str| doc.get(key).map(PyValue::py_str).unwrap_or_default();
        let list_of = |key: &str| match doc.get(key) {
            Some(PyValue::List(l)) => l.clone(),
            _ => Vec::new(),
        };
        let callback_actions = list_of("CallbackActions").iter().map(CallbackAction::from_value).collect();
        Ok(Requirement {
            description: text_of("description").trim().to_owned(),
            handler: text_of("handler"),
            invocations: text_of("invocations"),
            input: doc.get("Input").cloned().unwrap_or(PyValue::None),
            expected_result: doc.get("ExpectedResult").cloned(),
            expected_history: list_of("ExpectedExecutionHistory"),
            async_invoke: doc.get("AsyncInvoke").is_some_and(PyValue::truthy),
            variables: doc.get("Variables").cloned(),
            callback_actions,
            expected_logs: list_of("ExpectedLogs"),
            optional: doc.get("optional").is_some_and(PyValue::truthy),
            id,
            suite,
            path: path.to_owned(),
        })
    }

    /// The suite number and the index within it (`1-10` is `(1, 10)`), for ordering.
    pub fn sort_key(&self) -> (u32, u32) {
        id_sort_key(&self.id)
    }
}

/// `(suite, index)` of an id like `3-12`; unparsable parts sort last.
pub fn id_sort_key(id: &str) -> (u32, u32) {
    let (a, b) = id.split_once('-').unwrap_or((id, ""));
    (a.parse().unwrap_or(u32::MAX), b.parse().unwrap_or(u32::MAX))
}

/// Every requirement under `dir` (the package's `test_requirements`), in id order.
pub fn load_all(dir: &Path) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    let suites = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for suite in suites {
        let suite = suite.map_err(|e| e.to_string())?.path();
        if !suite.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&suite).map_err(|e| format!("{}: {e}", suite.display()))? {
            let file = file.map_err(|e| e.to_string())?.path();
            if file.extension().is_some_and(|e| e == "yaml") {
                out.push(Requirement::load(&file)?);
            }
        }
    }
    out.sort_by_key(Requirement::sort_key);
    Ok(out)
}
