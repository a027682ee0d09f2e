//! The events a durable Lambda binary receives, told apart: AWS's durable invocation input
//! (managed mode), a self-hosted event, or an SQS batch of self-hosted events.

use durable_core::model::{DurableExecutionInvocationInput, ErrorObject};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The error type of a self-hosted event that does not parse or cannot be served as asked
/// (an unknown execution, a forged callback id, a start with another input).
pub const INVALID_EVENT_ERROR_TYPE: &str = "Durable.InvalidEvent";
/// The error type of a self-hosted event sent to a function without `DURABLE_TABLE`, or to
/// a binary built without the `lambda-selfhosted` feature.
pub const NOT_CONFIGURED_ERROR_TYPE: &str = "Durable.SelfHostedNotConfigured";

/// The error type of the answer to an event this binary does not understand.
pub const UNRECOGNISED_EVENT_ERROR_TYPE: &str = "Durable.UnrecognisedEvent";

/// The error type of the answer to a durable invocation input that does not parse.
pub const INVALID_INPUT_ERROR_TYPE: &str = "Durable.InvalidInvocationInput";

/// The error type of the answer to an invocation of a function this binary does not host.
pub const UNKNOWN_FUNCTION_ERROR_TYPE: &str = "Durable.UnknownFunction";

/// The fields that make an event a managed durable invocation.
const MANAGED_FIELDS: [&str; 3] = ["DurableExecutionArn", "CheckpointToken", "InitialExecutionState"];

/// An event, as the entry point understands it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DurableEvent {
    /// AWS Lambda's durable invocation input (managed mode).
    Managed(Box<DurableExecutionInvocationInput>),
    /// A self-hosted event (an object with a `durable` field).
    SelfHosted(SelfHostedEvent),
    /// An SQS batch (an event source mapping): each body is a self-hosted event.
    Sqs(Vec<SqsMessage>),
}

impl DurableEvent {
    /// Reads an event. An object with all of `DurableExecutionArn`, `CheckpointToken` and
    /// `InitialExecutionState` is a managed invocation (and must parse as one); an object
    /// with a `durable` field is a self-hosted event (and must parse as one); an object
    /// with `Records` from `aws:sqs` is an SQS batch; anything else is refused, naming what
    /// was expected.
    pub fn parse(event: Value) -> Result<DurableEvent, Diagnostic> {
        let is_managed = event.as_object().is_some_and(|o| MANAGED_FIELDS.iter().all(|f| o.contains_key(*f)));
        if is_managed {
            return serde_json::from_value(event).map(|i| DurableEvent::Managed(Box::new(i))).map_err(|e| Diagnostic {
                error_type: INVALID_INPUT_ERROR_TYPE.to_owned(),
                error_message: format!("the durable invocation input does not parse: {e}"),
            });
        }
        if event.as_object().is_some_and(|o| o.contains_key("durable")) {
            return serde_json::from_value(event).map(DurableEvent::SelfHosted).map_err(|e| Diagnostic {
                error_type: INVALID_EVENT_ERROR_TYPE.to_owned(),
                error_message: format!(
                    "the self-hosted event does not parse: {e} (expected {{\"durable\": \"start\" | \"resume\" | \
                     \"callback\" | \"sweep\" | \"get\" | \"history\", ...}})"
                ),
            });
        }
        if let Some(records) = event.get("Records").and_then(Value::as_array)
            && !records.is_empty()
            && records.iter().all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        {
            let records = records.clone();
            return records
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<Vec<SqsMessage>, _>>()
                .map(DurableEvent::Sqs)
                .map_err(|e| Diagnostic {
                    error_type: INVALID_EVENT_ERROR_TYPE.to_owned(),
                    error_message: format!("the SQS event does not parse: {e}"),
                });
        }
        Err(Diagnostic {
            error_type: UNRECOGNISED_EVENT_ERROR_TYPE.to_owned(),
            error_message: format!(
                "this durable function expected AWS Lambda's durable invocation input (an object with {}), as the \
                 service sends to a function created with DurableConfig, or a self-hosted event (an object with \
                 a \"durable\" field, or an SQS batch of them); it received {}",
                MANAGED_FIELDS.join(", "),
                describe_event(&event)
            ),
        })
    }
}

/// What an event looks like, in a few words (its keys, not its data: events may hold
/// secrets).
fn describe_event(event: &Value) -> String {
    match event {
        Value::Object(o) if o.is_empty() => "an empty object".to_owned(),
        Value::Object(o) => {
            let mut keys: Vec<&str> = o.keys().map(String::as_str).take(10).collect();
            keys.sort_unstable();
            let more = if o.len() > keys.len() { ", ..." } else { "" };
            format!("an object with the keys {}{more}", keys.join(", "))
        }
        Value::Array(_) => "an array".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Null => "null".to_owned(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
