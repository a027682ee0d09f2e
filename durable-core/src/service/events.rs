//! Building history events. Every event takes the execution's next event id, so events
//! are built against the record of the write that will carry them.

use crate::model::{Event, EventDetails, EventInput, EventType, Operation, Timestamp};
use crate::store::ExecutionRecord;

/// An event about operation `op`.
pub(super) fn op_event(
    record: &mut ExecutionRecord,
    t: EventType,
    now: Timestamp,
    op: &Operation,
    details: EventDetails,
) -> Event {
    let e = Event {
        event_type: t,
        event_id: record.next_event_id,
        event_timestamp: now,
        id: Some(op.id.clone()),
        name: op.name.clone(),
        parent_id: op.parent_id.clone(),
        sub_type: op.sub_type.clone(),
        details,
    };
    record.next_event_id += 1;
    e
}

/// The `ExecutionStarted` event, about the execution's EXECUTION operation.
pub(super) fn execution_started(record: &mut ExecutionRecord, exec_op: &Operation, now: Timestamp) -> Event {
    let details = EventDetails {
        input: Some(EventInput {
            payload: exec_op.execution_details.as_ref().and_then(|d| d.input_payload.clone()),
            truncated: Some(false),
        }),
        execution_timeout: Some(record.timeout_seconds),
        ..EventDetails::default()
    };
    let mut e = op_event(record, EventType::ExecutionStarted, now, exec_op, details);
    e.name = Some(record.name.clone());
    e
}

/// The `InvocationCompleted` event: about the invocation, so about no operation.
pub(super) fn invocation_completed(record: &mut ExecutionRecord, now: Timestamp, details: EventDetails) -> Event {
    let e = Event {
        event_type: EventType::InvocationCompleted,
        event_id: record.next_event_id,
        event_timestamp: now,
        id: None,
        name: None,
        parent_id: None,
        sub_type: None,
        details,
    };
    record.next_event_id += 1;
    e
}
