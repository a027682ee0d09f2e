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
//! nothing, so duplicates are harmless. ARCHITECTURE.md ("Self-hosted Lambda mode") has why.
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

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use durable_core::checkpoint::{CheckpointError, Checkpointer, Limits};
use durable_core::clock::{Clock, SystemClock};
use durable_core::engine::{InvocationOutcome, Stopped, run_invocation_until};
use durable_core::model::{
    CheckpointDurableExecutionResponse, ErrorObject, EventType, ExecutionState, ExecutionStatus, OperationAction,
    OperationType, OperationUpdate, Timestamp,
};
use durable_core::service::{
    CheckpointService, HistoryQuery, InvocationEnd, ServiceConfig, ServiceError, StartExecution,
};
use durable_core::store::{Store, StoreError};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Functions, describe};

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

/// The error type of a self-hosted event that does not parse or cannot be served as asked
/// (an unknown execution, a forged callback id, a start with another input).
pub const INVALID_EVENT_ERROR_TYPE: &str = "Durable.InvalidEvent";
/// The error type of a self-hosted event sent to a function without `DURABLE_TABLE`.
pub const NOT_CONFIGURED_ERROR_TYPE: &str = "Durable.SelfHostedNotConfigured";
/// The error type of a transient failure (the store or a wake-up channel): the event can be
/// sent again (SQS redelivers it; the sweeper finds the execution).
pub const TRANSIENT_ERROR_TYPE: &str = "Durable.Transient";
/// The error recorded on `InvocationCompleted` when an invocation stopped at its deadline.
pub const DEADLINE_ERROR_TYPE: &str = "Durable.DeadlineReached";

/// The longest delay SQS can give a message (`DelaySeconds`).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_mins(15);

/// An event of self-hosted mode: a JSON object whose `durable` field names the action, the
/// other fields in camelCase.
///
/// | event | does |
/// |---|---|
/// | `{"durable":"start","input":..,"executionName":"o-1","timeoutSeconds":3600}` | starts an execution of this function (the name, optional, makes the start idempotent), runs it until it suspends or ends, answers its ARN and status |
/// | `{"durable":"resume","executionArn":".."}` | runs the execution if it is due; otherwise nothing (a relay, with `"wakeAt"`, is sent on towards its time) |
/// | `{"durable":"callback","action":"succeed","callbackId":"..","result":..}` | completes a callback (`result` is any JSON value); `"action":"fail"` with `"error":{"ErrorType","ErrorMessage"}`; `"action":"heartbeat"` |
/// | `{"durable":"sweep"}` | resumes every execution due for more than the grace period (the EventBridge schedule sends it) |
/// | `{"durable":"get","executionArn":".."}` | the execution, as `GetDurableExecution` answers |
/// | `{"durable":"history","executionArn":".."}` | its history, as `GetDurableExecutionHistory` answers: every page, or one with `"maxItems"` / `"marker"` |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "durable", rename_all = "lowercase", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum SelfHostedEvent {
    /// Start an execution of the function that receives the event.
    Start {
        /// The input (any JSON value; absent means `null`).
        #[serde(default)]
        input: Option<Value>,
        /// A name (1 to 64 of `[A-Za-z0-9_-]`) that makes the start idempotent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        execution_name: Option<String>,
        /// The execution timeout in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
    },
    /// Run an execution if it is due.
    Resume {
        /// The execution.
        execution_arn: String,
        /// A relay of a wake-up more than 15 minutes away: the wake-up time (epoch
        /// milliseconds) it carries. Arriving before then, it is sent on (delayed again, up
        /// to the queue's 15 minutes) if that is still the execution's next wake-up, and
        /// dropped otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wake_at: Option<i64>,
    },
    /// Complete, fail or heartbeat a callback.
    Callback {
        /// The callback id the execution handed out.
        callback_id: String,
        /// What to do.
        action: CallbackAction,
        /// The result of a `succeed` (any JSON value).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        /// The error of a `fail`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorObject>,
    },
    /// Resume every execution that is overdue.
    Sweep {
        /// At most this many (default 1,000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Describe an execution.
    Get {
        /// The execution.
        execution_arn: String,
    },
    /// An execution's history: every page, or one page when `marker` or `maxItems` is
    /// given (a Lambda response carries at most 6 MB).
    History {
        /// The execution.
        execution_arn: String,
        /// Continue after this marker (the `NextMarker` of the previous page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        marker: Option<String>,
        /// At most this many events (1 to 1,000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_items: Option<usize>,
    },
}

impl SelfHostedEvent {
    /// A `resume` of `arn`.
    pub fn resume(arn: impl Into<String>) -> Self {
        SelfHostedEvent::Resume { execution_arn: arn.into(), wake_at: None }
    }
}

/// What a `callback` event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackAction {
    /// `SendDurableExecutionCallbackSuccess`.
    Succeed,
    /// `SendDurableExecutionCallbackFailure`.
    Fail,
    /// `SendDurableExecutionCallbackHeartbeat`.
    Heartbeat,
}

/// One message of an SQS event (the fields durable reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsMessage {
    /// The message id (reported back when the message failed).
    pub message_id: String,
    /// The body: a [`SelfHostedEvent`] as JSON text.
    pub body: String,
}

/// Where self-hosted mode sends wake-ups: a queue for delayed `resume` messages, and other
/// functions' asynchronous invocations. [`AwsWakeups`] uses SQS and Lambda.
#[async_trait(?Send)]
pub trait Wakeups {
    /// Sends `event` to the function's queue, delivered after `delay` (at most
    /// [`MAX_QUEUE_DELAY`]). `Ok(false)` when there is no queue.
    async fn enqueue(&self, event: &SelfHostedEvent, delay: Duration) -> Result<bool, String>;

    /// Invokes the Lambda function `function` asynchronously with `event`.
    async fn invoke(&self, function: &str, event: &SelfHostedEvent) -> Result<(), String>;
}

/// [`Wakeups`] through SQS (`SendMessage` with `DelaySeconds`) and Lambda (`Invoke` with
/// `InvocationType=Event`).
#[derive(Debug, Clone)]
pub struct AwsWakeups {
    sqs: aws_sdk_sqs::Client,
    queue_url: Option<String>,
    lambda: aws_sdk_lambda::Client,
}

impl AwsWakeups {
    /// Wake-ups through these clients; without a queue, delayed wake-ups are left to the
    /// sweeper and immediate ones invoke the function.
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: Option<String>, lambda: aws_sdk_lambda::Client) -> Self {
        AwsWakeups { sqs, queue_url, lambda }
    }

    /// Clients from an SDK configuration, the queue from `DURABLE_QUEUE_URL`.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        let queue_url = std::env::var(QUEUE_VAR).ok().filter(|u| !u.is_empty());
        AwsWakeups::new(aws_sdk_sqs::Client::new(config), queue_url, aws_sdk_lambda::Client::new(config))
    }
}

#[async_trait(?Send)]
impl Wakeups for AwsWakeups {
    async fn enqueue(&self, event: &SelfHostedEvent, delay: Duration) -> Result<bool, String> {
        let Some(url) = &self.queue_url else { return Ok(false) };
        let body = serde_json::to_string(event).map_err(|e| e.to_string())?;
        let seconds = delay.min(MAX_QUEUE_DELAY).as_secs_f64().ceil() as i32;
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(true)
    }

    async fn invoke(&self, function: &str, event: &SelfHostedEvent) -> Result<(), String> {
        let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        self.lambda
            .invoke()
            .function_name(function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(body))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(())
    }
}

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

/// How long a lease lasts when the invocation has no deadline (Lambda's longest timeout).
const NO_DEADLINE_LEASE: Duration = Duration::from_mins(15);

/// A resume looks again at most this often after losing a race to another writer.
const MAX_CONFLICTS: u32 = 5;

/// Invocations run back to back in one event at most this often (an execution due again
/// at once, e.g. a callback completed while it ran); then it is queued.
const MAX_INLINE_RUNS: u32 = 20;

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

    /// Runs `arn` while it is due: begins a leased invocation, runs it until it suspends,
    /// ends or reaches the deadline margin, records the end, starts chained invokes, and
    /// schedules the next wake-up (or runs again at once when due at once).
    /// `relay` is the wake-up time a relayed `resume` carries (a wake-up beyond the queue's
    /// 15 minutes travels as a chain of delayed messages).
    async fn resume(
        &self,
        functions: &Functions,
        inv: &Invocation<'_>,
        arn: &str,
        relay: Option<i64>,
    ) -> Result<Value, Diagnostic> {
        let mut invocations = 0u32;
        let mut conflicts = 0u32;
        // At most a third of the time this event has, so that a function with a short
        // timeout still gets work done instead of queueing itself forever.
        let margin = inv.remaining().map_or(self.deadline_margin, |r| self.deadline_margin.min(r / 3));
        loop {
            let record = self
                .store
                .get_execution(arn)
                .await
                .map_err(|e| transient(e.to_string()))?
                .ok_or_else(|| invalid(format!("no execution {arn}")))?;
            let report = |record: &durable_core::store::ExecutionRecord, invocations: u32| {
                let mut r = json!({
                    "executionArn": arn,
                    "status": record.status,
                    "invocations": invocations,
                });
                if let Some(result) = &record.result
                    && record.status == ExecutionStatus::Succeeded
                {
                    r["result"] = Value::String(result.clone());
                }
                if let Some(error) = &record.error
                    && record.status.is_terminal()
                {
                    r["error"] = serde_json::to_value(error).unwrap_or(Value::Null);
                }
                r
            };
            if record.status.is_terminal() {
                if let Some(parent) = record.invoked_by.as_ref().filter(|_| invocations == 0) {
                    // A child that closed without this event (timed out, stopped, or its
                    // parent's wake-up was lost): the parent goes on if that made it due.
                    self.wake_parent(inv, &parent.arn).await;
                }
                return Ok(report(&record, invocations));
            }
            if *record.function_name != *inv.function_name {
                // Another function's execution (a resume routed through a shared queue); a
                // relay goes on until its time.
                if invocations == 0 {
                    let left = relay.map_or(0, |w| w - self.clock.now().as_millis());
                    let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
                    self.wake(inv, &record.function_name, arn, left).await;
                }
                let mut r = report(&record, invocations);
                r["forwardedTo"] = Value::String(record.function_name.to_string());
                return Ok(r);
            }
            let now = self.clock.now();
            if record.wake_at.is_none_or(|w| w.as_millis() > now.as_millis()) {
                // Not due: waiting, finished meanwhile, or running under a live lease. A
                // relay of the execution's next wake-up goes on towards it; a relay of any
                // other time (a lease, a timer that changed) is dropped, so a duplicated
                // relay dies out with its wake-up instead of multiplying.
                let mut r = report(&record, invocations);
                if invocations == 0
                    && let (Some(relay), Some(wake_at)) = (relay, record.wake_at)
                    && relay == wake_at.as_millis()
                {
                    let left = Duration::from_millis(u64::try_from(relay - now.as_millis()).unwrap_or(0));
                    self.wake(inv, inv.function_name, arn, left).await;
                    r["relayed"] = Value::Bool(true);
                }
                return Ok(r);
            }
            if invocations >= MAX_INLINE_RUNS || (invocations > 0 && inv.remaining().is_some_and(|r| r < margin * 2)) {
                self.wake(inv, inv.function_name, arn, Duration::ZERO).await;
                return Ok(report(&record, invocations));
            }
            let handler = functions.handler_for(inv.function_name)?;
            let service = self.service(inv);
            let lease = match inv.remaining() {
                Some(r) => r + self.lease_extra,
                None => NO_DEADLINE_LEASE + self.lease_extra,
            };
            let first_event = record.next_event_id;
            let input = match service.begin_invocation_leased(arn, plus(now, lease)).await {
                Ok(input) => input,
                Err(ServiceError::NotRunning(_)) => continue,
                Err(ServiceError::Store(StoreError::Conflict(m))) if conflicts < MAX_CONFLICTS => {
                    // Another invocation is writing (a racing resume began first): look
                    // again; under its lease the execution is not due.
                    conflicts += 1;
                    tracing::debug!(execution_arn = arn, "begin lost a race, looking again: {m}");
                    continue;
                }
                Err(e) => return Err(service_error(e)),
            };
            invocations += 1;
            let token = input.checkpoint_token.clone();
            let watch = Rc::new(WatchInvokes { inner: service.checkpointer(), invoked: RefCell::new(false) });
            let stop = stop_signal(inv, margin);
            let outcome = run_invocation_until(handler, input, watch.clone(), stop).await;
            let end = match outcome {
                Ok(InvocationOutcome::Output(o)) => InvocationEnd::Output(o),
                Ok(InvocationOutcome::Retry(m)) => {
                    tracing::warn!(execution_arn = arn, "checkpoint failed, retrying the invocation: {m}");
                    InvocationEnd::Crashed {
                        error: ErrorObject::new("Invocation.Retry", m),
                        retry_at: plus(self.clock.now(), self.retry_delay),
                    }
                }
                Ok(InvocationOutcome::Revoked(m)) => {
                    tracing::warn!(execution_arn = arn, "invocation fenced off by a newer one: {m}");
                    return Ok(report(&record, invocations));
                }
                Err(Stopped) => {
                    tracing::info!(execution_arn = arn, "deadline near: the invocation stopped; resuming it");
                    InvocationEnd::Crashed {
                        error: ErrorObject::new(
                            DEADLINE_ERROR_TYPE,
                            "the invocation stopped before the Lambda deadline; the next one goes on",
                        ),
                        retry_at: self.clock.now(),
                    }
                }
            };
            let mut ended = service.end_invocation(arn, &token, end.clone()).await;
            for _ in 0..MAX_CONFLICTS {
                // Outside writers (callbacks, children) kept changing the execution.
                let Err(ServiceError::Store(StoreError::Conflict(_))) = &ended else { break };
                ended = service.end_invocation(arn, &token, end.clone()).await;
            }
            let ended = match ended {
                Ok(r) => r,
                Err(ServiceError::InvalidToken(_) | ServiceError::NotRunning(_)) => {
                    // Fenced off meanwhile: the newer invocation owns the execution.
                    let r = self.store.get_execution(arn).await.map_err(|e| transient(e.to_string()))?;
                    return Ok(r.map_or(Value::Null, |r| report(&r, invocations)));
                }
                Err(e) => return Err(service_error(e)),
            };
            if *watch.invoked.borrow() {
                self.start_children(inv, arn, first_event).await;
            }
            if ended.status.is_terminal() {
                if let Some(parent) = &ended.invoked_by {
                    self.wake_parent(inv, &parent.arn).await;
                }
                return Ok(report(&ended, invocations));
            }
            let Some(wake_at) = ended.wake_at else { return Ok(report(&ended, invocations)) };
            let delay = wake_at.as_millis() - self.clock.now().as_millis();
            if delay > 0 {
                self.wake(inv, inv.function_name, arn, Duration::from_millis(delay as u64)).await;
                return Ok(report(&ended, invocations));
            }
            // Due at once (stopped at the deadline, or completed from outside while it
            // ran): go on here while time allows, else through the queue (the check above).
        }
    }

    /// Sends a `resume` of `arn` (an execution of `function`) due after `delay`: through
    /// the queue when it is this function's or delayed; by invoking the other function when
    /// immediate. Beyond the queue's 15 minutes and within the relay horizon, a relay: a
    /// `resume` carrying the wake-up time, delayed 15 minutes, which the function sends on
    /// until the time comes; beyond the horizon, the sweep's. Failures are logged, not
    /// raised: the sweeper finds the execution when it is overdue.
    async fn wake(&self, inv: &Invocation<'_>, function: &str, arn: &str, delay: Duration) {
        if delay > MAX_QUEUE_DELAY && delay > self.relay_horizon {
            tracing::debug!(execution_arn = arn, "wake-up in {delay:?}: left to the sweeper");
            return;
        }
        let (event, delay) = if delay > MAX_QUEUE_DELAY {
            let wake_at = plus(self.clock.now(), delay).as_millis();
            tracing::debug!(execution_arn = arn, "wake-up in {delay:?}: relayed through the queue");
            (SelfHostedEvent::Resume { execution_arn: arn.to_owned(), wake_at: Some(wake_at) }, MAX_QUEUE_DELAY)
        } else {
            (SelfHostedEvent::resume(arn), delay)
        };
        let own = function == inv.function_name;
        if own || !delay.is_zero() {
            match self.wakeups.enqueue(&event, delay).await {
                Ok(true) => return,
                Ok(false) if !delay.is_zero() => {
                    tracing::debug!(execution_arn = arn, "no queue: the sweeper wakes it");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(execution_arn = arn, "cannot queue the wake-up (the sweeper will): {e}");
                    return;
                }
            }
        }
        if let Err(e) = self.wakeups.invoke(function, &event).await {
            tracing::warn!(execution_arn = arn, function, "cannot invoke (the sweeper will resume it): {e}");
        }
    }

    /// Invokes the functions of the child executions this invocation's chained invokes
    /// started (read from the `ChainedInvokeStarted` events it wrote).
    async fn start_children(&self, inv: &Invocation<'_>, arn: &str, first_event: u64) {
        let events = match self.store.read_events(arn, first_event.saturating_sub(1), 10_000, false).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(execution_arn = arn, "cannot read the chained invokes (the sweeper starts them): {e}");
                return;
            }
        };
        for e in events.iter().filter(|e| e.event_type == EventType::ChainedInvokeStarted) {
            let (Some(child), Some(function)) = (&e.details.durable_execution_arn, &e.details.function_name) else {
                continue;
            };
            let function = function_of(function);
            self.wake(inv, function, child, Duration::ZERO).await;
        }
    }

    /// Resumes the parent of a child execution that ended, if that made it due.
    async fn wake_parent(&self, inv: &Invocation<'_>, parent: &str) {
        match self.store.get_execution(parent).await {
            Ok(Some(p)) if !p.status.is_terminal() && p.active_invocation().is_none() => {
                let due_in = p.wake_at.map(|w| w.as_millis() - self.clock.now().as_millis());
                if let Some(ms) = due_in {
                    self.wake(inv, &p.function_name, parent, Duration::from_millis(ms.max(0) as u64)).await;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(execution_arn = parent, "cannot read the parent (the sweeper resumes it): {e}"),
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
            if let Ok(Some(r)) = self.store.get_execution(arn).await
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
        let due = self.store.due_executions(before, limit.max(1)).await.map_err(|e| transient(e.to_string()))?;
        let mut resumed = Vec::new();
        for d in due {
            let function = function_of(&d.arn).to_owned();
            self.wake(inv, &function, &d.arn, Duration::ZERO).await;
            resumed.push(d.arn);
        }
        Ok(json!({ "resumed": resumed }))
    }
}

/// A future that completes `margin` before the invocation's deadline.
fn stop_signal(inv: &Invocation<'_>, margin: Duration) -> impl Future<Output = ()> + use<> {
    let left = inv.remaining().map(|r| r.saturating_sub(margin));
    async move {
        match left {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    }
}

/// The function name in an execution ARN or a function ARN (`...:function:NAME:...`), or
/// the name itself.
fn function_of(arn_or_name: &str) -> &str {
    let tail = arn_or_name.rsplit_once(":function:").map_or(arn_or_name, |(_, t)| t);
    tail.split([':', '/']).next().unwrap_or(tail)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.plus_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
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

/// What self-hosted mode knows about the Lambda invocation it serves.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The Lambda function's name (which handler runs; which function executions belong to).
    pub function_name: &'a str,
    /// The invoked function's ARN (region and account of new executions' ARNs).
    pub function_arn: Option<&'a str>,
    /// When Lambda kills the invocation.
    pub deadline: Option<SystemTime>,
}

impl Invocation<'_> {
    /// Time left before the deadline.
    fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

/// The service's checkpointer, noting whether the invocation started a chained invoke.
struct WatchInvokes {
    inner: Rc<dyn Checkpointer>,
    invoked: RefCell<bool>,
}

#[async_trait(?Send)]
impl Checkpointer for WatchInvokes {
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        if updates.iter().any(|u| u.op_type == OperationType::ChainedInvoke && u.action == OperationAction::Start) {
            *self.invoked.borrow_mut() = true;
        }
        self.inner.checkpoint(arn, token, updates).await
    }

    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError> {
        self.inner.get_state(arn, token, marker).await
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
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
mod tests {
    use super::*;

    #[test]
    fn function_names_come_out_of_execution_arns() {
        assert_eq!(
            function_of("arn:aws:lambda:us-east-1:1:function:lambda-order:$LATEST/durable-execution/o-1/abc"),
            "lambda-order"
        );
        assert_eq!(function_of("arn:aws:lambda:us-east-1:1:function:child"), "child");
        assert_eq!(function_of("child:live"), "child");
        assert_eq!(function_of("child"), "child");
    }

    #[test]
    fn a_payload_the_store_cannot_hold_is_dropped_not_retried() {
        let too_large = service_error(ServiceError::Store(StoreError::TooLarge("a record of 70 MiB".into())));
        assert_eq!(too_large.error_type, INVALID_EVENT_ERROR_TYPE, "{too_large:?}");
        assert!(too_large.error_message.starts_with("RequestTooLargeException"), "{too_large:?}");
        let throttled = service_error(ServiceError::Store(StoreError::backend("throttled", true)));
        assert_eq!(throttled.error_type, TRANSIENT_ERROR_TYPE, "{throttled:?}");
    }

    #[test]
    fn events_read_as_documented() {
        let e: SelfHostedEvent =
            serde_json::from_value(json!({"durable": "start", "input": {"id": 1}, "executionName": "o-1"})).unwrap();
        assert_eq!(
            e,
            SelfHostedEvent::Start {
                input: Some(json!({"id": 1})),
                execution_name: Some("o-1".into()),
                timeout_seconds: None
            }
        );
        let e: SelfHostedEvent = serde_json::from_value(
            json!({"durable": "callback", "action": "fail", "callbackId": "c", "error": {"ErrorType": "Lost"}}),
        )
        .unwrap();
        let SelfHostedEvent::Callback { action: CallbackAction::Fail, error: Some(error), .. } = e else { panic!() };
        assert_eq!(error.error_type.as_deref(), Some("Lost"));
        let resume = serde_json::to_value(SelfHostedEvent::resume("arn:x")).unwrap();
        assert_eq!(resume, json!({"durable": "resume", "executionArn": "arn:x"}));
        assert_eq!(serde_json::to_value(SelfHostedEvent::Sweep { limit: None }).unwrap(), json!({"durable": "sweep"}));
    }
}
