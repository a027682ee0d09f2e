//! `CallbackActions`: what the external system sends, and when.
//!
//! AWS's validator polls the history every 2 s; for each new `CallbackStarted` it takes the
//! first unused action whose `CallbackName` matches the callback's `Name` (exactly, `*`, or
//! `${/re/}`), waits the action's `Delay`, and sends it. A heartbeat leaves the callback
//! open, so the next poll matches the callback again with the next action. The
//! [`CallbackPoller`] replays that in virtual time; a [`CallbackExecutor`] delivers.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use durable::model::{ErrorObject, Timestamp};
use durable::service::CheckpointService;

use super::matcher::{regex_matcher, regex_search};
use super::placeholders::Placeholders;
use super::pyvalue::PyValue;
use super::requirement::{CallbackAction, CallbackOperation};

/// Delivers callback completions to the service, as `SendDurableExecutionCallback*` does.
pub trait CallbackExecutor {
    /// `SendDurableExecutionCallbackSuccess` with the raw result (JSON text), if any.
    fn success<'a>(&'a self, callback_id: &'a str, result: Option<String>) -> LocalBoxFuture<'a, Result<(), String>>;
    /// `SendDurableExecutionCallbackFailure` with the error, if any.
    fn failure<'a>(
        &'a self,
        callback_id: &'a str,
        error: Option<ErrorObject>,
    ) -> LocalBoxFuture<'a, Result<(), String>>;
    /// `SendDurableExecutionCallbackHeartbeat`.
    fn heartbeat<'a>(&'a self, callback_id: &'a str) -> LocalBoxFuture<'a, Result<(), String>>;
}

/// A completion to deliver.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackSignal {
    /// Success, with the raw result payload.
    Success(Option<String>),
    /// Failure, with the error.
    Failure(Option<ErrorObject>),
    /// A heartbeat.
    Heartbeat,
}

/// Delivers through the in-process [`CheckpointService`].
pub struct ServiceCallbacks {
    service: Arc<CheckpointService>,
}

impl ServiceCallbacks {
    /// Delivers to `service`.
    pub fn new(service: Arc<CheckpointService>) -> Self {
        ServiceCallbacks { service }
    }
}

impl CallbackExecutor for ServiceCallbacks {
    fn success<'a>(&'a self, callback_id: &'a str, result: Option<String>) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(send_to_service(&self.service, callback_id, CallbackSignal::Success(result)))
    }

    fn failure<'a>(
        &'a self,
        callback_id: &'a str,
        error: Option<ErrorObject>,
    ) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(send_to_service(&self.service, callback_id, CallbackSignal::Failure(error)))
    }

    fn heartbeat<'a>(&'a self, callback_id: &'a str) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(send_to_service(&self.service, callback_id, CallbackSignal::Heartbeat))
    }
}

/// Delivers `signal` for `callback_id` through the service's callback API (what
/// `SendDurableExecutionCallbackSuccess/Failure/Heartbeat` call). The one place that knows
/// that API: adapt it here if it changes.
async fn send_to_service(service: &CheckpointService, callback_id: &str, signal: CallbackSignal) -> Result<(), String> {
    let sent = match signal {
        CallbackSignal::Success(result) => service.callback_success(callback_id, result).await,
        CallbackSignal::Failure(error) => service.callback_failure(callback_id, error.unwrap_or_default()).await,
        CallbackSignal::Heartbeat => service.callback_heartbeat(callback_id).await,
    };
    sent.map_err(|e| e.to_string())
}

/// An action due at a virtual time.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// When to send it.
    pub at: Timestamp,
    /// The callback it goes to.
    pub callback_id: String,
    /// What to send (placeholders already substituted).
    pub signal: CallbackSignal,
    /// The action's `CallbackName`, for messages.
    pub callback_name: String,
}

/// AWS's callback polling, over history snapshots.
pub struct CallbackPoller {
    actions: Vec<CallbackAction>,
    used: Vec<bool>,
    handled: HashSet<String>,
    /// Problems met (no matching action, an invalid payload).
    pub errors: Vec<String>,
}

impl CallbackPoller {
    /// A poller over a requirement's actions.
    pub fn new(actions: Vec<CallbackAction>) -> Self {
        CallbackPoller { used: vec![false; actions.len()], actions, handled: HashSet::new(), errors: Vec::new() }
    }

    /// One poll at `now` of the history `events` (as JSON values): the actions to send,
    /// each after the previous one's delay, as the validator sends them one by one.
    pub fn poll(&mut self, events: &[PyValue], now: Timestamp, ctx: &Placeholders) -> Vec<Scheduled> {
        let mut out = Vec::new();
        let mut cursor = now;
        let new_callbacks: Vec<(String, String)> = events
            .iter()
            .filter(|e| e.get("EventType").and_then(PyValue::as_str) == Some("CallbackStarted"))
            .filter_map(|e| {
                let id = e.get("CallbackStartedDetails")?.get("CallbackId")?.as_str()?.to_owned();
                let name = e.get("Name").and_then(PyValue::as_str).unwrap_or_default().to_owned();
                Some((id, name))
            })
            .filter(|(id, _)| !id.is_empty() && !self.handled.contains(id))
            .collect();
        for (callback_id, name) in new_callbacks {
            let Some(index) = self.find_action(&name, ctx) else {
                if !self.actions.is_empty() {
                    let shown = if name.is_empty() { "<anonymous>" } else { name.as_str() };
                    self.errors.push(format!("No matching CallbackAction for callback '{shown}' (id={callback_id})"));
                }
                self.handled.insert(callback_id);
                continue;
            };
            self.used[index] = true;
            let action = &self.actions[index];
            if action.operation != CallbackOperation::Heartbeat {
                self.handled.insert(callback_id.clone());
            }
            cursor = cursor.plus_millis((action.delay_seconds * 1000.0).round() as i64);
            match signal_of(action, ctx) {
                Ok(signal) => {
                    out.push(Scheduled {
                        at: cursor,
                        callback_id,
                        signal,
                        callback_name: action.callback_name.clone(),
                    });
                }
                Err(e) => self.errors.push(format!("Callback failure failed for callback_id={callback_id}: {e}")),
            }
        }
        out
    }

    fn find_action(&self, event_name: &str, ctx: &Placeholders) -> Option<usize> {
        (0..self.actions.len()).filter(|i| !self.used[*i]).find(|i| {
            let resolved = ctx.substitute_str(&self.actions[*i].callback_name);
            if resolved == "*" || resolved == event_name {
                return true;
            }
            regex_matcher(&PyValue::Str(resolved.clone()))
                .is_some_and(|pattern| regex_search(pattern, event_name).unwrap_or(false))
        })
    }
}

/// The completion an action sends, its payload substituted: a success sends
/// `json.dumps(payload)`; a failure sends the payload's `ErrorType`, `ErrorMessage`,
/// `ErrorData` and `StackTrace`.
fn signal_of(action: &CallbackAction, ctx: &Placeholders) -> Result<CallbackSignal, String> {
    let payload = ctx.substitute(&action.payload);
    Ok(match action.operation {
        CallbackOperation::Heartbeat => CallbackSignal::Heartbeat,
        CallbackOperation::Success => CallbackSignal::Success((payload != PyValue::None).then(|| payload.json_dumps())),
        CallbackOperation::Failure => match &payload {
            PyValue::None => CallbackSignal::Failure(None),
            PyValue::Dict(_) => {
                let text = |key: &str| payload.get(key).map(PyValue::py_str);
                let stack_trace = match payload.get("StackTrace") {
                    Some(PyValue::List(l)) => Some(l.iter().map(PyValue::py_str).collect()),
                    Some(other) => Some(vec![other.py_str()]),
                    None => None,
                };
                let error = ErrorObject {
                    error_message: text("ErrorMessage"),
                    error_type: text("ErrorType"),
                    error_data: text("ErrorData"),
                    stack_trace,
                };
                let empty = error.error_message.is_none()
                    && error.error_type.is_none()
                    && error.error_data.is_none()
                    && error.stack_trace.is_none();
                CallbackSignal::Failure((!empty).then_some(error))
            }
            other => {
                return Err(format!(
                    "Failure callback payload must be a dict containing ErrorType/ErrorMessage/ErrorData/StackTrace \
                     fields, got {}",
                    other.py_repr()
                ));
            }
        },
    })
}

/// Sends one scheduled action through `executor`.
pub async fn deliver(executor: &dyn CallbackExecutor, scheduled: &Scheduled) -> Result<(), String> {
    let id = scheduled.callback_id.as_str();
    let (operation, result) = match &scheduled.signal {
        CallbackSignal::Success(r) => ("success", executor.success(id, r.clone()).await),
        CallbackSignal::Failure(e) => ("failure", executor.failure(id, e.clone()).await),
        CallbackSignal::Heartbeat => ("heartbeat", executor.heartbeat(id).await),
    };
    result.map_err(|e| format!("Callback {operation} failed for callback_id={id}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(yaml: &str) -> Vec<CallbackAction> {
        let PyValue::List(list) = PyValue::from_yaml(&serde_yaml_ng::from_str(yaml).unwrap()) else { panic!("a list") };
        list.iter().map(|a| CallbackAction::from_value(a).unwrap()).collect()
    }

    fn started(event_id: i128, name: &str, callback_id: &str) -> PyValue {
        PyValue::Dict(vec![
            ("EventType".into(), PyValue::str("CallbackStarted")),
            ("EventId".into(), PyValue::Int(event_id)),
            ("Name".into(), PyValue::str(name)),
            ("CallbackStartedDetails".into(), PyValue::Dict(vec![("CallbackId".into(), PyValue::str(callback_id))])),
        ])
    }

    #[test]
    fn heartbeat_keeps_the_callback_for_the_next_poll() {
        let mut ctx = Placeholders::new();
        ctx.bind("CB_NAME", PyValue::str("cb"));
        ctx.bind("CB_PAYLOAD", PyValue::str("done"));
        let mut poller = CallbackPoller::new(actions(
            "  - {CallbackName: '${CB_NAME}', Operation: heartbeat}\n  - {CallbackName: '${CB_NAME}', Operation: success, Payload: '${CB_PAYLOAD}', Delay: 1}",
        ));
        let history = [started(2, "cb", "id-1")];
        let t0 = Timestamp::from_millis(10_000);
        let first = poller.poll(&history, t0, &ctx);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].signal, CallbackSignal::Heartbeat);
        assert_eq!(first[0].at, t0);
        let second = poller.poll(&history, t0.plus_seconds(2), &ctx);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].signal, CallbackSignal::Success(Some("\"done\"".into())));
        assert_eq!(second[0].at, t0.plus_seconds(3));
        assert!(poller.poll(&history, t0.plus_seconds(4), &ctx).is_empty(), "the callback is handled");
        assert!(poller.errors.is_empty());
    }

    #[test]
    fn names_match_exactly_by_wildcard_or_regex_and_delays_add_up() {
        let mut poller = CallbackPoller::new(actions(
            "  - {CallbackName: b, Operation: success, Payload: {status: ok, n: 42}, Delay: 3}\n  - {CallbackName: '${/^a/}', Operation: failure, Payload: {ErrorType: RejectedError, ErrorMessage: not approved}, Delay: 4}",
        ));
        let t0 = Timestamp::from_millis(0);
        let out = poller.poll(&[started(2, "alpha", "A"), started(3, "b", "B")], t0, &Placeholders::new());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].callback_id, "A");
        assert_eq!(out[0].at, t0.plus_seconds(4));
        assert_eq!(out[0].signal, CallbackSignal::Failure(Some(ErrorObject::new("RejectedError", "not approved"))));
        assert_eq!(out[1].at, t0.plus_seconds(7), "the validator sends one action after the other");
        assert_eq!(out[1].signal, CallbackSignal::Success(Some(r#"{"status": "ok", "n": 42}"#.into())));
    }

    #[test]
    fn unmatched_callbacks_are_errors_unless_no_actions_exist() {
        let mut with = CallbackPoller::new(actions("  - {CallbackName: x, Operation: success}"));
        assert!(with.poll(&[started(2, "y", "Y")], Timestamp::from_millis(0), &Placeholders::new()).is_empty());
        assert_eq!(with.errors, ["No matching CallbackAction for callback 'y' (id=Y)"]);
        let mut without = CallbackPoller::new(Vec::new());
        assert!(without.poll(&[started(2, "y", "Y")], Timestamp::from_millis(0), &Placeholders::new()).is_empty());
        assert!(without.errors.is_empty(), "no actions: a timeout test leaves the callback open");
    }
}
