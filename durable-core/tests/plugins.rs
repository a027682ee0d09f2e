//! Plugins: which hooks fire, when, with what; and that a failing or panicking plugin
//! never changes the execution.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use durable_core::model::ExecutionStatus;
use durable_core::plugin::{AttemptEvent, InvocationEnd, InvocationStart, OperationEvent, Plugin, PluginResult};
use durable_core::retry::{Backoff, Jitter};
use durable_core::testing::{TestExecution, TestRunner};
use durable_core::{DurableContext, Error, Handler, handler};

/// Records every hook as one line.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
}

impl Recorder {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
    #[allow(clippy::unnecessary_wraps, reason = "every hook returns what this returns")]
    fn push(&self, line: String) -> PluginResult {
        self.lines.lock().unwrap().push(line);
        Ok(())
    }
}

impl Plugin for Recorder {
    fn on_invocation_start(&self, e: &InvocationStart<'_>) -> PluginResult {
        assert!(!e.execution_arn.is_empty());
        self.push(format!("invocation-start first={}", e.first_invocation))
    }
    fn on_invocation_end(&self, e: &InvocationEnd<'_>) -> PluginResult {
        let error = e.error.and_then(|e| e.error_type.clone()).unwrap_or_default();
        self.push(format!("invocation-end {} {error}", e.status).trim_end().to_owned())
    }
    fn on_operation_start(&self, e: &OperationEvent<'_>) -> PluginResult {
        self.push(format!("operation-start {}", e.name.unwrap_or("-")))
    }
    fn on_operation_end(&self, e: &OperationEvent<'_>) -> PluginResult {
        self.push(format!("operation-end {} {}", e.name.unwrap_or("-"), e.status))
    }
    fn on_attempt_start(&self, e: &AttemptEvent<'_>) -> PluginResult {
        self.push(format!("attempt-start {} n={}", e.name.unwrap_or("-"), e.attempt))
    }
    fn on_attempt_end(&self, e: &AttemptEvent<'_>) -> PluginResult {
        self.push(format!("attempt-end {} n={} {}", e.name.unwrap_or("-"), e.attempt, e.outcome.unwrap().as_str()))
    }
}

async fn greet(ctx: DurableContext, name: String) -> Result<String, Error> {
    ctx.step("greet", async |_| Ok(format!("Hello, {name}!"))).await
}

async fn run(h: &dyn Handler, input: &str) -> TestExecution {
    TestRunner::new().run_handler(h, input).await
}

#[tokio::test]
async fn one_invocation_fires_every_hook_once_in_order() {
    let rec = Arc::new(Recorder::default());
    let h = handler(greet).plugin(rec.clone());
    let run = run(&h, "\"Ana\"").await;
    assert_eq!(run.result::<String>().unwrap(), "Hello, Ana!");
    assert_eq!(
        rec.lines(),
        [
            "invocation-start first=true",
            "attempt-start greet n=1",
            "attempt-end greet n=1 SUCCEEDED",
            "operation-start greet",
            "operation-end greet SUCCEEDED",
            "invocation-end SUCCEEDED",
        ]
    );
}

async fn flaky(ctx: DurableContext, (): ()) -> Result<String, Error> {
    let retry = Backoff::fixed(Duration::from_secs(1)).max_attempts(3).jitter(Jitter::None);
    ctx.step(
        "flaky",
        async |s| if s.attempt() == 1 { Err(Error::new("Flaky", "first try")) } else { Ok("ok".to_owned()) },
    )
    .retry(retry)
    .await?;
    ctx.wait("pause", Duration::from_secs(2)).await?;
    Ok("done".to_owned())
}

#[tokio::test]
async fn attempts_retries_replays_and_service_completions() {
    let rec = Arc::new(Recorder::default());
    let h = handler(flaky).plugin(rec.clone());
    let run = run(&h, "null").await;
    assert_eq!(run.result::<String>().unwrap(), "done");
    assert_eq!(
        rec.lines(),
        [
            // Invocation 1: attempt 1 fails; the retry suspends.
            "invocation-start first=true",
            "attempt-start flaky n=1",
            "attempt-end flaky n=1 FAILED",
            "operation-start flaky",
            "invocation-end PENDING",
            // Invocation 2: attempt 2 succeeds; the wait starts and suspends.
            "invocation-start first=false",
            "attempt-start flaky n=2",
            "attempt-end flaky n=2 SUCCEEDED",
            "operation-start flaky",
            "operation-end flaky SUCCEEDED",
            "operation-start pause",
            "invocation-end PENDING",
            // Invocation 3: the service finished the wait; the step only replays.
            "invocation-start first=false",
            "operation-end pause SUCCEEDED",
            "invocation-end SUCCEEDED",
        ]
    );
}

#[tokio::test]
async fn a_failed_execution_ends_failed_with_its_error() {
    let rec = Arc::new(Recorder::default());
    let f = |ctx: DurableContext, (): ()| async move {
        ctx.step("boom", async |_| Err::<(), _>(Error::new("Boom", "always"))).no_retry().await
    };
    let h = handler(f).plugin(rec.clone());
    let run = run(&h, "null").await;
    assert_eq!(run.status(), ExecutionStatus::Failed);
    let lines = rec.lines();
    assert_eq!(lines.last().unwrap(), "invocation-end FAILED Boom");
    assert!(lines.contains(&"operation-end boom FAILED".to_owned()), "{lines:?}");
    assert!(lines.contains(&"attempt-end boom n=1 FAILED".to_owned()), "{lines:?}");
}

/// Logs, then fails or panics in every hook.
struct Faulty {
    panic: bool,
    calls: Mutex<u32>,
}

impl Faulty {
    fn fail(&self) -> PluginResult {
        *self.calls.lock().unwrap() += 1;
        assert!(!self.panic, "faulty plugin panics");
        Err("faulty plugin fails".into())
    }
}

impl Plugin for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn on_invocation_start(&self, _: &InvocationStart<'_>) -> PluginResult {
        self.fail()
    }
    fn on_invocation_end(&self, _: &InvocationEnd<'_>) -> PluginResult {
        self.fail()
    }
    fn on_operation_start(&self, _: &OperationEvent<'_>) -> PluginResult {
        self.fail()
    }
    fn on_operation_end(&self, _: &OperationEvent<'_>) -> PluginResult {
        self.fail()
    }
    fn on_attempt_start(&self, _: &AttemptEvent<'_>) -> PluginResult {
        self.fail()
    }
    fn on_attempt_end(&self, _: &AttemptEvent<'_>) -> PluginResult {
        self.fail()
    }
}

#[tokio::test]
async fn failing_and_panicking_plugins_change_nothing_and_the_others_still_run() {
    let plain = run(&handler(flaky), "null").await;

    let failing = Arc::new(Faulty { panic: false, calls: Mutex::new(0) });
    let panicking = Arc::new(Faulty { panic: true, calls: Mutex::new(0) });
    let rec = Arc::new(Recorder::default());
    let h = handler(flaky).plugin(failing.clone()).plugin(panicking.clone()).plugin(rec.clone());
    let with_plugins = run(&h, "null").await;

    assert_eq!(with_plugins.result::<String>().unwrap(), plain.result::<String>().unwrap());
    assert_eq!(with_plugins.event_types(), plain.event_types(), "the same history");
    assert_eq!(with_plugins.invocations(), plain.invocations());
    // Every hook reached every plugin: 15 calls, as the recorder saw.
    assert_eq!(rec.lines().len(), 15);
    assert_eq!(*failing.calls.lock().unwrap(), 15);
    assert_eq!(*panicking.calls.lock().unwrap(), 15);
}
