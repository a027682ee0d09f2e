//! Callbacks: ids that are hard to guess and bound to their operation, completion from
//! outside (success, failure, heartbeat), and timeouts.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::CheckpointService;
use super::error::ServiceError;
use super::events::op_event;
use super::state::ExecState;
use super::txn::{Change, Write};
use crate::model::{CallbackDetails, ErrorObject, EventDetails, EventType, OperationStatus, OperationType, Timestamp};
use crate::store::StoredOperation;

#[derive(Serialize, Deserialize)]
struct IdParts {
    /// The execution.
    a: String,
    /// The CALLBACK operation.
    o: String,
    /// 128 random bits, hex: the part a forger cannot know.
    t: String,
}

/// A new callback id for operation `op` of execution `arn`: base64url of the execution,
/// the operation and 128 random bits.
pub(crate) fn make_id(arn: &str, op: &str) -> String {
    let token = format!("{:032x}", rand::random::<u128>());
    let json = serde_json::to_vec(&IdParts { a: arn.to_owned(), o: op.to_owned(), t: token }).expect("plain strings");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The execution and operation a callback id names, if it is well formed.
fn parse_id(id: &str) -> Option<(String, String)> {
    if id.len() > 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).ok()?;
    let parts: IdParts = serde_json::from_slice(&bytes).ok()?;
    (parts.t.len() == 32).then_some((parts.a, parts.o))
}

/// Constant-time comparison, so response times do not leak how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How an outside party completes a callback.
enum Completion {
    Success(Option<String>),
    Failure(ErrorObject),
    Heartbeat,
}

impl CheckpointService {
    /// Completes a callback with a result (`SendDurableExecutionCallbackSuccess`). The
    /// result is JSON text, which the callback's codec decodes; `None` is no result (the
    /// codec decodes `null`).
    ///
    /// A result over [`Limits::max_callback_result`](crate::checkpoint::Limits) is refused
    /// (`PayloadTooLargeError`) and changes nothing: the callback stays pending. So is a
    /// result that is not JSON text (`InvalidParameterValueException`), so the sender can
    /// send a valid one, unless
    /// [`ServiceConfig::require_json_callback_results`](super::ServiceConfig::require_json_callback_results)
    /// is off for callbacks with a non-JSON codec. AWS types the result as a blob and
    /// accepts anything; the execution then fails decoding it, which no sender can undo.
    pub async fn callback_success(&self, callback_id: &str, result: Option<String>) -> Result<(), ServiceError> {
        if let Some(r) = &result {
            self.check_callback_size("the callback result", r.len())?;
            if self.config.require_json_callback_results
                && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(r)
            {
                return Err(ServiceError::invalid(format!(
                    "the callback result must be JSON text (a string needs its quotes: \"text\"), and this is \
                     not: {e}"
                )));
            }
        }
        self.complete_callback(callback_id, Completion::Success(result)).await?;
        self.announce_callback(callback_id);
        Ok(())
    }

    fn check_callback_size(&self, what: &str, size: usize) -> Result<(), ServiceError> {
        let max = self.config.limits.max_callback_result;
        if size > max {
            return Err(ServiceError::InvalidParameter(crate::error::payload_too_large(what, size, max)));
        }
        Ok(())
    }

    fn announce_callback(&self, callback_id: &str) {
        if let Some((arn, _)) = parse_id(callback_id) {
            self.announce_due(&arn);
        }
    }

    /// Fails a callback (`SendDurableExecutionCallbackFailure`). An error over
    /// [`Limits::max_callback_result`](crate::checkpoint::Limits) is refused.
    pub async fn callback_failure(&self, callback_id: &str, error: ErrorObject) -> Result<(), ServiceError> {
        self.check_callback_size("the callback error", error.approx_size())?;
        self.complete_callback(callback_id, Completion::Failure(error)).await?;
        self.announce_callback(callback_id);
        Ok(())
    }

    /// Records a heartbeat (`SendDurableExecutionCallbackHeartbeat`): the heartbeat
    /// timeout starts over.
    pub async fn callback_heartbeat(&self, callback_id: &str) -> Result<(), ServiceError> {
        self.complete_callback(callback_id, Completion::Heartbeat).await
    }

    async fn complete_callback(&self, callback_id: &str, how: Completion) -> Result<(), ServiceError> {
        let (arn, op_id) = parse_id(callback_id)
            .ok_or_else(|| ServiceError::invalid("the callback id is malformed: it was not issued by this service"))?;
        let how = &how;
        let result = self
            .mutate(&arn, &mut |state: &ExecState, now: Timestamp| {
                let Some(stored) = state.ops.get(op_id.as_str()) else {
                    return Err(ServiceError::invalid("the callback id names no callback of this execution"));
                };
                let op = &stored.operation;
                let issued = op.callback_details.as_ref().and_then(|d| d.callback_id.as_deref()).unwrap_or("");
                if op.op_type != OperationType::Callback || !same(issued, callback_id) {
                    return Err(ServiceError::invalid(
                        "the callback id does not match the callback it names (forged or stale)",
                    ));
                }
                if op.status != OperationStatus::Started {
                    return Err(ServiceError::invalid(format!(
                        "the callback is already {}; it cannot be completed again",
                        op.status
                    )));
                }
                let mut write = Write::on(state);
                let mut next = StoredOperation {
                    seq: stored.seq,
                    operation: Arc::clone(&stored.operation),
                    meta: stored.meta.clone(),
                };
                match how {
                    Completion::Heartbeat => {
                        let Some(secs) = stored.meta.heartbeat_seconds else {
                            // No heartbeat timeout: nothing to extend, but the id is valid.
                            return Ok(None);
                        };
                        next.meta.heartbeat_at = Some(now.plus_seconds(i64::from(secs)));
                    }
                    Completion::Success(result) => {
                        let o = Arc::make_mut(&mut next.operation);
                        o.status = OperationStatus::Succeeded;
                        o.end_timestamp = Some(now);
                        let payload: Option<Arc<str>> = result.as_deref().map(Into::into);
                        o.callback_details = Some(Box::new(CallbackDetails {
                            callback_id: Some(callback_id.to_owned()),
                            result: payload.clone(),
                            error: None,
                        }));
                        write.events.push(op_event(
                            &mut write.record,
                            EventType::CallbackSucceeded,
                            now,
                            o,
                            EventDetails::with_result(payload),
                        ));
                    }
                    Completion::Failure(error) => {
                        let o = Arc::make_mut(&mut next.operation);
                        o.status = OperationStatus::Failed;
                        o.end_timestamp = Some(now);
                        o.callback_details = Some(Box::new(CallbackDetails {
                            callback_id: Some(callback_id.to_owned()),
                            result: None,
                            error: Some(error.clone()),
                        }));
                        write.events.push(op_event(
                            &mut write.record,
                            EventType::CallbackFailed,
                            now,
                            o,
                            EventDetails::with_error(Some(error.clone())),
                        ));
                    }
                }
                write.ops.push(next);
                let finished = !matches!(how, Completion::Heartbeat);
                Ok(Some(Change { write, wake: finished, notify: finished.then(|| op_id.as_str().into()) }))
            })
            .await;
        match result {
            Err(ServiceError::InvalidParameter(e)) if e.error_type.as_deref() == Some("ResourceNotFoundException") => {
                Err(ServiceError::invalid("the callback id names an execution this service does not have"))
            }
            Err(ServiceError::NotRunning(m)) => {
                Err(ServiceError::invalid(format!("the callback's execution has ended: {m}")))
            }
            other => other,
        }
    }
}

/// The error recorded when a callback's overall timeout passes.
pub(crate) fn timeout_error() -> ErrorObject {
    ErrorObject::new("Callback.Timeout", "the callback was not completed before its timeout")
}

/// The error recorded when a callback's heartbeat timeout passes.
pub(crate) fn heartbeat_error() -> ErrorObject {
    ErrorObject::new("Callback.Heartbeat", "no heartbeat arrived within the callback's heartbeat timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_operation_and_carry_128_random_bits() {
        let a = make_id("arn:x", "op1");
        let b = make_id("arn:x", "op1");
        assert_ne!(a, b, "random");
        assert_eq!(parse_id(&a), Some(("arn:x".to_owned(), "op1".to_owned())));
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(parse_id("not-base64!"), None);
        assert_eq!(
            parse_id(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{\"a\":\"x\",\"o\":\"y\",\"t\":\"short\"}")
            ),
            None
        );
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
