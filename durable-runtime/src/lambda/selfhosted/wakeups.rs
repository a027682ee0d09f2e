//! Where self-hosted mode sends wake-ups (a queue for delayed `resume` messages, other
//! functions' asynchronous invocations), and when.

use std::time::Duration;

use async_trait::async_trait;
use durable_core::model::EventType;
use durable_core::service::{CheckpointService, HistoryQuery};

use super::super::describe;
use super::{Invocation, QUEUE_VAR, SelfHosted, SelfHostedEvent};

/// The longest delay SQS can give a message (`DelaySeconds`).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_mins(15);

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

impl SelfHosted {
    /// Sends a `resume` of `arn` (an execution of `function`) due after `delay`: through
    /// the queue when it is this function's or delayed; by invoking the other function when
    /// immediate. Beyond the queue's 15 minutes and within the relay horizon, a relay: a
    /// `resume` carrying the wake-up time, delayed 15 minutes, which the function sends on
    /// until the time comes; beyond the horizon, the sweep's. Failures are logged, not
    /// raised: the sweeper finds the execution when it is overdue.
    pub(super) async fn wake(&self, inv: &Invocation<'_>, function: &str, arn: &str, delay: Duration) {
        if delay > MAX_QUEUE_DELAY && delay > self.relay_horizon {
            tracing::debug!(execution_arn = arn, "wake-up in {delay:?}: left to the sweeper");
            return;
        }
        let (event, delay) = if delay > MAX_QUEUE_DELAY {
            let wake_at = self.clock.now().plus(delay).as_millis();
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
    pub(super) async fn start_children(
        &self,
        inv: &Invocation<'_>,
        service: &CheckpointService,
        arn: &str,
        first_event: u64,
    ) {
        let mut query =
            HistoryQuery { marker: Some(first_event.saturating_sub(1).to_string()), ..HistoryQuery::default() };
        loop {
            let page = match service.history(arn, &query).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(
                        execution_arn = arn,
                        "cannot read the chained invokes (the sweeper starts them): {e}"
                    );
                    return;
                }
            };
            for e in page.events.iter().filter(|e| e.event_type == EventType::ChainedInvokeStarted) {
                let (Some(child), Some(function)) = (&e.details.durable_execution_arn, &e.details.function_name) else {
                    continue;
                };
                self.wake(inv, function_of(function), child, Duration::ZERO).await;
            }
            match page.next_marker {
                Some(marker) => query.marker = Some(marker),
                None => return,
            }
        }
    }

    /// Resumes the parent of a child execution that ended, if that made it due.
    pub(super) async fn wake_parent(&self, inv: &Invocation<'_>, parent: &str) {
        match self.service(inv).get_record(parent).await {
            Ok(p) if !p.status.is_terminal() && p.active_invocation().is_none() => {
                let due_in = p.wake_at.map(|w| w.as_millis() - self.clock.now().as_millis());
                if let Some(ms) = due_in {
                    self.wake(inv, &p.function_name, parent, Duration::from_millis(ms.max(0) as u64)).await;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(execution_arn = parent, "cannot read the parent (the sweeper resumes it): {e}"),
        }
    }
}

/// The function name in an execution ARN or a function ARN (`...:function:NAME:...`), or
/// the name itself.
pub(super) fn function_of(arn_or_name: &str) -> &str {
    let tail = arn_or_name.rsplit_once(":function:").map_or(arn_or_name, |(_, t)| t);
    tail.split([':', '/']).next().unwrap_or(tail)
}
