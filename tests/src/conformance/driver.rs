//! Runs one execution to its end in virtual time: invocations when due, callback polls
//! and actions at their instants, simulated crashes. Durations stay in the history (a
//! one-hour wait is `Duration: 3600`); only the clock jumps.

use std::time::Duration;

use durable::Handler;
use durable::clock::Clock as _;
use durable::engine::{InvocationOutcome, run_invocation};
use durable::model::{ErrorObject, Event, EventType, ExecutionStatus, Timestamp};
use durable::service::{CheckpointService, InvocationEnd, ServiceError};
use durable::testing::TestRunner;

use super::callbacks::{CallbackPoller, Scheduled, ServiceCallbacks, deliver};
use super::crash::{CrashAware, Ended};
use super::handlers::Registry;
use super::placeholders::Placeholders;
use super::pyvalue::PyValue;
use super::requirement::CallbackAction;

/// How often AWS's validator polls the history.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// More invocations than any requirement needs: a handler that never finishes fails.
const MAX_INVOCATIONS: u64 = 200;
/// Real time one invocation may take before it counts as hung (every requirement's
/// invocation takes milliseconds; nothing in them waits on the wall clock).
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The error Lambda records for a process that exited mid-invocation.
pub const EXIT_ERROR_TYPE: &str = "Runtime.ExitError";

/// An execution as the validator sees it at the end.
#[derive(Debug)]
pub struct Finished {
    /// Its ARN.
    pub arn: String,
    /// `GetDurableExecution`'s `Status`.
    pub status: ExecutionStatus,
    /// `GetDurableExecution`'s `Result` (JSON text).
    pub result: Option<String>,
    /// The whole history, payloads included.
    pub events: Vec<Event>,
    /// Problems outside the execution: callback actions that could not be matched or sent.
    pub errors: Vec<String>,
}

impl Finished {
    /// Whether the execution reached a terminal status.
    pub fn settled(&self) -> bool {
        self.status.is_terminal()
    }

    /// The history as Python would hold it.
    pub fn events_py(&self) -> Vec<PyValue> {
        self.events.iter().map(event_py).collect()
    }
}

fn service_error(e: &ServiceError) -> String {
    format!("checkpoint service: {e}")
}

/// Starts `handler` with `input_json` and runs the execution until it ends or waits on
/// something nothing will complete, performing `actions` on its callbacks. Executions it
/// starts by chained invokes run too, each with the target function `registry` names for it.
pub async fn drive(
    handler: &dyn Handler,
    function: &str,
    registry: &Registry,
    input_json: String,
    actions: Vec<CallbackAction>,
    ctx: &Placeholders,
) -> Result<Finished, String> {
    let runner = TestRunner::with_aws_limits();
    let service = runner.service().clone();
    let clock = runner.clock().clone();
    let arn = runner.start(function, None, Some(input_json)).await.map_err(|e| service_error(&e))?;
    let executor = ServiceCallbacks::new(service.clone());
    let polling = !actions.is_empty();
    let mut poller = CallbackPoller::new(actions);
    let mut scheduled: Vec<Scheduled> = Vec::new();
    let mut next_poll: Option<Timestamp> = None;
    let mut errors = Vec::new();
    let mut invocations = 0;
    // The requirement's execution first, then the chained invokes' executions as they appear.
    let mut executions = vec![arn.clone()];
    'run: loop {
        let record = service.get_record(&arn).await.map_err(|e| service_error(&e))?;
        if record.status.is_terminal() {
            break;
        }
        let now = clock.now();
        // At one instant: the external system acts first, then the service invokes.
        if let Some(i) = (0..scheduled.len()).filter(|i| scheduled[*i].at <= now).min_by_key(|i| scheduled[*i].at) {
            let action = scheduled.remove(i);
            if let Err(e) = deliver(&executor, &action).await {
                errors.push(e);
            }
            next_poll = Some(now.plus_millis(POLL_INTERVAL.as_millis() as i64));
            continue;
        }
        if next_poll.is_some_and(|t| t <= now) {
            next_poll = None;
            let history = service.full_history(&arn).await.map_err(|e| service_error(&e))?;
            let history: Vec<PyValue> = history.iter().map(event_py).collect();
            scheduled.extend(poller.poll(&history, now, ctx));
            continue;
        }
        let mut wake = Vec::new();
        for target in executions.clone() {
            let record = service.get_record(&target).await.map_err(|e| service_error(&e))?;
            if record.status.is_terminal() {
                continue;
            }
            let due = record.invocation == 0
                || record.invocation_started.is_some()
                || record.wake_at.is_some_and(|t| t <= now);
            if !due {
                wake.extend(record.wake_at);
                continue;
            }
            let target_handler = if target == arn {
                handler
            } else if let Some(h) = registry.target(&record.function_name) {
                h
            } else {
                errors.push(format!("no target function {} is registered for {target}", record.function_name));
                executions.retain(|a| *a != target);
                continue 'run;
            };
            invocations += 1;
            if invocations > MAX_INVOCATIONS {
                return Err(format!("the execution did not finish within {MAX_INVOCATIONS} invocations"));
            }
            invoke(&service, target_handler, &target, clock.now()).await?;
            for child in chained_executions(&service, &target).await? {
                if !executions.contains(&child) {
                    executions.push(child);
                }
            }
            if polling && target == arn {
                next_poll = Some(clock.now().plus_millis(POLL_INTERVAL.as_millis() as i64));
            }
            continue 'run;
        }
        let next_action = scheduled.iter().map(|s| s.at).min();
        match wake.into_iter().chain(next_action).chain(next_poll).min() {
            Some(t) => clock.set(t.max(now)),
            // It waits on something nothing will complete (a callback nobody answers).
            None => break,
        }
    }
    errors.extend(poller.errors);
    let execution = service.get_execution(&arn).await.map_err(|e| service_error(&e))?;
    let events = service.full_history(&arn).await.map_err(|e| service_error(&e))?;
    Ok(Finished { arn, status: execution.status, result: execution.result, events, errors })
}

fn event_py(e: &Event) -> PyValue {
    PyValue::from_json(&serde_json::to_value(e).expect("events serialise"))
}

/// The executions that `arn`'s chained invokes started (`ChainedInvokeStarted`'s
/// `DurableExecutionArn`).
async fn chained_executions(service: &CheckpointService, arn: &str) -> Result<Vec<String>, String> {
    let history = service.full_history(arn).await.map_err(|e| service_error(&e))?;
    Ok(history
        .into_iter()
        .filter(|e| e.event_type == EventType::ChainedInvokeStarted)
        .filter_map(|e| e.details.durable_execution_arn)
        .collect())
}

/// One invocation, as Lambda would run it: the handler's outcome goes back to the service,
/// and a process exit is recorded as a crash (`Runtime.ExitError`) to be retried at once.
async fn invoke(
    service: &std::sync::Arc<CheckpointService>,
    handler: &dyn Handler,
    arn: &str,
    now: Timestamp,
) -> Result<(), String> {
    let input = service.begin_invocation(arn).await.map_err(|e| service_error(&e))?;
    let token = input.checkpoint_token.clone();
    let run = CrashAware::new(run_invocation(handler, input, service.checkpointer()));
    let ended = tokio::time::timeout(INVOCATION_TIMEOUT, run).await.map_err(|_| {
        format!("an invocation did not finish within {INVOCATION_TIMEOUT:?} of real time (the handler hangs)")
    })?;
    let end = match ended {
        Ended::Finished(InvocationOutcome::Output(output)) => InvocationEnd::Output(output),
        Ended::Finished(InvocationOutcome::Retry(message)) => InvocationEnd::Crashed {
            error: ErrorObject::new("Invocation.Retry", message),
            retry_at: now.plus_seconds(1),
        },
        // Another invocation owns the execution: this one has nothing to report.
        Ended::Finished(InvocationOutcome::Revoked(_)) => return Ok(()),
        Ended::Crashed => InvocationEnd::Crashed {
            error: ErrorObject::new(
                EXIT_ERROR_TYPE,
                "RequestId: simulated Error: Runtime exited with error: exit status 1",
            ),
            retry_at: now,
        },
    };
    service.end_invocation(arn, &token, end).await.map_err(|e| service_error(&e))?;
    Ok(())
}
