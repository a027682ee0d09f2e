//! Self-hosted mode: a plain Lambda function journaling to DynamoDB through the self-hosted
//! checkpoint service, woken by delayed SQS messages and a sweeper.
//!
//! The function is configured by its environment: `DURABLE_TABLE` (the DynamoDB table, as
//! `examples/dynamodb/template.yaml` declares it) and `DURABLE_QUEUE_URL` (the SQS queue whose
//! event source mapping invokes the function). Its events are JSON objects with a `durable`
//! field ([`SelfHostedEvent`]), sent directly (`aws lambda invoke`), by SQS (a batch whose
//! record bodies are such events) or by an EventBridge schedule (`sweep`).
//!
//! **Wake-ups.** An invocation that suspends leaves the execution's next wake-up time on its
//! record (`wake_at`, indexed by the store's `due` index). Within SQS's limit of 15 minutes
//! the invocation sends a `resume` message to the queue, delayed until then; up to
//! [`SelfHosted::relay_horizon`] (a day) it sends a relay, a `resume` carrying the wake-up
//! time that each delivery sends on, 15 minutes at a time, until the time comes; later wake-ups
//! (and any that got lost) are found by the sweeper, which lists the executions due at least
//! [`SelfHosted::sweep_grace`] ago and sends each a `resume` at once. A `resume` of an
//! execution that is not due (finished, waiting, or running under a live lease) does
//! nothing, so duplicates are harmless. `docs/design/selfhosted-lambda.md` has why.
//!
//! **Deadline.** An invocation stops taking new work [`SelfHosted::deadline_margin`] before
//! the Lambda deadline ([`run_invocation_until`]), lets its checkpoint in flight land, ends
//! the invocation (due again at once) and sends itself a `resume`. While it runs, the
//! execution is leased until a little after the deadline: if the process dies anyway, the
//! sweeper resumes it once the lease has passed, and the new invocation fences the dead one.
//!
//! **Chained invokes.** The checkpoint service creates the child execution in the same table;
//! the invocation then invokes the child's Lambda function (`InvocationType=Event`) with a
//! `resume` of the child. When the child ends, the service completes the parent's operation,
//! and the child's invocation sends the parent's function a `resume`.

mod resume;
mod wakeups;

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::clock::{Clock, SystemClock};
use durable_core::model::ErrorObject;
use durable_core::service::{CheckpointService, HistoryQuery, ServiceConfig, ServiceError, StartExecution};
use durable_core::store::{Store, StoreError};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};

use self::wakeups::function_of;
use super::{CallbackAction, Functions, INVALID_EVENT_ERROR_TYPE, Invocation, SelfHostedEvent, SqsMessage};

pub use super::NOT_CONFIGURED_ERROR_TYPE;
pub use durable_core::invocation::DEADLINE_ERROR_TYPE;
pub use wakeups::{AwsWakeups, MAX_QUEUE_DELAY, Wakeups};

/// The environment variable naming the DynamoDB table (self-hosted mode is off without it).
pub const TABLE_VAR: &str = "DURABLE_TABLE";
/// The environment variable holding the URL of the SQS queue for delayed `resume` messages.
pub const QUEUE_VAR: &str = "DURABLE_QUEUE_URL";

/// The environment variable overriding [`SelfHosted::deadline_margin`] (seconds).
pub const MARGIN_VAR: &str = "DURABLE_DEADLINE_MARGIN_SECONDS";
/// The environment variable overriding [`SelfHosted::sweep_grace`] (seconds).
pub const GRACE_VAR: &str = "DURABLE_SWEEP_GRACE_SECONDS";
/// The environment variable overriding [`SelfHosted::relay_horizon`] (seconds).
pub const RELAY_HORIZON_VAR: &str = "DURABLE_RELAY_HORIZON_SECONDS";

/// A duration in (fractional) seconds from an environment variable.
fn seconds_var(name: &str) -> Option<Duration> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        _ => {
            tracing::warn!("ignoring {name}={value:?}: not a number of seconds");
            None
        }
    }
}

/// The error type of a transient failure (the store or a wake-up channel): the event can be
/// sent again (SQS redelivers it; the sweeper finds the execution).
pub const TRANSIENT_ERROR_TYPE: &str = "Durable.Transient";

/// Self-hosted mode's store, wake-up channels and timing. See the [module
/// documentation](self).
pub struct SelfHosted {
    store: Arc<dyn Store>,
    wakeups: Rc<dyn Wakeups>,
    clock: Arc<dyn Clock>,
    deadline_margin: Duration,
    lease_extra: Duration,
    sweep_grace: Duration,
    retry_delay: Duration,
    relay_horizon: Duration,
}

impl std::fmt::Debug for SelfHosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfHosted")
            .field("deadline_margin", &self.deadline_margin)
            .field("sweep_grace", &self.sweep_grace)
            .field("relay_horizon", &self.relay_horizon)
            .finish_non_exhaustive()
    }
}

impl SelfHosted {
    /// Self-hosted mode over `store`, waking executions through `wakeups`. Defaults: stop
    /// 10 s before the deadline, lease 30 s past it, sweep what is due for 10 s, retry a
    /// transient failure after 1 s, relay wake-ups up to 24 hours away.
    pub fn new(store: Arc<dyn Store>, wakeups: Rc<dyn Wakeups>) -> Self {
        SelfHosted {
            store,
            wakeups,
            clock: Arc::new(SystemClock),
            deadline_margin: Duration::from_secs(10),
            lease_extra: Duration::from_secs(30),
            sweep_grace: Duration::from_secs(10),
            retry_delay: Duration::from_secs(1),
            relay_horizon: Duration::from_hours(24),
        }
    }

    /// From the environment: the DynamoDB table named by `DURABLE_TABLE` (else
    /// `DURABLE_DYNAMODB_TABLE`, as the local examples name it), SQS and Lambda
    /// clients (region, credentials, `AWS_ENDPOINT_URL_*`), the queue from
    /// `DURABLE_QUEUE_URL`; optionally `DURABLE_DEADLINE_MARGIN_SECONDS`,
    /// `DURABLE_SWEEP_GRACE_SECONDS` and `DURABLE_RELAY_HORIZON_SECONDS`. `None` without
    /// `DURABLE_TABLE`.
    pub async fn from_env() -> Option<Self> {
        let table = [TABLE_VAR, "DURABLE_DYNAMODB_TABLE"]
            .into_iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))?;
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let store = durable_core::store::dynamodb::DynamoStore::new(
            &config,
            durable_core::store::dynamodb::DynamoOptions::new(table),
        );
        let mut mode = SelfHosted::new(Arc::new(store), Rc::new(AwsWakeups::from_config(&config)));
        if let Some(margin) = seconds_var(MARGIN_VAR) {
            mode = mode.deadline_margin(margin);
        }
        if let Some(grace) = seconds_var(GRACE_VAR) {
            mode = mode.sweep_grace(grace);
        }
        if let Some(horizon) = seconds_var(RELAY_HORIZON_VAR) {
            mode = mode.relay_horizon(horizon);
        }
        Some(mode)
    }

    /// Stop taking new work this long before the invocation's deadline (default 10 s: time
    /// to land a checkpoint and queue the next invocation), but never more than a third of
    /// the time an event has.
    #[must_use]
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// How long past its deadline an invocation's lease lasts (default 30 s); after that a
    /// sweep may resume the execution.
    #[must_use]
    pub fn lease_extra(mut self, extra: Duration) -> Self {
        self.lease_extra = extra;
        self
    }

    /// A sweep resumes executions due for at least this long (default 10 s), leaving those
    /// that just became due to their queued wake-up.
    #[must_use]
    pub fn sweep_grace(mut self, grace: Duration) -> Self {
        self.sweep_grace = grace;
        self
    }

    /// Wake-ups more than the queue's 15 minutes but at most this far away (default 24
    /// hours) travel as a relay of delayed messages, one every 15 minutes (96 for a day),
    /// and arrive on time; later ones are left to the sweep, up to a sweep period late.
    /// `Duration::ZERO` leaves everything beyond 15 minutes to the sweep.
    #[must_use]
    pub fn relay_horizon(mut self, horizon: Duration) -> Self {
        self.relay_horizon = horizon;
        self
    }

    /// The clock (tests).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A checkpoint service for one event: ARNs in the region and account of the invoked
    /// function. One per event, so a warm container never acts on a stale cache and holds
    /// no memory between events.
    fn service(&self, inv: &Invocation<'_>) -> Arc<CheckpointService> {
        let mut config = ServiceConfig::default();
        if let Some(arn) = inv.function_arn {
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.len() > 5 && parts[0] == "arn" {
                parts[3].clone_into(&mut config.region);
                parts[4].clone_into(&mut config.account);
            }
        }
        Arc::new(CheckpointService::with_config(self.store.clone(), self.clock.clone(), config))
    }

    /// Handles one self-hosted event for the function `inv.function_name`.
    pub(crate) async fn handle(
        &self,
        functions: &Functions,
        inv: &Invocation<'_>,
        event: SelfHostedEvent,
    ) -> Result<Value, Diagnostic> {
        tracing::debug!(
            function = inv.function_name,
            function_arn = inv.function_arn,
            time_left = ?inv.remaining(),
            ?event,
            "self-hosted event"
        );
        match event {
            SelfHostedEvent::Start { input, execution_name, timeout_seconds } => {
                functions.handler_for(inv.function_name)?;
                let service = self.service(inv);
                let input = serde_json::to_string(&input.unwrap_or(Value::Null)).map_err(|e| invalid(e.to_string()))?;
                let started = service
                    .start_execution(StartExecution {
                        function_name: inv.function_name.to_owned(),
                        name: execution_name,
                        input: Some(input),
                        timeout_seconds,
                        ..StartExecution::default()
                    })
                    .await
                    .map_err(service_error)?;
                let mut report = self.resume(functions, inv, &started.arn, None).await?;
                report["created"] = Value::Bool(started.created);
                Ok(report)
            }
            SelfHostedEvent::Resume { execution_arn, wake_at } => {
                self.resume(functions, inv, &execution_arn, wake_at).await
            }
            SelfHostedEvent::Callback { callback_id, action, result, error } => {
                self.callback(inv, &callback_id, action, result, error).await
            }
            SelfHostedEvent::Sweep { limit } => self.sweep(inv, limit.unwrap_or(1000)).await,
            SelfHostedEvent::Get { execution_arn } => {
                let got = self.service(inv).get_execution(&execution_arn).await.map_err(service_error)?;
                serde_json::to_value(got).map_err(|e| transient(e.to_string()))
            }
            SelfHostedEvent::History { execution_arn, marker, max_items } => {
                let service = self.service(inv);
                let paged = marker.is_some() || max_items.is_some();
                let mut q = HistoryQuery { include_data: true, marker, max_items, ..HistoryQuery::default() };
                if paged {
                    let page = service.history(&execution_arn, &q).await.map_err(service_error)?;
                    return serde_json::to_value(page).map_err(|e| transient(e.to_string()));
                }
                let mut events = Vec::new();
                loop {
                    let page = service.history(&execution_arn, &q).await.map_err(service_error)?;
                    events.extend(page.events);
                    match page.next_marker {
                        Some(m) => q.marker = Some(m),
                        None => break,
                    }
                }
                Ok(json!({ "Events": events }))
            }
        }
    }

    /// Completes, fails or heartbeats a callback, then wakes its execution if that made it
    /// due. A malformed, forged or unknown id changes nothing and is an error.
    async fn callback(
        &self,
        inv: &Invocation<'_>,
        callback_id: &str,
        action: CallbackAction,
        result: Option<Value>,
        error: Option<ErrorObject>,
    ) -> Result<Value, Diagnostic> {
        let service = self.service(inv);
        let due: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = due.clone();
        service.on_due(Arc::new(move |arn| sink.lock().expect("due list").push(arn.to_owned())));
        match action {
            CallbackAction::Succeed => {
                let result = result.map(|r| r.to_string());
                service.callback_success(callback_id, result).await
            }
            CallbackAction::Fail => service.callback_failure(callback_id, error.unwrap_or_default()).await,
            CallbackAction::Heartbeat => service.callback_heartbeat(callback_id).await,
        }
        .map_err(service_error)?;
        let arns = std::mem::take(&mut *due.lock().expect("due list"));
        for arn in &arns {
            if let Ok(r) = service.get_record(arn).await
                && r.active_invocation().is_none()
                && r.wake_at.is_some_and(|w| w.as_millis() <= self.clock.now().as_millis())
            {
                self.wake(inv, &r.function_name, arn, Duration::ZERO).await;
            }
        }
        Ok(json!({ "callbackId": callback_id, "action": action, "executionArn": arns.first() }))
    }

    /// Sends a `resume` to every execution due for at least the grace period: waits longer
    /// than the queue's 15 minutes, wake-ups that got lost, invocations whose lease passed.
    async fn sweep(&self, inv: &Invocation<'_>, limit: usize) -> Result<Value, Diagnostic> {
        let before = self.clock.now().plus_millis(-(self.sweep_grace.as_millis() as i64));
        let due = self.service(inv).due_at(before, limit.max(1)).await.map_err(service_error)?;
        let mut resumed = Vec::new();
        for d in due {
            let function = function_of(&d.arn).to_owned();
            self.wake(inv, &function, &d.arn, Duration::ZERO).await;
            resumed.push(d.arn);
        }
        Ok(json!({ "resumed": resumed }))
    }
}

fn invalid(message: String) -> Diagnostic {
    Diagnostic { error_type: INVALID_EVENT_ERROR_TYPE.to_owned(), error_message: message }
}

fn transient(message: String) -> Diagnostic {
    Diagnostic { error_type: TRANSIENT_ERROR_TYPE.to_owned(), error_message: message }
}

/// A service error as the event's answer: the store's failures are transient, except a
/// payload it cannot hold (it never will: retrying the event would loop); the rest are the
/// event's fault.
fn service_error(e: ServiceError) -> Diagnostic {
    match e {
        ServiceError::Store(s) if !matches!(s, StoreError::TooLarge(_)) => transient(s.to_string()),
        other => Diagnostic {
            error_type: INVALID_EVENT_ERROR_TYPE.to_owned(),
            error_message: format!("{}: {other}", other.error_code()),
        },
    }
}

/// Handles an SQS batch: each body is a self-hosted event; the answer lists the messages
/// that failed (`batchItemFailures`, for an event source mapping with
/// `ReportBatchItemFailures`), which SQS delivers again.
pub(crate) async fn handle_sqs(
    self_hosted: &SelfHosted,
    functions: &Functions,
    inv: &Invocation<'_>,
    messages: Vec<SqsMessage>,
) -> Value {
    let mut failures = Vec::new();
    for m in messages {
        let outcome = match serde_json::from_str::<SelfHostedEvent>(&m.body) {
            Ok(event) => self_hosted.handle(functions, inv, event).await.map(|_| ()),
            Err(e) => {
                // A body that will never parse is dropped, not retried forever.
                tracing::error!(message_id = m.message_id, "dropping an SQS message that is no durable event: {e}");
                Ok(())
            }
        };
        if let Err(d) = outcome {
            if d.error_type == TRANSIENT_ERROR_TYPE {
                tracing::warn!(message_id = m.message_id, "{}: {}", d.error_type, d.error_message);
                failures.push(json!({ "itemIdentifier": m.message_id }));
            } else {
                tracing::error!(
                    message_id = m.message_id,
                    "dropping the message: {}: {}",
                    d.error_type,
                    d.error_message
                );
            }
        }
    }
    json!({ "batchItemFailures": failures })
}

#[cfg(test)]
mod tests;
