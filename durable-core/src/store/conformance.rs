//! The store conformance suite: plain async functions that every [`Store`] implementation's
//! tests call (enable the `conformance` feature of durable-core).
//!
//! Each check uses its own execution ARNs, so all of them can share one store instance,
//! and panics with a message naming what the store got wrong. [`run_all`] runs them all.

use super::{Commit, ExecutionRecord, ListQuery, NewExecution, Store, StoreError, StoredOperation};
use crate::model::{
    Event, EventDetails, EventType, ExecutionDetails, ExecutionStatus, Operation, OperationStatus, OperationType,
    StepDetails, Timestamp,
};

/// Runs every check against `store`. `tag` keeps ARNs of repeated runs apart (use a
/// random or unique string when the store persists across runs).
pub async fn run_all(store: &dyn Store, tag: &str) {
    create_and_read(store, tag).await;
    duplicate_creates_are_rejected(store, tag).await;
    commits_apply_whole(store, tag).await;
    stale_commits_conflict_and_change_nothing(store, tag).await;
    concurrent_commits_have_one_winner(store, tag).await;
    invalid_commits_are_refused(store, tag).await;
    operations_page_in_sequence_order(store, tag).await;
    events_page_both_ways(store, tag).await;
    due_executions_by_time(store, tag).await;
    list_by_function_and_status(store, tag).await;
    large_payloads_round_trip(store, tag).await;
    operation_meta_round_trips(store, tag).await;
    unknown_executions_are_not_found(store, tag).await;
}

/// A fresh record for tests.
pub fn record(tag: &str, function: &str, name: &str) -> ExecutionRecord {
    let id = format!("{tag}-{function}-{name}").replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
    ExecutionRecord {
        arn: format!("arn:durable:test:{function}/durable-execution/{name}/{id}").into(),
        execution_id: id.into(),
        function_name: format!("{tag}-{function}").into(),
        name: name.into(),
        status: ExecutionStatus::Running,
        result: None,
        error: None,
        start: Timestamp::from_millis(1_700_000_000_000),
        end: None,
        timeout_seconds: 3600,
        retention_days: 1,
        expires_at: None,
        version: 1,
        next_event_id: 2,
        next_op_seq: 1,
        invocation: 0,
        invocation_started: None,
        checkpoint_seq: 0,
        wake_at: None,
        invoked_by: None,
    }
}

fn event(t: EventType, id: u64, op: Option<&str>) -> Event {
    Event {
        event_type: t,
        event_id: id,
        event_timestamp: Timestamp::from_millis(1_700_000_000_000 + id as i64),
        id: op.map(Into::into),
        name: None,
        parent_id: None,
        sub_type: None,
        details: EventDetails::default(),
    }
}

fn step(id: &str, status: OperationStatus, result: Option<String>) -> Operation {
    let mut op = Operation::new(id, OperationType::Step, status, Timestamp::from_millis(1_700_000_000_000));
    op.step_details =
        Some(Box::new(StepDetails { attempt: Some(1), result: result.map(Into::into), ..StepDetails::default() }));
    op
}

/// Creates an execution with its EXECUTION operation and `ExecutionStarted` event.
pub async fn create(store: &dyn Store, record: ExecutionRecord) -> ExecutionRecord {
    let mut exec = Operation::new(
        record.execution_id.to_string(),
        OperationType::Execution,
        OperationStatus::Started,
        record.start,
    );
    exec.execution_details = Some(Box::new(ExecutionDetails { input_payload: Some("{\"n\":1}".into()) }));
    let new = NewExecution {
        record: ExecutionRecord { next_op_seq: 2, next_event_id: 2, ..record },
        operations: vec![StoredOperation::new(1, exec)],
        events: vec![event(EventType::ExecutionStarted, 1, None)],
    };
    let rec = new.record.clone();
    store.create_execution(new).await.expect("create_execution");
    rec
}

/// Builds a commit on top of `current` adding `ops` (new, numbered from the record's
/// next sequence number) and `n_events` `StepStarted` events.
pub fn commit_on(current: &ExecutionRecord, ops: Vec<Operation>, n_events: u64) -> Commit {
    let mut record = current.clone();
    record.version += 1;
    let operations = ops
        .into_iter()
        .map(|operation| {
            let seq = record.next_op_seq;
            record.next_op_seq += 1;
            StoredOperation::new(seq, operation)
        })
        .collect();
    let events = (0..n_events).map(|i| event(EventType::StepStarted, current.next_event_id + i, Some("x"))).collect();
    record.next_event_id += n_events;
    Commit { expected_version: current.version, record, operations, events }
}

/// Create, then read the record, find it by name, read its operation and event.
pub async fn create_and_read(store: &dyn Store, tag: &str) {
    let rec = create(store, record(tag, "read", "e1")).await;
    let got = store.get_execution(&rec.arn).await.unwrap().expect("created execution is readable");
    assert_eq!(got, rec, "get_execution returns the record as created");
    let found = store.find_execution(&rec.function_name, "e1").await.unwrap().expect("findable by name");
    assert_eq!(found.arn, rec.arn);
    assert!(store.find_execution(&rec.function_name, "nope").await.unwrap().is_none());
    let ops = store.read_operations(&rec.arn, None, 100).await.unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].operation.op_type, OperationType::Execution);
    assert_eq!(ops[0].operation.execution_details.as_ref().unwrap().input_payload.as_deref(), Some("{\"n\":1}"));
    let events = store.read_events(&rec.arn, 0, 100, false).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::ExecutionStarted);
}

/// A second create with the same ARN, or the same name for the same function, fails and
/// leaves the first untouched.
pub async fn duplicate_creates_are_rejected(store: &dyn Store, tag: &str) {
    let rec = create(store, record(tag, "dup", "same")).await;
    let mut again = record(tag, "dup", "same");
    again.timeout_seconds = 7;
    let mut other_exec =
        Operation::new(again.execution_id.to_string(), OperationType::Execution, OperationStatus::Started, again.start);
    other_exec.execution_details = Some(Box::new(ExecutionDetails { input_payload: Some("\"other\"".into()) }));
    let new = NewExecution { record: again, operations: vec![StoredOperation::new(1, other_exec)], events: vec![] };
    assert!(matches!(store.create_execution(new).await, Err(StoreError::AlreadyExists(_))), "same ARN and name");
    let mut other_arn = record(tag, "dup", "same");
    other_arn.arn = format!("{}-2", other_arn.arn).into();
    other_arn.execution_id = format!("{}-2", other_arn.execution_id).into();
    let new = NewExecution { record: other_arn.clone(), operations: vec![], events: vec![] };
    assert!(matches!(store.create_execution(new).await, Err(StoreError::AlreadyExists(_))), "same name, new ARN");
    assert!(store.get_execution(&other_arn.arn).await.unwrap().is_none(), "a refused create leaves nothing behind");
    let got = store.get_execution(&rec.arn).await.unwrap().unwrap();
    assert_eq!(got, rec, "the first execution is unchanged");
    let ops = store.read_operations(&rec.arn, None, 10).await.unwrap();
    let input = ops[0].operation.execution_details.as_ref().unwrap().input_payload.as_deref();
    assert_eq!(input, Some("{\"n\":1}"), "the first execution's input is unchanged");
    let mut other_function = record(tag, "dup2", "same");
    other_function.arn = format!("{}-3", other_function.arn).into();
    create(store, other_function).await;
}

/// A commit's record, operations and events all become visible.
pub async fn commits_apply_whole(store: &dyn Store, tag: &str) {
    let rec = create(store, record(tag, "whole", "e1")).await;
    let c = commit_on(
        &rec,
        vec![step("s1", OperationStatus::Started, None), step("s2", OperationStatus::Started, None)],
        3,
    );
    let new_rec = c.record.clone();
    store.commit(c).await.expect("commit");
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), new_rec);
    let ops = store.read_operations(&rec.arn, None, 100).await.unwrap();
    assert_eq!(ops.iter().map(|o| &*o.operation.id).collect::<Vec<_>>(), [&*rec.execution_id, "s1", "s2"]);
    let events = store.read_events(&rec.arn, 0, 100, false).await.unwrap();
    assert_eq!(events.iter().map(|e| e.event_id).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // An upsert replaces the operation in place.
    let mut c2 = commit_on(&new_rec, vec![], 1);
    c2.operations.push(StoredOperation::new(2, step("s1", OperationStatus::Succeeded, Some("\"ok\"".into()))));
    store.commit(c2).await.expect("second commit");
    let ops = store.read_operations(&rec.arn, None, 100).await.unwrap();
    assert_eq!(ops.len(), 3, "an upsert does not duplicate the operation");
    assert_eq!(ops[1].operation.status, OperationStatus::Succeeded);
    assert_eq!(ops[1].operation.step_details.as_ref().unwrap().result.as_deref(), Some("\"ok\""));
}

/// A commit against an old version fails with `Conflict` and changes nothing.
pub async fn stale_commits_conflict_and_change_nothing(store: &dyn Store, tag: &str) {
    let rec = create(store, record(tag, "stale", "e1")).await;
    let first = commit_on(&rec, vec![step("a", OperationStatus::Started, None)], 1);
    store.commit(first.clone()).await.expect("first commit");
    let stale = commit_on(&rec, vec![step("b", OperationStatus::Started, None)], 1);
    match store.commit(stale).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a stale commit must conflict, got {other:?}"),
    }
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), first.record);
    let ops = store.read_operations(&rec.arn, None, 100).await.unwrap();
    assert!(ops.iter().all(|o| &*o.operation.id != "b"), "nothing of the stale commit is visible");
    assert_eq!(store.read_events(&rec.arn, 0, 100, false).await.unwrap().len(), 2);
}

/// Of several commits racing from the same version, exactly one wins.
pub async fn concurrent_commits_have_one_winner(store: &dyn Store, tag: &str) {
    let rec = create(store, record(tag, "race", "e1")).await;
    let attempts: Vec<_> =
        (0..8).map(|i| commit_on(&rec, vec![step(&format!("w{i}"), OperationStatus::Started, None)], 1)).collect();
    let results = futures::future::join_all(attempts.into_iter().map(|c| store.commit(c))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one racing commit wins: {results:?}");
    assert!(results.iter().all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_)))), "losers conflict");
    let ops = store.read_operations(&rec.arn, None, 100).await.unwrap();
    assert_eq!(ops.len(), 2, "only the winner's operation is stored");
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap().version, 2);
}

/// Commits whose events do not continue the history are refused whole.
pub async fn invalid_commits_are_refused(store: &dyn Store, tag: &str) {
    let rec = create(store, record(tag, "invalid", "e1")).await;
    let mut c = commit_on(&rec, vec![step("a", OperationStatus::Started, None)], 2);
    c.events[1].event_id = 9;
    assert!(store.commit(c).await.is_err(), "a gap in event ids is refused");
    assert_eq!(store.read_operations(&rec.arn, None, 10).await.unwrap().len(), 1, "nothing applied");
    let mut c = commit_on(&rec, vec![], 1);
    c.record.version += 5;
    assert!(store.commit(c).await.is_err(), "a version jump is refused");
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), rec);
}

/// Many operations over many commits come back in sequence order, page by page.
pub async fn operations_page_in_sequence_order(store: &dyn Store, tag: &str) {
    let mut rec = create(store, record(tag, "paging", "e1")).await;
    for batch in 0..5 {
        let ops = (0..50).map(|i| step(&format!("op-{batch}-{i}"), OperationStatus::Started, None)).collect();
        let c = commit_on(&rec, ops, 0);
        rec = c.record.clone();
        store.commit(c).await.expect("commit");
    }
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.read_operations(&rec.arn, after, 64).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 64);
        after = Some(page.last().unwrap().seq);
        all.extend(page);
    }
    assert_eq!(all.len(), 251);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "sequence order");
    assert_eq!(&*all[1].operation.id, "op-0-0");
    assert_eq!(&*all[250].operation.id, "op-4-49");
}

/// Events page ascending from an id and descending from the newest.
pub async fn events_page_both_ways(store: &dyn Store, tag: &str) {
    let rec = create(store, record(tag, "events", "e1")).await;
    store.commit(commit_on(&rec, vec![], 29)).await.unwrap();
    let asc = store.read_events(&rec.arn, 10, 5, false).await.unwrap();
    assert_eq!(asc.iter().map(|e| e.event_id).collect::<Vec<_>>(), [11, 12, 13, 14, 15]);
    let desc = store.read_events(&rec.arn, 0, 3, true).await.unwrap();
    assert_eq!(desc.iter().map(|e| e.event_id).collect::<Vec<_>>(), [30, 29, 28]);
    let desc2 = store.read_events(&rec.arn, 28, 3, true).await.unwrap();
    assert_eq!(desc2.iter().map(|e| e.event_id).collect::<Vec<_>>(), [27, 26, 25]);
    assert!(store.read_events(&rec.arn, 30, 10, false).await.unwrap().is_empty());
}

/// Running executions are due once their wake time passes; finished ones never are.
pub async fn due_executions_by_time(store: &dyn Store, tag: &str) {
    // Far-future times keep other checks' (and other runs') executions out of the way.
    let base = 4_000_000_000_000
        + i64::from(tag.bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b))) % 1_000_000) * 1000;
    let mut arns = Vec::new();
    for (i, offset) in [(0, 3000), (1, 1000), (2, 2000)] {
        let mut r = record(tag, "due", &format!("e{i}"));
        r.wake_at = Some(Timestamp::from_millis(base + offset));
        arns.push(create(store, r).await);
    }
    let due = store.due_executions(Timestamp::from_millis(base + 2500), 100).await.unwrap();
    let mine: Vec<_> = due.iter().filter(|d| d.arn.contains(&format!("{tag}-due"))).map(|d| d.arn.clone()).collect();
    assert_eq!(mine, [arns[1].arn.to_string(), arns[2].arn.to_string()], "due ones, earliest first");
    // Clearing the wake time, or finishing the execution, removes it from the index.
    let mut c = commit_on(&arns[1], vec![], 0);
    c.record.wake_at = None;
    store.commit(c).await.unwrap();
    let mut c = commit_on(&arns[2], vec![], 0);
    c.record.status = ExecutionStatus::Succeeded;
    store.commit(c).await.unwrap();
    let due = store.due_executions(Timestamp::from_millis(base + 5000), 100).await.unwrap();
    let mine: Vec<_> = due.iter().filter(|d| d.arn.contains(&format!("{tag}-due"))).map(|d| d.arn.clone()).collect();
    assert_eq!(mine, [arns[0].arn.to_string()]);
}

/// Listing filters by function and status and pages by ARN.
pub async fn list_by_function_and_status(store: &dyn Store, tag: &str) {
    let mut recs = Vec::new();
    for i in 0..5 {
        recs.push(create(store, record(tag, "list", &format!("e{i}"))).await);
    }
    let mut c = commit_on(&recs[3], vec![], 0);
    c.record.status = ExecutionStatus::Failed;
    store.commit(c).await.unwrap();
    let function = recs[0].function_name.to_string();
    let q = ListQuery { function_name: Some(function.clone()), ..ListQuery::default() };
    assert_eq!(store.list_executions(&q).await.unwrap().len(), 5);
    let q = ListQuery {
        function_name: Some(function.clone()),
        statuses: vec![ExecutionStatus::Failed],
        ..ListQuery::default()
    };
    let failed = store.list_executions(&q).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].arn, recs[3].arn);
    let q = ListQuery { function_name: Some(function.clone()), limit: 2, ..ListQuery::default() };
    let p1 = store.list_executions(&q).await.unwrap();
    assert_eq!(p1.len(), 2);
    let q = ListQuery {
        function_name: Some(function),
        limit: 10,
        after: Some(p1[1].arn.to_string()),
        ..ListQuery::default()
    };
    let p2 = store.list_executions(&q).await.unwrap();
    assert_eq!(p2.len(), 3);
    assert!(p2.iter().all(|r| !p1.iter().any(|x| x.arn == r.arn)), "pages do not overlap");
}

/// A payload as large as the store accepts (up to 4 MiB) is read back whole.
pub async fn large_payloads_round_trip(store: &dyn Store, tag: &str) {
    let size = store.max_payload_bytes().min(4 * 1024 * 1024);
    let rec = create(store, record(tag, "large", "e1")).await;
    let payload: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let c = commit_on(&rec, vec![step("big", OperationStatus::Succeeded, Some(payload.clone()))], 1);
    store.commit(c).await.expect("a payload at the store's limit is accepted");
    let ops = store.read_operations(&rec.arn, Some(1), 10).await.unwrap();
    assert_eq!(ops.len(), 1);
    let got = ops[0].operation.step_details.as_ref().unwrap().result.as_ref().unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(**got == *payload, "the payload comes back byte for byte");
}

/// The service's metadata of an operation (callback deadlines, a chained invoke's child)
/// is stored and read back with it, and replaced by an upsert.
pub async fn operation_meta_round_trips(store: &dyn Store, tag: &str) {
    use super::OperationMeta;
    let rec = create(store, record(tag, "meta", "e1")).await;
    let mut c = commit_on(&rec, vec![step("cb", OperationStatus::Started, None)], 1);
    let meta = OperationMeta {
        timeout_at: Some(Timestamp::from_millis(1_700_000_100_000)),
        heartbeat_at: Some(Timestamp::from_millis(1_700_000_010_000)),
        heartbeat_seconds: Some(10),
        child_arn: Some("arn:child".into()),
        dispatched: true,
        invoke_function: Some("target".into()),
        invoke_input: Some("{\"x\":1}".into()),
    };
    c.operations[0].meta = meta.clone();
    let next = c.record.clone();
    store.commit(c).await.unwrap();
    let ops = store.read_operations(&rec.arn, Some(1), 10).await.unwrap();
    assert_eq!(ops[0].meta, meta, "metadata is stored with the operation");
    let mut c = commit_on(&next, vec![], 0);
    let mut moved = ops[0].clone();
    moved.meta.heartbeat_at = Some(Timestamp::from_millis(1_700_000_020_000));
    c.operations.push(moved.clone());
    store.commit(c).await.unwrap();
    let ops = store.read_operations(&rec.arn, Some(1), 10).await.unwrap();
    assert_eq!(ops[0].meta, moved.meta, "an upsert replaces the metadata");
}

/// Reads and commits on an unknown execution fail with `NotFound` or read nothing.
pub async fn unknown_executions_are_not_found(store: &dyn Store, tag: &str) {
    let ghost = record(tag, "ghost", "e1");
    assert!(store.get_execution(&ghost.arn).await.unwrap().is_none());
    let c = commit_on(&ghost, vec![], 0);
    assert!(matches!(store.commit(c).await, Err(StoreError::NotFound(_) | StoreError::Conflict(_))));
    assert!(store.get_execution(&ghost.arn).await.unwrap().is_none(), "a commit never creates an execution");
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        let store = super::super::MemoryStore::new();
        super::run_all(&store, "mem").await;
    }
}
