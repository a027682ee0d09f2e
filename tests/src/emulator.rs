//! AWS's durable-execution emulator (`dex-local-runner start-server`) driven over HTTP, and
//! the conformance requirements run through it: each execution is started with the
//! emulator's `POST /start-durable-execution`, invoked by the emulator through `cargo lambda
//! watch` (the `conformance-lambda` binary, managed mode, checkpointing back to the
//! emulator), its callbacks completed with `SendDurableExecutionCallback*`, and its result
//! and history read with `GetDurableExecution` / `GetDurableExecutionHistory`, then checked
//! with the harness's matcher ([`crate::conformance::harness::check_run`]).
//!
//! The client is a few lines of HTTP/1.1 over `std::net`: the histories are matched as the
//! emulator sends them, not as durable's model would re-serialise them.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use durable::model::{ErrorObject, ExecutionStatus, Timestamp};
use serde_json::{Value, json};

use crate::conformance::callbacks::{CallbackPoller, CallbackSignal, Scheduled};
use crate::conformance::driver::Finished;
use crate::conformance::harness::{Outcome, check_run};
use crate::conformance::matcher::match_history;
use crate::conformance::placeholders::{Placeholders, random_string};
use crate::conformance::pyvalue::PyValue;
use crate::conformance::requirement::Requirement;

/// The variable that holds the emulator's endpoint (`scripts/standins/lambda.sh` sets it).
pub const ENDPOINT_VAR: &str = "DURABLE_EMULATOR_ENDPOINT";
/// The variable that holds the Lambda Invoke API of `cargo lambda watch` (the same script
/// sets it).
pub const WATCH_ENDPOINT_VAR: &str = "DURABLE_LAMBDA_WATCH_ENDPOINT";

/// How to run the suite with its stand-ins, for the panics below.
const RUN_WITH_STANDINS: &str = "start the stand-ins and run it with `scripts/standins/lambda.sh cargo test -p \
                                 durable-tests --features standins --test emulator` (./scripts/test does)";

/// The emulator. A suite that asks runs against it or fails: without the stand-ins this
/// panics, saying how to start them.
pub fn endpoint() -> Emulator {
    let url = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{ENDPOINT_VAR} is not set: this suite runs against AWS's emulator; {RUN_WITH_STANDINS}")
    });
    Emulator::new(&url)
}

/// The Lambda Invoke API of `cargo lambda watch`, or a panic as in [`endpoint`].
pub fn watch_endpoint() -> String {
    std::env::var(WATCH_ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{WATCH_ENDPOINT_VAR} is not set: this suite runs against cargo lambda watch; {RUN_WITH_STANDINS}")
    })
}

/// The emulator at `host:port`.
#[derive(Debug, Clone)]
pub struct Emulator {
    host: String,
}

/// An HTTP answer.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Emulator {
    /// The emulator at `url` (`http://127.0.0.1:PORT`).
    pub fn new(url: &str) -> Emulator {
        Emulator { host: url.trim_start_matches("http://").trim_end_matches('/').to_owned() }
    }

    fn request(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Result<Answer, String> {
        let fail = |e: std::io::Error| format!("{method} {path}: {e}");
        let mut stream = TcpStream::connect(&self.host).map_err(fail)?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(fail)?;
        let (content_type, bytes) = body.unwrap_or(("application/json", b""));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n",
            self.host,
            bytes.len()
        );
        stream.write_all(head.as_bytes()).map_err(fail)?;
        stream.write_all(bytes).map_err(fail)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(fail)?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or(format!("{method} {path}: no HTTP answer"))?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(format!("{method} {path}: bad status line {head:?}"))?;
        let mut body = raw[split + 4..].to_vec();
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        Ok(Answer { status, body })
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let text = body.map(Value::to_string);
        let answer = self.request(method, path, text.as_deref().map(|t| ("application/json", t.as_bytes())))?;
        let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if !(200..300).contains(&answer.status) {
            return Err(format!("{method} {path}: HTTP {}: {}", answer.status, String::from_utf8_lossy(&answer.body)));
        }
        Ok(value)
    }

    /// POSTs `body` to `path`; returns the status and the body as text, whatever the status.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<(u16, String), String> {
        let text = body.to_string();
        let answer = self.request("POST", path, Some(("application/json", text.as_bytes())))?;
        Ok((answer.status, String::from_utf8_lossy(&answer.body).into_owned()))
    }

    /// `POST /start-durable-execution`: starts `function` with `input` (JSON text) under the
    /// execution name `name`; returns the execution's ARN.
    pub fn start(&self, function: &str, name: &str, input: Option<&str>) -> Result<String, String> {
        let mut body = json!({
            "AccountId": "123456789012",
            "FunctionName": function,
            "FunctionQualifier": "$LATEST",
            "ExecutionName": name,
            "ExecutionTimeoutSeconds": 600,
            "ExecutionRetentionPeriodDays": 1,
        });
        if let Some(input) = input {
            body["Input"] = input.into();
        }
        let started = self.json("POST", "/start-durable-execution", Some(&body))?;
        started["ExecutionArn"].as_str().map(str::to_owned).ok_or(format!("no ExecutionArn in {started}"))
    }

    /// `GetDurableExecution`, as JSON.
    pub fn execution(&self, arn: &str) -> Result<Value, String> {
        self.json("GET", &format!("/2025-12-01/durable-executions/{}", encode(arn)), None)
    }

    /// `GetDurableExecutionHistory` with payloads, every page, as JSON events.
    pub fn history(&self, arn: &str) -> Result<Vec<Value>, String> {
        let mut events = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut path = format!(
                "/2025-12-01/durable-executions/{}/history?IncludeExecutionData=true&MaxItems=1000",
                encode(arn)
            );
            if let Some(m) = &marker {
                path = format!("{path}&Marker={}", encode(m));
            }
            let page = self.json("GET", &path, None)?;
            events.extend(page["Events"].as_array().cloned().unwrap_or_default());
            match page["NextMarker"].as_str().filter(|m| !m.is_empty()) {
                Some(m) => marker = Some(m.to_owned()),
                None => return Ok(events),
            }
        }
    }

    /// `SendDurableExecutionCallbackSuccess` with the raw result.
    pub fn callback_success(&self, callback_id: &str, result: Option<&str>) -> Result<(), String> {
        let path = format!("/2025-12-01/durable-execution-callbacks/{}/succeed", encode(callback_id));
        let body = result.map(|r| ("application/octet-stream", r.as_bytes()));
        self.expect_ok("POST", &path, body)
    }

    /// `SendDurableExecutionCallbackFailure`.
    pub fn callback_failure(&self, callback_id: &str, error: Option<&ErrorObject>) -> Result<(), String> {
        let path = format!("/2025-12-01/durable-execution-callbacks/{}/fail", encode(callback_id));
        let text = error.map_or_else(|| "{}".to_owned(), |e| serde_json::to_string(e).expect("plain data"));
        self.expect_ok("POST", &path, Some(("application/json", text.as_bytes())))
    }

    /// `SendDurableExecutionCallbackHeartbeat`.
    pub fn callback_heartbeat(&self, callback_id: &str) -> Result<(), String> {
        let path = format!("/2025-12-01/durable-execution-callbacks/{}/heartbeat", encode(callback_id));
        self.expect_ok("POST", &path, None)
    }

    fn expect_ok(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Result<(), String> {
        let answer = self.request(method, path, body)?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(format!("{method} {path}: HTTP {}: {}", answer.status, String::from_utf8_lossy(&answer.body)))
        }
    }

    /// Polls the execution until `done` says so or `timeout` passes; returns the last
    /// `GetDurableExecution` and history. (A wall-clock poll: the emulator is another
    /// process with its own clock, and tells nobody when an execution changes.)
    pub fn wait_for(
        &self,
        arn: &str,
        timeout: Duration,
        mut done: impl FnMut(&Value, &[Value]) -> bool,
    ) -> Result<(Value, Vec<Value>), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let execution = self.execution(arn)?;
            let history = self.history(arn)?;
            if done(&execution, &history) {
                return Ok((execution, history));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{arn} did not get there within {timeout:?}: status {}, history {}",
                    execution["Status"],
                    serde_json::to_string_pretty(&history).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Percent-encodes a path segment (ARNs carry `/`, callback ids `+/=`).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    out
}

/// The event types of a history, in order.
pub fn event_types(history: &[Value]) -> Vec<&str> {
    history.iter().filter_map(|e| e["EventType"].as_str()).collect()
}

/// The history of the `lambda-order` example's execution (two steps, the 2 s wait, the
/// carrier's callback), the same in managed and in self-hosted mode.
pub const LAMBDA_ORDER_HISTORY: &[&str] = &[
    "ExecutionStarted",
    "StepStarted",
    "StepSucceeded",
    "StepStarted",
    "StepSucceeded",
    "WaitStarted",
    "InvocationCompleted",
    "WaitSucceeded",
    "CallbackStarted",
    "InvocationCompleted",
    "CallbackSucceeded",
    "InvocationCompleted",
    "ExecutionSucceeded",
];

/// How long a requirement may stay without a new event before the run ends (AWS's
/// validator gives up after 30 s; nothing in a requirement takes half that).
const IDLE_LIMIT: Duration = Duration::from_secs(12);
/// How long the first invocation may take: `cargo lambda watch` starts a function process
/// per concurrent invocation (`cargo run`, one at a time behind cargo's lock).
const FIRST_INVOCATION_LIMIT: Duration = Duration::from_mins(2);
/// How often the history is polled (wall clock: the emulator is another process, with its
/// own clock, and notifies nobody; the limits above bound the poll).
const POLL: Duration = Duration::from_millis(250);

/// Runs requirement `req` through the emulator: the function `conformance-lambda` picks the
/// handler by the execution name `req_<id>_<nonce>`.
/// Returns the outcome with the emulator's blind spots ignored, and whether the history
/// also matched strictly.
pub fn run_requirement(em: &Emulator, req: &Requirement) -> (Outcome, bool) {
    let outcome = |errors| Outcome {
        id: req.id.clone(),
        suite: req.suite.clone(),
        description: req.description.clone(),
        optional: req.optional,
        errors,
    };
    match drive(em, req) {
        Ok(v) => (outcome(v.errors), v.strict),
        Err(e) => (outcome(vec![e]), false),
    }
}

fn drive(em: &Emulator, req: &Requirement) -> Result<Verdict, String> {
    let mut ctx = Placeholders::new();
    ctx.resolve_variables(req.variables.as_ref());
    let actions = req.callback_actions.clone().map_err(|e| format!("Invalid CallbackAction: {e}"))?;
    let input = ctx.substitute(&req.input).to_json().to_string();
    let name = format!("req_{}_{}", req.id, random_string(10));
    let arn = em.start("conformance-lambda", &name, Some(&input))?;

    let stop_at_match = req.async_invoke
        && req.expected_result.as_ref().is_none_or(|r| !r.truthy())
        && !req.expected_history.is_empty();
    let mut poller = CallbackPoller::new(actions);
    let mut scheduled: Vec<Scheduled> = Vec::new();
    let mut errors = Vec::new();
    let started = Instant::now();
    let epoch = Timestamp::now();
    let now = || epoch.plus_millis(started.elapsed().as_millis() as i64);
    let mut seen = 0;
    let mut last_news = Instant::now();
    let (execution, history) = loop {
        let execution = em.execution(&arn)?;
        let history = em.history(&arn)?;
        let py: Vec<PyValue> = history.iter().map(PyValue::from_json).collect();
        let terminal = execution["Status"].as_str().is_some_and(|s| s != "RUNNING");
        if history.len() != seen {
            seen = history.len();
            last_news = Instant::now();
        }
        let invoked = history.iter().any(|e| e["EventType"] == "InvocationCompleted");
        let limit = if invoked { IDLE_LIMIT } else { FIRST_INVOCATION_LIMIT };
        if terminal || last_news.elapsed() > limit {
            break (execution, history);
        }
        if stop_at_match && match_history(&req.expected_history, &py, &mut ctx.clone()).is_empty() {
            break (execution, history);
        }
        scheduled.extend(poller.poll(&py, now(), &ctx));
        let due: Vec<Scheduled> = {
            let t = now();
            let (due, later) = scheduled.drain(..).partition(|s| s.at <= t);
            scheduled = later;
            due
        };
        for s in due {
            let sent = match &s.signal {
                CallbackSignal::Success(r) => em.callback_success(&s.callback_id, r.as_deref()),
                CallbackSignal::Failure(e) => em.callback_failure(&s.callback_id, e.as_ref()),
                CallbackSignal::Heartbeat => em.callback_heartbeat(&s.callback_id),
            };
            if let Err(e) = sent {
                errors.push(format!("callback {} ({}): {e}", s.callback_name, s.callback_id));
            }
            last_news = Instant::now();
        }
        std::thread::sleep(POLL);
    };
    errors.extend(poller.errors);
    let status = execution["Status"].as_str().and_then(ExecutionStatus::parse).unwrap_or(ExecutionStatus::Running);
    let finished =
        Finished { arn, status, result: execution["Result"].as_str().map(str::to_owned), events: Vec::new(), errors };
    let events: Vec<PyValue> = history.iter().map(PyValue::from_json).collect();
    // The function's logs stay in its process (CloudWatch's part): no record reaches here.
    let mut strict_ctx = ctx.clone();
    let strict = check_run(req, &finished, &events, &[], &mut strict_ctx);
    let mut lenient = req.clone();
    lenient.expected_history = req.expected_history.iter().map(without_emulator_blind_spots).collect();
    let errors = check_run(&lenient, &finished, &events, &[], &mut ctx);
    Ok(Verdict { strict: strict.is_empty(), errors })
}

/// What a requirement's run through the emulator showed.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Whether the history matched as the emulator returned it, every expected key.
    pub strict: bool,
    /// The mismatches left once the emulator's known blind spots are ignored (empty: a pass).
    pub errors: Vec<String>,
}

/// The expected event without the fields the emulator (1.4.0) never renders, whatever the
/// function checkpointed (REFERENCE-AWS.md 4.4, and its `executor.py`, which passes the
/// update to the event only for RETRY, FAIL and a chained invoke's START):
/// `InvocationCompletedDetails` (dropped when events are renumbered), a `StepSucceeded`'s
/// `RetryDetails`, and a `CallbackStarted`'s `Timeout` and `HeartbeatTimeout`.
pub fn without_emulator_blind_spots(event: &PyValue) -> PyValue {
    let PyValue::Dict(fields) = event else { return event.clone() };
    let strip = |value: &PyValue, keys: &[&str]| match value {
        PyValue::Dict(d) => PyValue::Dict(d.iter().filter(|(k, _)| !keys.contains(&k.as_str())).cloned().collect()),
        other => other.clone(),
    };
    PyValue::Dict(
        fields
            .iter()
            .filter(|(k, _)| k != "InvocationCompletedDetails")
            .map(|(k, v)| match k.as_str() {
                "StepSucceededDetails" => (k.clone(), strip(v, &["RetryDetails"])),
                "CallbackStartedDetails" => (k.clone(), strip(v, &["Timeout", "HeartbeatTimeout"])),
                _ => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode("8156-4d/34dd"), "8156-4d%2F34dd");
        assert_eq!(encode("eyJh+b/c="), "eyJh%2Bb%2Fc%3D");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
