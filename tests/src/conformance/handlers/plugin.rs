//! Suite `plugin` (10-1 … 10-7).
//!
//! Each requirement's plugin "prints a JSON object to plain stdout" from its hooks. Here a
//! plugin emits the object as the message of a `tracing` event with the durable logger's
//! target (`durable::user`), which the harness captures as a structured log line, the JSON
//! object standing for its own fields ([`crate::conformance::logs`]). It does not go through
//! `durable::info!`: that logger is silent while the function replays, and a plugin's
//! records must appear in every invocation (10-6 logs `first: false` on the replay).
//!
//! As the prose asks, a plugin captures the execution ARN from its invocation-start hook and
//! stamps it, as `durableExecutionArn`, on every record it emits. (durable hands every hook
//! the ARN anyway, in `execution_arn`.) Operation and attempt hooks keep to step-type
//! operations (`OperationType::Step`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use durable::model::OperationType;
use durable::plugin::{AttemptEvent, InvocationEnd, InvocationStart, OperationEvent, Plugin, PluginResult};
use durable::prelude::*;
use serde_json::{Map, Value, json};

use super::Registry;

pub(super) fn register(r: &mut Registry) {
    r.add("10-1", handler(greet).plugin(Instrumentation::new("CONFPLUGIN", Records::Invocations { first: true })));
    r.add("10-2", handler(greet).plugin(Instrumentation::new("CONFPLUGIN", Records::Operations)));
    r.add("10-3", handler(unreliable).plugin(Instrumentation::new("CONFPLUGIN", Records::Attempts)));
    r.add("10-4", handler(greet).plugin(Arc::new(Faulty::default())));
    r.add(
        "10-5",
        handler(greet)
            .plugin(Instrumentation::new("CONFPLUGIN-A", Records::Invocations { first: false }))
            .plugin(Instrumentation::new("CONFPLUGIN-B", Records::Invocations { first: false })),
    );
    r.add(
        "10-6",
        handler(wait_two_seconds).plugin(Instrumentation::new("CONFPLUGIN", Records::Invocations { first: true })),
    );
    r.add("10-7", handler(failing).plugin(Instrumentation::new("CONFPLUGIN", Records::Invocations { first: true })));
}

/// 10-1, 10-2, 10-4, 10-5: one step greets the input; its body logs that it runs.
#[durable]
async fn greet(ctx: DurableContext, name: String) -> Result<String> {
    ctx.step("greet", async |s| {
        durable::info!(s, "Greeting step running for: {name}");
        Ok(format!("Hello, {name}!"))
    })
    .await
}

/// 10-3: the step fails its first attempt and succeeds its second, 1 s later.
#[durable]
async fn unreliable(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.step("unreliable_func", async |s| {
        if s.attempt() < 2 {
            return Err(Error::new("UnreliableError", "the first attempt fails"));
        }
        Ok("Operation succeeded".to_owned())
    })
    .retry(Backoff::fixed(Duration::from_secs(1)).max_attempts(3).jitter(Jitter::None))
    .await
}

/// 10-6: one 2 s wait.
#[durable]
async fn wait_two_seconds(ctx: DurableContext, _input: Value) -> Result<()> {
    ctx.wait(durable::Name::NONE, Duration::from_secs(2)).await
}

/// 10-7: a step that always fails, without retries.
#[durable]
async fn failing(ctx: DurableContext, _input: Value) -> Result<String> {
    ctx.step("failing_func", async |_| Err::<String, _>(Error::new("StepFailure", "the step always fails")))
        .retry(presets::none())
        .await
}

/// Emits one plugin record: a JSON object printed as one log line.
fn emit(record: &Value) {
    tracing::info!(target: "durable::user", "{record}");
}

/// The execution ARN a plugin captured from its last invocation-start hook.
#[derive(Default)]
struct CapturedArn(Mutex<Option<String>>);

impl CapturedArn {
    fn capture(&self, arn: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(arn.to_owned());
    }

    /// `fields` plus `plugin` and `durableExecutionArn`, as one record.
    fn record(&self, plugin: &str, fields: Value) -> Value {
        let mut record = Map::new();
        record.insert("plugin".to_owned(), json!(plugin));
        if let Value::Object(fields) = fields {
            record.extend(fields);
        }
        if let Some(arn) = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            record.insert("durableExecutionArn".to_owned(), json!(arn));
        }
        Value::Object(record)
    }
}

/// Which hooks an [`Instrumentation`] plugin logs.
#[derive(Debug, Clone, Copy)]
enum Records {
    /// Invocation start (with the `first` flag when `first`) and invocation end with the
    /// invocation's status.
    Invocations { first: bool },
    /// Start and end of each step-type operation, with its id (and terminal status).
    Operations,
    /// Start and end of each step attempt, with the operation id, the attempt number (and
    /// its outcome).
    Attempts,
}

/// The requirements' instrumentation plugin.
struct Instrumentation {
    name: &'static str,
    records: Records,
    arn: CapturedArn,
}

impl Instrumentation {
    fn new(name: &'static str, records: Records) -> Arc<Instrumentation> {
        Arc::new(Instrumentation { name, records, arn: CapturedArn::default() })
    }

    #[allow(clippy::unnecessary_wraps, reason = "every hook returns what this returns")]
    fn log(&self, fields: Value) -> PluginResult {
        emit(&self.arn.record(self.name, fields));
        Ok(())
    }
}

impl Plugin for Instrumentation {
    fn name(&self) -> &str {
        self.name
    }

    fn on_invocation_start(&self, e: &InvocationStart<'_>) -> PluginResult {
        self.arn.capture(e.execution_arn);
        match self.records {
            Records::Invocations { first: true } => {
                self.log(json!({ "hook": "invocation-start", "first": e.first_invocation }))
            }
            Records::Invocations { first: false } => self.log(json!({ "hook": "invocation-start" })),
            Records::Operations | Records::Attempts => Ok(()),
        }
    }

    fn on_invocation_end(&self, e: &InvocationEnd<'_>) -> PluginResult {
        match self.records {
            Records::Invocations { .. } => self.log(json!({ "hook": "invocation-end", "status": e.status.as_str() })),
            Records::Operations | Records::Attempts => Ok(()),
        }
    }

    fn on_operation_start(&self, e: &OperationEvent<'_>) -> PluginResult {
        match self.records {
            Records::Operations if e.op_type == OperationType::Step => {
                self.log(json!({ "hook": "operation-start", "op": e.operation_id }))
            }
            _ => Ok(()),
        }
    }

    fn on_operation_end(&self, e: &OperationEvent<'_>) -> PluginResult {
        match self.records {
            Records::Operations if e.op_type == OperationType::Step => {
                self.log(json!({ "hook": "operation-end", "op": e.operation_id, "status": e.status.as_str() }))
            }
            _ => Ok(()),
        }
    }

    fn on_attempt_start(&self, e: &AttemptEvent<'_>) -> PluginResult {
        match self.records {
            Records::Attempts if e.op_type == OperationType::Step => {
                self.log(json!({ "hook": "attempt-start", "n": e.attempt, "op": e.operation_id }))
            }
            _ => Ok(()),
        }
    }

    fn on_attempt_end(&self, e: &AttemptEvent<'_>) -> PluginResult {
        match self.records {
            Records::Attempts if e.op_type == OperationType::Step => {
                let outcome = e.outcome.map_or("", |o| o.as_str());
                self.log(json!({ "hook": "attempt-end", "n": e.attempt, "outcome": outcome, "op": e.operation_id }))
            }
            _ => Ok(()),
        }
    }
}

/// 10-4's plugin: every hook logs its record, then fails. Half the hooks return an error,
/// the other half panic: the engine must contain both, and the execution must go on as if
/// there were no plugin.
#[derive(Default)]
struct Faulty {
    arn: CapturedArn,
}

impl Faulty {
    const NAME: &'static str = "CONFPLUGIN-FAULTY";

    fn log(&self, hook: &str) {
        emit(&self.arn.record(Self::NAME, json!({ "hook": hook })));
    }

    /// Logs, then returns an error.
    fn log_and_fail(&self, hook: &str) -> PluginResult {
        self.log(hook);
        Err(format!("{} fails in {hook}", Self::NAME).into())
    }

    /// Logs, then panics.
    fn log_and_panic(&self, hook: &str) -> PluginResult {
        self.log(hook);
        panic!("{} panics in {hook} (conformance 10-4: the engine contains it)", Self::NAME)
    }
}

impl Plugin for Faulty {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn on_invocation_start(&self, e: &InvocationStart<'_>) -> PluginResult {
        self.arn.capture(e.execution_arn);
        self.log_and_fail("invocation-start")
    }

    fn on_invocation_end(&self, _: &InvocationEnd<'_>) -> PluginResult {
        self.log_and_panic("invocation-end")
    }

    fn on_operation_start(&self, e: &OperationEvent<'_>) -> PluginResult {
        if e.op_type != OperationType::Step {
            return Ok(());
        }
        self.log_and_panic("operation-start")
    }

    fn on_operation_end(&self, e: &OperationEvent<'_>) -> PluginResult {
        if e.op_type != OperationType::Step {
            return Ok(());
        }
        self.log_and_fail("operation-end")
    }

    fn on_attempt_start(&self, e: &AttemptEvent<'_>) -> PluginResult {
        if e.op_type != OperationType::Step {
            return Ok(());
        }
        self.log_and_panic("attempt-start")
    }

    fn on_attempt_end(&self, e: &AttemptEvent<'_>) -> PluginResult {
        if e.op_type != OperationType::Step {
            return Ok(());
        }
        self.log_and_fail("attempt-end")
    }
}

#[cfg(test)]
mod tests {
    use durable::testing::{TestExecution, TestRunner};

    use super::*;
    use crate::conformance::logs::LogCapture;
    use crate::conformance::pyvalue::PyValue;

    /// Runs `handler` to its end; returns the run and the plugin records.
    async fn run(handler: &dyn durable::Handler, input: &str) -> (TestExecution, Vec<PyValue>) {
        let capture = LogCapture::new();
        let run = {
            let _guard = capture.install();
            TestRunner::new().run_handler(handler, input).await
        };
        let records = capture.records().into_iter().filter(|r| r.get("plugin").is_some()).collect();
        (run, records)
    }

    fn field<'a>(record: &'a PyValue, key: &str) -> &'a str {
        record.get(key).and_then(PyValue::as_str).unwrap_or_default()
    }

    #[tokio::test]
    async fn attempt_records_carry_the_captured_arn_and_the_step_id() {
        let h = handler(unreliable).plugin(Instrumentation::new("CONFPLUGIN", Records::Attempts));
        let (run, records) = run(&h, "null").await;
        let step = &run.operation("unreliable_func").unwrap().id;
        let hooks: Vec<&str> = records.iter().map(|r| field(r, "hook")).collect();
        assert_eq!(hooks, ["attempt-start", "attempt-end", "attempt-start", "attempt-end"]);
        for r in &records {
            assert_eq!(field(r, "durableExecutionArn"), run.arn());
            assert_eq!(field(r, "op"), &**step);
        }
    }

    #[tokio::test]
    async fn the_faulty_plugin_logs_every_hook_and_changes_nothing() {
        let (plain, _) = run(&handler(greet), "\"Ana\"").await;
        let h = handler(greet).plugin(Arc::new(Faulty::default()));
        let (faulty, records) = run(&h, "\"Ana\"").await;
        assert_eq!(faulty.result::<String>().unwrap(), plain.result::<String>().unwrap());
        assert_eq!(faulty.event_types(), plain.event_types());
        let mut hooks: Vec<&str> = records.iter().map(|r| field(r, "hook")).collect();
        hooks.sort_unstable();
        assert_eq!(
            hooks,
            ["attempt-end", "attempt-start", "invocation-end", "invocation-start", "operation-end", "operation-start"]
        );
        assert!(records.iter().all(|r| field(r, "durableExecutionArn") == faulty.arn()));
    }
}
