//! The replay tester: does the current code still replay a recorded execution?
//!
//! Give it a saved history (the JSON of `GetDurableExecutionHistory`, which `durable
//! history` prints and [`TestExecution::history_json`](crate::testing::TestExecution::history_json)
//! returns; or the operations of `GetDurableExecutionState`) and a handler. It replays
//! the history through the handler without running anything new: every path of the code
//! stops where it would start work the history does not have (a new operation, a step body
//! to run), so no side effect happens and nothing is written anywhere. Then it reports:
//!
//! - **compatible**: the code called exactly what was recorded, as far as the history
//!   goes (and, for a finished execution, ended the same way);
//! - **diverged**: the first call whose recorded operation differs (type, sub-type, name
//!   or parent), with its call site and both sides;
//! - **failed**: the replay raised an error the recorded execution did not (a recorded
//!   result no longer deserialises as the step's type, say);
//! - **outcome changed**: a finished execution now ends with another status or result.
//!
//! ```no_run
//! # async fn demo() {
//! use durable_core::replay::{RecordedExecution, check};
//! use durable_core::{DurableContext, Error, handler};
//!
//! async fn greet(ctx: DurableContext, name: String) -> Result<String, Error> {
//!     ctx.step("greet", async |_| Ok(format!("Hello, {name}!"))).await
//! }
//!
//! let saved = std::fs::read_to_string("history.json").unwrap();
//! let recorded = RecordedExecution::from_json(&saved).unwrap();
//! let report = check(&handler(greet), &recorded).await;
//! assert!(report.is_compatible(), "{report}");
//! # }
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::checkpoint::{CheckpointError, Checkpointer, Limits};
pub use crate::engine::{Divergence, Frontier, OperationShape};
use crate::engine::{InvocationOutcome, NON_DETERMINISTIC_ERROR_TYPE, Observer, run_observed};
use crate::handler::Handler;
use crate::model::{
    CallbackDetails, ChainedInvokeDetails, CheckpointDurableExecutionResponse, ContextDetails,
    DurableExecutionInvocationInput, ErrorObject, Event, EventType, ExecutionDetails, ExecutionState, InvocationStatus,
    Operation, OperationStatus, OperationType, OperationUpdate, Timestamp, WaitDetails,
};

/// The verdict of a replay check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "verdict")]
pub enum Verdict {
    /// The code replays the history.
    Compatible,
    /// A call differs from its recorded operation.
    Diverged(Divergence),
    /// The replay fails with an error the recorded execution did not raise.
    Failed {
        /// The error.
        error: ErrorObject,
    },
    /// A finished execution now ends differently.
    OutcomeChanged {
        /// The recorded status and result or error.
        recorded: String,
        /// The replay's.
        current: String,
    },
}

/// What a replay check found. `Display` prints a report for people; `Serialize` gives
/// JSON for tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// How many recorded operations the replay visited.
    pub replayed_operations: usize,
    /// Where the code goes past the history (an execution still in progress).
    pub continues_at: Option<Frontier>,
    /// Recorded operations the replay never visited. Not an error by itself (the losers
    /// of a race, an operation the new code no longer needs), but worth a look.
    pub unreached: Vec<(String, OperationShape)>,
}

impl ReplayReport {
    /// Whether the code replays the history.
    pub fn is_compatible(&self) -> bool {
        self.verdict == Verdict::Compatible
    }

    /// Panics with the report unless compatible (for tests).
    ///
    /// # Panics
    ///
    /// When the verdict is not [`Verdict::Compatible`].
    #[track_caller]
    pub fn assert_compatible(&self) {
        assert!(self.is_compatible(), "the code does not replay the recorded execution:\n{self}");
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Compatible => {
                writeln!(f, "compatible: the code replays the {} recorded operations", self.replayed_operations)?;
            }
            Verdict::Diverged(d) => {
                writeln!(f, "diverged at {} (operation {})", d.call_site, d.operation_id)?;
                if let Some(r) = &d.recorded {
                    writeln!(f, "  recorded: {r}")?;
                }
                if let Some(c) = &d.current {
                    writeln!(f, "  current:  {c}")?;
                }
                writeln!(f, "  {}", d.message)?;
            }
            Verdict::Failed { error } => {
                writeln!(f, "failed: the replay raises {error}, which the recorded execution did not")?;
            }
            Verdict::OutcomeChanged { recorded, current } => {
                writeln!(f, "outcome changed: recorded {recorded}, the replay ends {current}")?;
            }
        }
        if let Some(c) = &self.continues_at {
            writeln!(f, "the code continues past the history at {} (operation {})", c.call_site, c.operation_id)?;
        }
        for (id, shape) in &self.unreached {
            writeln!(f, "note: recorded operation {id} ({shape}) was not reached by the replay")?;
        }
        Ok(())
    }
}

/// A recorded execution, as the replay tester needs it: its operations, input and (if
/// finished) its outcome.
#[derive(Debug, Clone, Default)]
pub struct RecordedExecution {
    /// The operations, the EXECUTION operation (with the input) included.
    pub operations: Vec<Operation>,
    /// The execution's end, when it finished: status, and result or error.
    pub outcome: Option<(InvocationStatus, Option<String>, Option<ErrorObject>)>,
}

impl RecordedExecution {
    /// Reads saved JSON: a history (`{"Events": [...]}` as `GetDurableExecutionHistory`
    /// returns it, or a bare array of events) or a state (`{"Operations": [...]}`).
    ///
    /// # Errors
    ///
    /// When the text is neither, with what was wrong.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let events = match &value {
            serde_json::Value::Array(_) => Some(value.clone()),
            serde_json::Value::Object(o) => o.get("Events").cloned(),
            _ => None,
        };
        if let Some(events) = events {
            let events: Vec<Event> =
                serde_json::from_value(events).map_err(|e| format!("not a list of history events: {e}"))?;
            return Ok(Self::from_history(&events));
        }
        if let Some(ops) = value.get("Operations") {
            let ops: Vec<Operation> =
                serde_json::from_value(ops.clone()).map_err(|e| format!("not a list of operations: {e}"))?;
            return Ok(Self::from_operations(ops));
        }
        Err("expected a history ({\"Events\": [...]}) or a state ({\"Operations\": [...]})".to_owned())
    }

    /// From operations (the EXECUTION operation carries the input).
    pub fn from_operations(operations: Vec<Operation>) -> Self {
        RecordedExecution { operations, outcome: None }
    }

    /// Rebuilds the operations from history events: each operation's last event gives
    /// its status, and its details what a replay reads (results, errors, attempts,
    /// callback ids).
    pub fn from_history(events: &[Event]) -> Self {
        let mut ops: BTreeMap<(u64, Arc<str>), Operation> = BTreeMap::new();
        let mut order: std::collections::HashMap<Arc<str>, u64> = std::collections::HashMap::new();
        let mut outcome = None;
        let mut execution: Option<Operation> = None;
        for e in events {
            let d = &e.details;
            let result = d.result.as_ref().and_then(|r| r.payload.clone());
            let error = d.error.as_ref().and_then(|r| r.payload.clone());
            match e.event_type {
                EventType::ExecutionStarted => {
                    let id: Arc<str> = e.id.clone().unwrap_or_else(|| Arc::from("execution"));
                    let mut op =
                        Operation::new(id, OperationType::Execution, OperationStatus::Started, e.event_timestamp);
                    op.execution_details = Some(Box::new(ExecutionDetails {
                        input_payload: d.input.as_ref().and_then(|i| i.payload.clone()),
                    }));
                    execution = Some(op);
                    continue;
                }
                EventType::ExecutionSucceeded => {
                    outcome = Some((InvocationStatus::Succeeded, result.map(|r| r.to_string()), None));
                    continue;
                }
                EventType::ExecutionFailed | EventType::ExecutionTimedOut | EventType::ExecutionStopped => {
                    outcome = Some((InvocationStatus::Failed, None, error));
                    continue;
                }
                EventType::InvocationCompleted | EventType::ExecutionPaused | EventType::ExecutionResumed => continue,
                _ => {}
            }
            let Some(id) = e.id.clone() else { continue };
            let seq = *order.entry(id.clone()).or_insert(e.event_id);
            let op = ops.entry((seq, id.clone())).or_insert_with(|| {
                let op_type = op_type_of(e.event_type);
                let mut op = Operation::new(id.clone(), op_type, OperationStatus::Started, e.event_timestamp);
                op.parent_id.clone_from(&e.parent_id);
                op.name.clone_from(&e.name);
                op.sub_type.clone_from(&e.sub_type);
                op
            });
            apply_event(op, e, result, error);
        }
        let mut operations: Vec<Operation> = execution.into_iter().collect();
        operations.extend(ops.into_values());
        RecordedExecution { operations, outcome }
    }
}

fn op_type_of(t: EventType) -> OperationType {
    use EventType as E;
    match t {
        E::ContextStarted | E::ContextSucceeded | E::ContextFailed => OperationType::Context,
        E::WaitStarted | E::WaitSucceeded | E::WaitCancelled => OperationType::Wait,
        E::ChainedInvokeStarted
        | E::ChainedInvokeSucceeded
        | E::ChainedInvokeFailed
        | E::ChainedInvokeTimedOut
        | E::ChainedInvokeStopped => OperationType::ChainedInvoke,
        E::CallbackStarted | E::CallbackSucceeded | E::CallbackFailed | E::CallbackTimedOut => OperationType::Callback,
        _ => OperationType::Step,
    }
}

fn apply_event(op: &mut Operation, e: &Event, result: Option<Arc<str>>, error: Option<ErrorObject>) {
    use EventType as E;
    let d = &e.details;
    let terminal = |op: &mut Operation, status| {
        op.status = status;
        op.end_timestamp = Some(e.event_timestamp);
    };
    match e.event_type {
        E::StepStarted => {
            op.status = OperationStatus::Started;
            let s = op.step_details.get_or_insert_with(Box::default);
            s.attempt = Some(s.attempt.unwrap_or(0).max(1));
        }
        E::StepSucceeded | E::StepFailed => {
            let retry = d.retry_details.clone().unwrap_or_default();
            let s = op.step_details.get_or_insert_with(Box::default);
            if let Some(a) = retry.current_attempt {
                s.attempt = Some(a);
            }
            if e.event_type == E::StepSucceeded {
                s.result = result;
            } else {
                s.error = error;
            }
            match retry.next_attempt_delay_seconds {
                // A retry (or a wait_for_condition poll) scheduled: the next attempt is due.
                Some(delay) => {
                    s.next_attempt_timestamp = Some(e.event_timestamp.plus_seconds(i64::from(delay)));
                    op.status = OperationStatus::Ready;
                }
                None if e.event_type == E::StepSucceeded => terminal(op, OperationStatus::Succeeded),
                None => terminal(op, OperationStatus::Failed),
            }
        }
        E::ContextStarted | E::ChainedInvokeStarted => op.status = OperationStatus::Started,
        E::ContextSucceeded => {
            let replay_children = result.as_deref() == Some("");
            op.context_details = Some(Box::new(ContextDetails {
                replay_children: replay_children.then_some(true),
                result: if replay_children { None } else { result },
                error: None,
            }));
            terminal(op, OperationStatus::Succeeded);
        }
        E::ContextFailed => {
            op.context_details = Some(Box::new(ContextDetails { replay_children: None, result: None, error }));
            terminal(op, OperationStatus::Failed);
        }
        E::WaitStarted => {
            op.status = OperationStatus::Started;
            op.wait_details = Some(Box::new(WaitDetails { scheduled_end_timestamp: d.scheduled_end_timestamp }));
        }
        E::WaitSucceeded => terminal(op, OperationStatus::Succeeded),
        E::WaitCancelled => terminal(op, OperationStatus::Cancelled),
        E::CallbackStarted => {
            op.status = OperationStatus::Started;
            op.callback_details =
                Some(Box::new(CallbackDetails { callback_id: d.callback_id.clone(), result: None, error: None }));
        }
        E::CallbackSucceeded | E::CallbackFailed | E::CallbackTimedOut => {
            let c = op.callback_details.get_or_insert_with(Box::default);
            if e.event_type == E::CallbackSucceeded {
                c.result = result;
                terminal(op, OperationStatus::Succeeded);
            } else {
                c.error = error;
                let status =
                    if e.event_type == E::CallbackFailed { OperationStatus::Failed } else { OperationStatus::TimedOut };
                terminal(op, status);
            }
        }
        E::ChainedInvokeSucceeded | E::ChainedInvokeFailed | E::ChainedInvokeTimedOut | E::ChainedInvokeStopped => {
            op.chained_invoke_details =
                Some(Box::new(ChainedInvokeDetails { result: result.clone(), error: error.clone() }));
            let status = match e.event_type {
                E::ChainedInvokeSucceeded => OperationStatus::Succeeded,
                E::ChainedInvokeFailed => OperationStatus::Failed,
                E::ChainedInvokeTimedOut => OperationStatus::TimedOut,
                _ => OperationStatus::Stopped,
            };
            terminal(op, status);
        }
        _ => {}
    }
}

/// The checkpointer of a replay check: accepts whatever the replay checkpoints (updates to
/// recorded operations, as a child context finishing), keeps nothing, reports nothing.
struct Discard;

#[async_trait(?Send)]
impl Checkpointer for Discard {
    async fn checkpoint(
        &self,
        _arn: &str,
        token: &str,
        _updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        Ok(CheckpointDurableExecutionResponse {
            checkpoint_token: Some(format!("{token}+")),
            new_execution_state: ExecutionState::default(),
        })
    }

    async fn get_state(&self, _arn: &str, _token: &str, _marker: &str) -> Result<ExecutionState, CheckpointError> {
        Ok(ExecutionState::default())
    }

    fn limits(&self) -> Limits {
        // Whatever was recorded was accepted by its store; replaying it is not the place
        // to enforce a smaller one.
        Limits {
            max_input: usize::MAX,
            max_operation_payload: usize::MAX,
            max_context_result: usize::MAX,
            max_callback_result: usize::MAX,
            max_execution_result: usize::MAX,
            max_invocation_result: usize::MAX,
            ..Limits::AWS
        }
    }
}

/// What the replay tester sees of the engine: the first divergence, the first point where
/// the code goes past the history.
#[derive(Default)]
struct Watcher {
    divergence: RefCell<Option<Divergence>>,
    frontier: RefCell<Option<Frontier>>,
}

impl Observer for Watcher {
    fn diverged(&self, divergence: &Divergence) {
        self.divergence.borrow_mut().get_or_insert_with(|| divergence.clone());
    }

    fn reached_frontier(&self, frontier: Frontier) {
        self.frontier.borrow_mut().get_or_insert(frontier);
    }
}

/// Replays `recorded` through `handler` and reports whether the code still matches it.
/// Runs no step body and starts no new operation (see the module docs). The verdicts
/// follow the engine's replay checks exactly: what would fail a real replay is
/// [`Verdict::Diverged`] here.
pub async fn check(handler: &dyn Handler, recorded: &RecordedExecution) -> ReplayReport {
    let recorded_count = recorded.operations.iter().filter(|o| o.op_type != OperationType::Execution).count();
    let mut operations = recorded.operations.clone();
    if !operations.iter().any(|o| o.op_type == OperationType::Execution) {
        operations.insert(
            0,
            Operation::new(
                "replay-check-execution",
                OperationType::Execution,
                OperationStatus::Started,
                Timestamp::EPOCH,
            ),
        );
    }
    let input = DurableExecutionInvocationInput {
        durable_execution_arn: "replay-check".to_owned(),
        checkpoint_token: "replay-check".to_owned(),
        initial_execution_state: ExecutionState { operations, next_marker: None },
        updated_operation_ids: None,
    };
    let watcher = Rc::new(Watcher::default());
    let (outcome, engine) =
        run_observed(input, Rc::new(Discard), watcher.clone(), |ctx, payload| handler.call(ctx, payload)).await;
    let unreached: Vec<(String, OperationShape)> =
        engine.unvisited_operations().iter().map(|o| (o.id.to_string(), OperationShape::of_record(o))).collect();
    let continues_at = watcher.frontier.borrow().clone();
    let divergence = watcher.divergence.borrow().clone();
    let verdict = match (divergence, outcome) {
        (Some(d), _) => Verdict::Diverged(d),
        (None, InvocationOutcome::Output(out)) => match (out.status, &recorded.outcome) {
            (InvocationStatus::Pending, _) => Verdict::Compatible,
            (InvocationStatus::Failed, _)
                if out.error.as_ref().and_then(|e| e.error_type.as_deref()) == Some(NON_DETERMINISTIC_ERROR_TYPE) =>
            {
                Verdict::Failed { error: out.error.unwrap_or_default() }
            }
            (_, None) if out.status == InvocationStatus::Succeeded => Verdict::Compatible,
            (_, None) => Verdict::Failed { error: out.error.unwrap_or_default() },
            (status, Some((rec_status, rec_result, rec_error))) => {
                let same = status == *rec_status
                    && match status {
                        InvocationStatus::Succeeded => same_json(out.result.as_deref(), rec_result.as_deref()),
                        _ => {
                            out.error.as_ref().and_then(|e| e.error_type.as_deref())
                                == rec_error.as_ref().and_then(|e| e.error_type.as_deref())
                        }
                    };
                if same {
                    Verdict::Compatible
                } else {
                    Verdict::OutcomeChanged {
                        recorded: describe_outcome(*rec_status, rec_result.as_deref(), rec_error.as_ref()),
                        current: describe_outcome(status, out.result.as_deref(), out.error.as_ref()),
                    }
                }
            }
        },
        (None, InvocationOutcome::Retry(m) | InvocationOutcome::Revoked(m)) => {
            Verdict::Failed { error: ErrorObject::new("ReplayCheckError", m) }
        }
    };
    ReplayReport { verdict, replayed_operations: recorded_count - unreached.len(), continues_at, unreached }
}

fn same_json(a: Option<&str>, b: Option<&str>) -> bool {
    let parse =
        |s: Option<&str>| s.filter(|s| !s.is_empty()).and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
    a == b || parse(a) == parse(b)
}

fn describe_outcome(status: InvocationStatus, result: Option<&str>, error: Option<&ErrorObject>) -> String {
    match status {
        InvocationStatus::Succeeded => format!("SUCCEEDED with {}", result.unwrap_or("no result")),
        _ => format!("{status} with {}", error.map_or_else(|| "no error".to_owned(), ToString::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SubType;

    #[test]
    fn shapes_print_readably() {
        let s = OperationShape {
            op_type: OperationType::Step,
            sub_type: Some(SubType::STEP.to_owned()),
            name: Some("charge".into()),
            parent_id: None,
        };
        assert_eq!(s.to_string(), "STEP/Step named \"charge\" at the root");
    }

    #[test]
    fn bad_json_is_refused_with_a_reason() {
        assert!(RecordedExecution::from_json("nope").unwrap_err().contains("not JSON"));
        assert!(RecordedExecution::from_json("{\"x\":1}").unwrap_err().contains("expected a history"));
        assert!(RecordedExecution::from_json("{\"Events\":[{\"bad\":1}]}").unwrap_err().contains("history events"));
    }
}
