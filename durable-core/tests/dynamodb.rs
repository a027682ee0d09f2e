//! The DynamoDB store, over HTTP against moto's DynamoDB (`scripts/standins/dynamodb.sh`
//! starts it; `scripts/test` runs these tests through it): the conformance suite, then
//! fencing, chunked payloads, split commits (including writers that died half-way),
//! paged reads, request accounting, error mapping and durable functions end to end.
//!
//! Every test makes its own table. Tests that build item states by hand (a writer that
//! died in the middle of a split commit) use the table layout described in
//! `docs/design/dynamodb-store.md`.
//!
//! Built only with the `dynamodb` feature (`required-features`); built, it fails without
//! the stand-in rather than pass without testing anything.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use durable_core::clock::{Clock, ManualClock};
use durable_core::engine::{InvocationOutcome, run_invocation};
use durable_core::model::{
    EventType, ExecutionStatus, InvocationStatus, Operation, OperationAction, OperationStatus, OperationType,
    OperationUpdate, StepDetails, Timestamp,
};
use durable_core::service::{CheckpointService, InvocationEnd, ServiceConfig, ServiceError, StartExecution};
use durable_core::store::conformance::{self, commit_on, create, record};
use durable_core::store::dynamodb::{DynamoOptions, DynamoStore, RequestCounts, map_error_code};
use durable_core::store::{ListQuery, Store, StoreError, StoredOperation};
use durable_core::testing::TestRunner;
use durable_core::{DurableContext, Error, durable, handler};

// ---------------------------------------------------------------------------------------
// Set-up

/// The stand-in's endpoint. Missing means the tests were not started through the stand-in
/// script: fail loudly rather than pass without testing anything.
fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set, so there is no DynamoDB to test against. Run these tests through \
             the moto stand-in: `scripts/standins/dynamodb.sh cargo test -p durable-core --features dynamodb \
             --test dynamodb` (scripts/test does this)"
        )
    })
}

async fn sdk_config() -> aws_config::SdkConfig {
    endpoint();
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

fn table_name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("durable-test-{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A store on a fresh table.
async fn store_with(what: &str, options: impl FnOnce(DynamoOptions) -> DynamoOptions) -> DynamoStore {
    let store = DynamoStore::new(&sdk_config().await, options(DynamoOptions::new(table_name(what))));
    store.create_table().await.expect("create the test table");
    store
}

async fn store(what: &str) -> DynamoStore {
    store_with(what, |o| o).await
}

fn step(id: &str, status: OperationStatus, result: Option<String>) -> Operation {
    let mut op = Operation::new(id, OperationType::Step, status, Timestamp::from_millis(1_700_000_000_000));
    op.step_details =
        Some(Box::new(StepDetails { attempt: Some(1), result: result.map(Into::into), ..StepDetails::default() }));
    op
}

fn result_of(op: &StoredOperation) -> &str {
    op.operation.step_details.as_ref().and_then(|d| d.result.as_deref()).unwrap_or_default()
}

/// Requests made by `f`.
async fn counting<T>(store: &DynamoStore, f: impl AsyncFnOnce() -> T) -> (T, RequestCounts) {
    let before = store.requests();
    let out = f().await;
    (out, store.requests().since(&before))
}

/// The raw items of an execution's partition.
async fn raw_items(store: &DynamoStore, arn: &str) -> Vec<HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .client()
            .query()
            .table_name(store.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("X#{arn}")))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

// ---------------------------------------------------------------------------------------
// The conformance suite

#[tokio::test]
async fn conformance_suite_passes() {
    let store = store("conformance").await;
    conformance::run_all(&store, "ddb").await;
    assert_eq!(store.requests().other, 4, "no Scan: only the table set-up is outside reads and writes");
}

// ---------------------------------------------------------------------------------------
// Fencing

#[tokio::test]
async fn stale_commits_are_fenced_with_a_clear_conflict() {
    let store = store("fence").await;
    let rec = create(&store, record("t", "fence", "e1")).await;
    let newer = commit_on(&rec, vec![step("a", OperationStatus::Started, None)], 1);
    store.commit(newer.clone()).await.unwrap();
    let stale = commit_on(&rec, vec![step("a", OperationStatus::Succeeded, Some("\"stale\"".into()))], 1);
    let err = store.commit(stale).await.expect_err("a stale writer must be refused");
    match &err {
        StoreError::Conflict(m) => {
            assert!(m.contains("is at version 2") && m.contains("read version 1"), "the conflict says why: {m}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(!err.is_retryable());
    let ops = store.read_operations(&rec.arn, None, 10).await.unwrap();
    assert_eq!(ops[1].operation.status, OperationStatus::Started, "the stale write changed nothing");
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), newer.record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_have_exactly_one_winner_per_version() {
    let store = Arc::new(store("race").await);
    let mut rec = create(&*store, record("t", "race", "e1")).await;
    for round in 0..6 {
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let store = Arc::clone(&store);
                let c = commit_on(&rec, vec![step(&format!("r{round}w{w}"), OperationStatus::Started, None)], 1);
                tokio::spawn(async move { (store.commit(c.clone()).await, c) })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (result, c) = t.await.unwrap();
            match result {
                Ok(()) => winners.push(c),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("a loser must get Conflict, got {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one of 8 racing writers wins");
        rec = winners.pop().unwrap().record;
    }
    let stored = store.get_execution(&rec.arn).await.unwrap().unwrap();
    assert_eq!(stored, rec, "the record is the last winner's");
    let ops = store.read_operations(&rec.arn, None, 100).await.unwrap();
    assert_eq!(ops.len(), 7, "one operation per round: nothing of the losers is stored");
    assert_eq!(store.read_events(&rec.arn, 0, 100, false).await.unwrap().len(), 7);
}

/// Two services (two processes) on one execution: the newer invocation fences the older
/// one off; the older one's next checkpoint is refused, not applied.
#[tokio::test]
async fn an_older_invocation_is_fenced_off_by_a_newer_one() {
    let store: Arc<dyn Store> = Arc::new(store("invocations").await);
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let a = CheckpointService::with_config(Arc::clone(&store), Arc::new(clock.clone()), ServiceConfig::default());
    let b = CheckpointService::with_config(Arc::clone(&store), Arc::new(clock.clone()), ServiceConfig::default());
    let arn = a
        .start_execution(StartExecution {
            function_name: "fenced".into(),
            input: Some("1".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .arn;
    let first = a.begin_invocation(&arn).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let second = b.begin_invocation(&arn).await.unwrap();
    let start = |id: &str| {
        let mut u = OperationUpdate::new(id, OperationType::Step, OperationAction::Start);
        u.sub_type = Some("Step".into());
        u.name = Some(id.into());
        u
    };
    match a.checkpoint(&arn, &first.checkpoint_token, &[start("old")]).await {
        Err(ServiceError::InvalidToken(_)) => {}
        other => panic!("the older invocation must be fenced off, got {other:?}"),
    }
    b.checkpoint(&arn, &second.checkpoint_token, &[start("new")]).await.unwrap();
    let ids: Vec<String> = b.operations(&arn).await.unwrap().iter().map(|o| o.id.to_string()).collect();
    assert!(ids.contains(&"new".to_owned()) && !ids.contains(&"old".to_owned()), "{ids:?}");
    let history = b.full_history(&arn).await.unwrap();
    let lost: Vec<_> = history.iter().filter(|e| e.event_type == EventType::InvocationCompleted).collect();
    assert_eq!(lost.len(), 1, "the fenced invocation is recorded as ended");
}

// ---------------------------------------------------------------------------------------
// Payloads and chunks

#[tokio::test]
async fn large_payloads_are_chunked_once_and_read_back_exactly() {
    let store = store("chunks").await;
    let rec = create(&store, record("t", "chunks", "e1")).await;
    // Multi-byte characters, so pieces must be cut at character boundaries.
    let payload: String = "é€😀abc".repeat(200_000);
    assert!(payload.len() > 2_000_000);
    let mut c = commit_on(&rec, vec![step("big", OperationStatus::Succeeded, Some(payload.clone()))], 1);
    // The event carries the same payload as the operation: it is stored once.
    c.events[0].details = durable_core::model::EventDetails::with_result(Some(payload.as_str().into()));
    let ((), counts) = counting(&store, async || store.commit(c).await.unwrap()).await;
    assert_eq!(counts.batch_write_item, 1, "the pieces go in one BatchWriteItem: {counts}");
    assert_eq!(counts.transact_write_items, 1, "then one transaction: {counts}");
    assert_eq!(counts.reads(), 0);
    let pieces = raw_items(&store, &rec.arn)
        .await
        .iter()
        .filter(|i| matches!(i.get("sk"), Some(AttributeValue::S(k)) if k.starts_with("C#")))
        .count();
    assert_eq!(pieces, payload.len().div_ceil(300_000), "one set of pieces for the operation and its event");
    let ops = store.read_operations(&rec.arn, Some(1), 10).await.unwrap();
    assert!(result_of(&ops[0]) == payload, "the operation's payload comes back byte for byte");
    let events = store.read_events(&rec.arn, 1, 10, false).await.unwrap();
    let got = events[0].details.result.as_ref().unwrap().payload.as_deref().unwrap();
    assert!(got == payload, "the event's payload comes back byte for byte");
}

#[tokio::test]
async fn oversized_payloads_are_refused_before_anything_is_written() {
    let store = store_with("oversized", |o| o.max_payload_bytes(1 << 20)).await;
    assert_eq!(store.max_payload_bytes(), 1 << 20);
    let rec = create(&store, record("t", "oversized", "e1")).await;
    let payload = "x".repeat((1 << 20) + 1);
    let c = commit_on(&rec, vec![step("big", OperationStatus::Succeeded, Some(payload))], 1);
    let (result, counts) = counting(&store, async || store.commit(c).await).await;
    match result {
        Err(e @ StoreError::TooLarge(_)) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("1048577 bytes") && e.to_string().contains("big"), "{e}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(counts.total(), 0, "nothing was sent: {counts}");
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), rec);
    // The same limit holds for a new execution's input.
    let mut big = record("t", "oversized", "e2");
    big.result = Some("y".repeat((1 << 20) + 5));
    let new = durable_core::store::NewExecution { record: big, operations: vec![], events: vec![] };
    assert!(matches!(store.create_execution(new).await, Err(StoreError::TooLarge(_))));
}

#[tokio::test]
async fn a_large_execution_result_is_stored_apart_from_the_record() {
    let store = store("result").await;
    let rec = create(&store, record("t", "result", "e1")).await;
    let mut c = commit_on(&rec, vec![], 0);
    c.record.status = ExecutionStatus::Succeeded;
    c.record.result = Some(format!("\"{}\"", "r".repeat(3 << 20)));
    store.commit(c.clone()).await.unwrap();
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), c.record);
    assert_eq!(store.find_execution(&rec.function_name, &rec.name).await.unwrap().unwrap(), c.record);
    let q = ListQuery { function_name: Some(rec.function_name.to_string()), ..ListQuery::default() };
    assert_eq!(store.list_executions(&q).await.unwrap(), vec![c.record]);
}

// ---------------------------------------------------------------------------------------
// Split commits

/// No raw item of the execution still carries a value written ahead.
async fn assert_nothing_pending(store: &DynamoStore, arn: &str) {
    for item in raw_items(store, arn).await {
        for attr in ["p", "pc", "pv", "sc", "cl"] {
            assert!(!item.contains_key(attr), "{attr} left on {:?}", item.get("sk"));
        }
    }
}

#[tokio::test]
async fn a_commit_of_more_than_100_items_is_split_and_lands_whole() {
    let store = store("split-items").await;
    let rec = create(&store, record("t", "split", "e1")).await;
    // 1 record + 120 operations + 40 events: more than one transaction holds.
    let ops = (0..120).map(|i| step(&format!("op-{i:03}"), OperationStatus::Started, None)).collect();
    let c = commit_on(&rec, ops, 40);
    let ((), counts) = counting(&store, async || store.commit(c.clone()).await.unwrap()).await;
    assert_eq!(counts.update_item, 2, "a claim, and clearing the mark at the end: {counts}");
    assert!(counts.transact_write_items >= 4, "ahead (2 or more), commit point, apply: {counts}");
    assert_eq!(counts.reads(), 0, "{counts}");
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), c.record);
    let ops = store.read_operations(&rec.arn, None, usize::MAX).await.unwrap();
    assert_eq!(ops.len(), 121);
    assert!(ops.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(&*ops[120].operation.id, "op-119");
    let events = store.read_events(&rec.arn, 0, usize::MAX, false).await.unwrap();
    assert_eq!(events.iter().map(|e| e.event_id).collect::<Vec<_>>(), (1..=41).collect::<Vec<_>>());
    assert_nothing_pending(&store, &rec.arn).await;
    // The next commit is an ordinary one.
    let next = commit_on(&c.record, vec![step("after", OperationStatus::Started, None)], 1);
    let ((), counts) = counting(&store, async || store.commit(next).await.unwrap()).await;
    assert_eq!(counts.total(), 1, "{counts}");
}

#[tokio::test]
async fn a_commit_of_more_than_4_mb_is_split_and_lands_whole() {
    let store = store("split-bytes").await;
    let rec = create(&store, record("t", "split", "e1")).await;
    // 25 operations of 170 KB: each fits its item, together they exceed a transaction.
    let ops: Vec<Operation> = (0..25)
        .map(|i| step(&format!("big-{i}"), OperationStatus::Succeeded, Some(format!("{i:03}{}", "z".repeat(170_000)))))
        .collect();
    let c = commit_on(&rec, ops.clone(), 25);
    let ((), counts) = counting(&store, async || store.commit(c.clone()).await.unwrap()).await;
    assert_eq!(counts.batch_write_item, 0, "no payload needed chunks: {counts}");
    assert_eq!(counts.update_item, 2, "split: {counts}");
    let got = store.read_operations(&rec.arn, Some(1), 100).await.unwrap();
    assert_eq!(got.len(), 25);
    for (g, want) in got.iter().zip(&ops) {
        assert!(result_of(g) == want.step_details.as_ref().unwrap().result.as_deref().unwrap());
    }
    assert_nothing_pending(&store, &rec.arn).await;
}

/// Writes `op` ahead as split commit `cid` of version `version` would (the layout of
/// `docs/design/dynamodb-store.md`), leaving the item's committed value as it is.
async fn write_ahead(store: &DynamoStore, arn: &str, sk: String, json: String, cid: &str, version: u64) {
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", s(format!("X#{arn}")))
        .key("sk", s(sk))
        .update_expression("SET p = :p, pc = :c, pv = :v")
        .expression_attribute_values(":p", s(json))
        .expression_attribute_values(":c", s(cid))
        .expression_attribute_values(":v", n(version))
        .send()
        .await
        .unwrap();
}

fn op_sk(seq: u64) -> String {
    format!("O#{seq:020}")
}

fn event_sk(id: u64) -> String {
    format!("E#{id:020}")
}

/// A writer died after writing a split commit's items ahead, before its commit point (or
/// lost its claim): readers never see those items, its claim fences other writers off
/// until the lease ends, and then the next writer takes over.
#[tokio::test]
async fn a_split_commit_abandoned_before_its_commit_point_stays_invisible() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store =
        store_with("abandoned", |o| o.clock(Arc::new(clock.clone())).claim_lease(Duration::from_secs(30))).await;
    let rec = create(&store, record("t", "abandoned", "e1")).await;
    let c2 = commit_on(&rec, vec![step("a", OperationStatus::Started, None)], 1);
    store.commit(c2.clone()).await.unwrap();
    // The dead writer's version 3: it finished "a" and created "b", with one event.
    let dead = commit_on(&c2.record, vec![step("b", OperationStatus::Started, None)], 1);
    let a_done = StoredOperation::new(2, step("a", OperationStatus::Succeeded, Some("\"dead\"".into())));
    write_ahead(&store, &rec.arn, op_sk(2), serde_json::to_string(&a_done).unwrap(), "dead", 3).await;
    let b = &dead.operations[0];
    write_ahead(&store, &rec.arn, op_sk(b.seq), serde_json::to_string(b).unwrap(), "dead", 3).await;
    write_ahead(&store, &rec.arn, event_sk(3), serde_json::to_string(&dead.events[0]).unwrap(), "dead", 3).await;
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", s(format!("X#{}", rec.arn)))
        .key("sk", s("R"))
        .update_expression("SET cl = :c, cle = :until")
        .expression_attribute_values(":c", s("dead"))
        .expression_attribute_values(":until", n(clock.now().as_millis() + 30_000))
        .send()
        .await
        .unwrap();

    let ops = store.read_operations(&rec.arn, None, 10).await.unwrap();
    assert_eq!(ops.len(), 2, "the abandoned new operation is invisible");
    assert_eq!(ops[1].operation.status, OperationStatus::Started, "the abandoned update is invisible");
    assert_eq!(store.read_events(&rec.arn, 0, 10, false).await.unwrap().len(), 2);
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), c2.record);

    // The claim holds other writers off while its lease runs...
    let mine = commit_on(&c2.record, vec![step("c", OperationStatus::Started, None)], 1);
    match store.commit(mine.clone()).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("another writer"), "{m}"),
        other => panic!("a live claim must fence other writers, got {other:?}"),
    }
    // ... and not after it.
    clock.advance(Duration::from_secs(31));
    store.commit(mine.clone()).await.expect("an expired claim is taken over");
    let ops = store.read_operations(&rec.arn, None, 10).await.unwrap();
    let ids: Vec<&str> = ops.iter().map(|o| &*o.operation.id).collect();
    assert_eq!(ids, [&*rec.execution_id, "a", "c"], "the new commit, not the dead one");
    assert_eq!(ops[1].operation.status, OperationStatus::Started, "the dead writer's update never shows");
    let events = store.read_events(&rec.arn, 0, 10, false).await.unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2], mine.events[0], "the new commit's event, not the dead one's");
}

/// A writer died after its split commit's commit point, before applying it: readers see
/// the whole commit at once, and the next writer finishes applying it first.
#[tokio::test]
async fn a_split_commit_left_unapplied_is_visible_whole_and_finished_by_the_next_writer() {
    let store = store("unapplied").await;
    let rec = create(&store, record("t", "unapplied", "e1")).await;
    let c2 = commit_on(&rec, vec![step("a", OperationStatus::Started, None)], 1);
    store.commit(c2.clone()).await.unwrap();
    let mut c3 = commit_on(&c2.record, vec![step("b", OperationStatus::Started, None)], 1);
    c3.operations.push(StoredOperation::new(2, step("a", OperationStatus::Succeeded, Some("\"done\"".into()))));
    for op in &c3.operations {
        write_ahead(&store, &rec.arn, op_sk(op.seq), serde_json::to_string(op).unwrap(), "gone", 3).await;
    }
    write_ahead(&store, &rec.arn, event_sk(3), serde_json::to_string(&c3.events[0]).unwrap(), "gone", 3).await;
    // The commit point: the new record, naming the split (what the dead writer's last
    // transaction wrote).
    let pk = format!("X#{}", rec.arn);
    let mut item = store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", s(&pk))
        .key("sk", s("R"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.insert("d".into(), s(serde_json::to_string(&c3.record).unwrap()));
    item.insert("v".into(), n(3));
    item.insert("ne".into(), n(4));
    item.insert("cid".into(), s("gone"));
    item.insert("sc".into(), s("gone"));
    item.insert("spo".into(), AttributeValue::Ns(vec!["2".into(), "3".into()]));
    item.insert("spe".into(), n(3));
    item.insert("spn".into(), n(1));
    store.client().put_item().table_name(store.table()).set_item(Some(item)).send().await.unwrap();

    let ops = store.read_operations(&rec.arn, None, 10).await.unwrap();
    assert_eq!(ops.len(), 3, "the committed split's new operation is visible");
    assert_eq!(result_of(&ops[1]), "\"done\"", "and so is its update");
    assert_eq!(store.read_events(&rec.arn, 0, 10, false).await.unwrap().len(), 3);
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), c3.record);

    let c4 = commit_on(&c3.record, vec![step("c", OperationStatus::Started, None)], 1);
    let ((), counts) = counting(&store, async || store.commit(c4.clone()).await.unwrap()).await;
    assert!(counts.transact_write_items >= 3, "refused, applied the split, committed: {counts}");
    assert_nothing_pending(&store, &rec.arn).await;
    let ops = store.read_operations(&rec.arn, None, 10).await.unwrap();
    assert_eq!(ops.iter().map(|o| &*o.operation.id).collect::<Vec<_>>(), [&*rec.execution_id, "a", "b", "c"]);
    assert_eq!(result_of(&ops[1]), "\"done\"");
    assert_eq!(store.get_execution(&rec.arn).await.unwrap().unwrap(), c4.record);
}

// ---------------------------------------------------------------------------------------
// Reads, expiry and indexes

#[tokio::test]
async fn resuming_reads_one_query_page_per_megabyte_not_one_request_per_operation() {
    let store = store("pages").await;
    let mut rec = create(&store, record("t", "pages", "e1")).await;
    // 300 operations of 8 KB: 2.4 MB of state.
    for batch in 0..4 {
        let ops = (0..75)
            .map(|i| {
                step(&format!("op-{batch}-{i}"), OperationStatus::Succeeded, Some(format!("\"{}\"", "p".repeat(8000))))
            })
            .collect();
        let c = commit_on(&rec, ops, 0);
        rec = c.record.clone();
        store.commit(c).await.unwrap();
    }
    let (ops, counts) = counting(&store, async || store.read_operations(&rec.arn, None, 10_000).await.unwrap()).await;
    assert_eq!(ops.len(), 301);
    let megabytes = ops.iter().map(|o| serde_json::to_string(o).unwrap().len()).sum::<usize>().div_ceil(1 << 20);
    assert!(counts.query as usize <= megabytes + 1, "{} Query pages for {megabytes} MB: {counts}", counts.query);
    assert_eq!(counts.reads(), counts.query, "{counts}");
}

#[tokio::test]
async fn a_closed_execution_expires_and_frees_its_name() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = store_with("expiry", |o| o.clock(Arc::new(clock.clone()))).await;
    let rec = create(&store, record("t", "expiry", "e1")).await;
    let mut c = commit_on(&rec, vec![], 0);
    c.record.status = ExecutionStatus::Succeeded;
    c.record.expires_at = Some(Timestamp::from_millis(1_800_000_060_000));
    store.commit(c.clone()).await.unwrap();
    let ttl = |item: &HashMap<String, AttributeValue>| item.get("ttl").cloned();
    let items = raw_items(&store, &rec.arn).await;
    let record_item = items.iter().find(|i| i.get("sk") == Some(&s("R"))).unwrap();
    assert_eq!(ttl(record_item), Some(n(1_800_000_060)), "the record expires with the execution");
    assert!(items.iter().all(|i| ttl(i).is_some()), "every item of the execution has a ttl");

    let mut again = record("t", "expiry", "e1");
    again.arn = format!("{}-2", again.arn).into();
    let new = |r: &durable_core::store::ExecutionRecord| durable_core::store::NewExecution {
        record: r.clone(),
        operations: vec![],
        events: vec![],
    };
    assert!(
        matches!(store.create_execution(new(&again)).await, Err(StoreError::AlreadyExists(_))),
        "the name is taken while the execution is kept"
    );
    clock.advance(Duration::from_secs(61));
    // DynamoDB deletes expired items within days; the name is free from the expiry on.
    store.create_execution(new(&again)).await.expect("an expired execution's name is free");
    assert_eq!(store.find_execution(&rec.function_name, &rec.name).await.unwrap().unwrap().arn, again.arn);
}

#[tokio::test]
async fn listing_and_due_timers_use_the_indexes() {
    let store = store("indexes").await;
    let base = 1_900_000_000_000;
    let mut recs = Vec::new();
    for i in 0..12 {
        let mut r = record("t", if i % 2 == 0 { "even" } else { "odd" }, &format!("e{i:02}"));
        r.wake_at = Some(Timestamp::from_millis(base + i * 1000));
        recs.push(create(&store, r).await);
    }
    let (due, counts) =
        counting(&store, async || store.due_executions(Timestamp::from_millis(base + 5500), 100).await.unwrap()).await;
    assert_eq!(
        due.iter().map(|d| d.arn.clone()).collect::<Vec<_>>(),
        recs[..6].iter().map(|r| r.arn.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(counts.query, 8, "one query per due shard: {counts}");
    assert_eq!(counts.batch_get_item, 1, "then the records confirm: {counts}");
    let first = store.due_executions(Timestamp::from_millis(i64::MAX), 1).await.unwrap();
    assert_eq!(first[0].wake_at, Timestamp::from_millis(base));

    let all = store
        .list_executions(&ListQuery { statuses: vec![ExecutionStatus::Running], ..ListQuery::default() })
        .await
        .unwrap();
    let mut arns: Vec<String> = recs.iter().map(|r| r.arn.to_string()).collect();
    arns.sort();
    assert_eq!(all.iter().map(|r| r.arn.to_string()).collect::<Vec<_>>(), arns, "every function, in ARN order");
    let page = store.list_executions(&ListQuery { limit: 5, ..ListQuery::default() }).await.unwrap();
    let rest = store
        .list_executions(&ListQuery { after: Some(page[4].arn.to_string()), ..ListQuery::default() })
        .await
        .unwrap();
    assert_eq!([page, rest].concat().iter().map(|r| r.arn.to_string()).collect::<Vec<_>>(), arns);
    assert_eq!(store.requests().other, 4, "no Scan anywhere");
}

// ---------------------------------------------------------------------------------------
// Request accounting through the engine

/// `n` steps of one kind, or a wait.
#[durable(crate = durable_core)]
async fn accounted(ctx: DurableContext, (kind, n): (String, u64)) -> Result<u64, Error> {
    let mut sum = 0;
    for i in 0..n {
        sum += match kind.as_str() {
            "at-least-once" => ctx.step("alo", async |_| Ok(i)).await?,
            "at-most-once" => ctx.step("amo", async |_| Ok(i)).at_most_once().await?,
            _ => 0,
        };
    }
    if kind == "wait" {
        ctx.wait("w", Duration::from_secs(1)).await?;
    }
    Ok(sum)
}

struct Accounting {
    store: Arc<DynamoStore>,
    clock: ManualClock,
    service: Arc<CheckpointService>,
}

impl Accounting {
    fn service(store: &Arc<DynamoStore>, clock: &ManualClock) -> Arc<CheckpointService> {
        let store: Arc<dyn Store> = Arc::clone(store) as Arc<dyn Store>;
        Arc::new(CheckpointService::with_config(store, Arc::new(clock.clone()), ServiceConfig::default()))
    }

    async fn start(&self, kind: &str, n: u64) -> String {
        let input = serde_json::to_string(&(kind, n)).unwrap();
        let req = StartExecution { function_name: "accounted".into(), input: Some(input), ..Default::default() };
        self.service.start_execution(req).await.unwrap().arn
    }

    /// Requests of begin_invocation, of the invocation itself, and of end_invocation.
    async fn invoke(&self, service: &Arc<CheckpointService>, arn: &str) -> (InvocationStatus, [RequestCounts; 3]) {
        let t0 = self.store.requests();
        let input = service.begin_invocation(arn).await.unwrap();
        let t1 = self.store.requests();
        let token = input.checkpoint_token.clone();
        let InvocationOutcome::Output(out) = run_invocation(&handler(accounted), input, service.checkpointer()).await
        else {
            panic!("the invocation did not end normally")
        };
        let t2 = self.store.requests();
        let status = out.status;
        service.end_invocation(arn, &token, InvocationEnd::Output(out)).await.unwrap();
        let t3 = self.store.requests();
        (status, [t1.since(&t0), t2.since(&t1), t3.since(&t2)])
    }
}

#[tokio::test]
async fn a_step_costs_one_write_and_a_warm_invocation_reads_nothing() {
    let store = Arc::new(store("accounting").await);
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let service = Accounting::service(&store, &clock);
    let acc = Accounting { store: Arc::clone(&store), clock: clock.clone(), service: Arc::clone(&service) };

    for (kind, per_step) in [("at-least-once", 1), ("at-most-once", 2)] {
        let arn = acc.start(kind, 10).await;
        let (status, [_, run, _]) = acc.invoke(&service, &arn).await;
        assert_eq!(status, InvocationStatus::Succeeded);
        assert_eq!(run.reads(), 0, "{kind}: no reads within a warm invocation: {run}");
        assert_eq!(run.transact_write_items, 10 * per_step, "{kind}: {per_step} transaction(s) per step: {run}");
        assert_eq!(run.total(), 10 * per_step, "{kind}: {run}");
    }

    // A wait: its checkpoint, suspending, and resuming on the same service (warm) or on a
    // new one (cold: another process, or a Lambda cold start).
    let warm_arn = acc.start("wait", 0).await;
    let cold_arn = acc.start("wait", 0).await;
    for arn in [&warm_arn, &cold_arn] {
        let (status, [begin, run, end]) = acc.invoke(&service, arn).await;
        assert_eq!(status, InvocationStatus::Pending);
        assert_eq!(begin.writes(), 1, "begin: {begin}");
        assert_eq!((run.total(), run.transact_write_items), (1, 1), "the wait's checkpoint: {run}");
        assert_eq!((end.total(), end.transact_write_items), (1, 1), "suspending: {end}");
    }
    acc.clock.advance(Duration::from_secs(1));
    let (status, [begin, run, end]) = acc.invoke(&service, &warm_arn).await;
    assert_eq!(status, InvocationStatus::Succeeded);
    assert_eq!((begin.total(), begin.transact_write_items), (1, 1), "warm resume: one write, no reads: {begin}");
    assert_eq!(run.total(), 0, "replaying the wait costs nothing: {run}");
    assert_eq!(end.total(), 1, "{end}");
    let cold = Accounting::service(&store, &clock);
    let (status, [begin, run, end]) = acc.invoke(&cold, &cold_arn).await;
    assert_eq!(status, InvocationStatus::Succeeded);
    assert_eq!(begin.get_item, 1, "cold resume: the record: {begin}");
    assert!(begin.query <= 2, "cold resume: one page of operations (and the empty page after it): {begin}");
    assert_eq!(begin.writes(), 1, "{begin}");
    assert_eq!(run.total(), 0, "{run}");
    assert_eq!(end.total(), 1, "{end}");
    assert!(acc.store.requests().total() > 0);
}

#[tokio::test]
async fn durable_functions_run_end_to_end_on_dynamodb() {
    let store: Arc<dyn Store> = Arc::new(store("e2e").await);
    let runner = TestRunner::with_store(store, ServiceConfig::default());
    let run = runner.run(accounted, ("at-most-once".to_owned(), 3u64)).await;
    assert_eq!(run.result::<u64>().unwrap(), 3);
    run.assert_well_formed();
    let run = runner.run(accounted, ("wait".to_owned(), 0u64)).await;
    assert_eq!(run.result::<u64>().unwrap(), 0);
    assert_eq!(run.invocations(), 2);
    run.assert_well_formed();
}

// ---------------------------------------------------------------------------------------
// Errors

#[test]
fn dynamodb_errors_map_to_store_errors() {
    let retryable = |code: &str, status: u16| map_error_code(Some(code), Some(status), "m").is_retryable();
    assert!(retryable("ThrottlingException", 400));
    assert!(retryable("ProvisionedThroughputExceededException", 400));
    assert!(retryable("RequestLimitExceeded", 400));
    assert!(retryable("InternalServerError", 500));
    assert!(retryable("SomethingNew", 503), "any 5xx");
    assert!(matches!(map_error_code(Some("ConditionalCheckFailedException"), Some(400), "m"), StoreError::Conflict(_)));
    assert!(matches!(map_error_code(Some("ValidationException"), Some(400), "bad"), StoreError::Invalid(_)));
    assert!(matches!(
        map_error_code(Some("ValidationException"), Some(400), "Item size has exceeded the maximum allowed size"),
        StoreError::TooLarge(_)
    ));
    for code in ["ValidationException", "ResourceNotFoundException", "AccessDeniedException"] {
        assert!(!retryable(code, 400), "{code} is not retryable");
    }
}

#[tokio::test]
async fn a_missing_table_is_a_permanent_error_that_says_what_to_do() {
    let store = DynamoStore::new(&sdk_config().await, DynamoOptions::new(table_name("missing")));
    match store.get_execution("arn:nope").await {
        Err(e @ StoreError::Backend { retryable: false, .. }) => assert!(e.to_string().contains("create_table"), "{e}"),
        other => panic!("expected a permanent backend error, got {other:?}"),
    }
}

/// Reads one HTTP/1.1 message (head, then the body its `content-length` announces).
fn read_message(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let body_start = loop {
        let k = stream.read(&mut chunk).ok()?;
        if k == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..k]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..body_start]).to_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < body_start + length {
        let k = stream.read(&mut chunk).ok()?;
        if k == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..k]);
    }
    Some(buf)
}

/// A server that answers every request with `status` and DynamoDB's JSON error `code`,
/// counting requests.
fn failing_server(status: u16, code: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            if read_message(&mut stream).is_none() {
                continue;
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let body =
                format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"stand-in says no"}}"#);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Error\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, hits)
}

/// A proxy to the stand-in that forwards every request but loses the answer to the first
/// `TransactWriteItems` (the connection drops after the server has applied it).
fn lossy_proxy(upstream: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
    std::thread::spawn(move || {
        let mut lost = false;
        for stream in listener.incoming() {
            let Ok(mut client) = stream else { return };
            while let Some(request) = read_message(&mut client) {
                let text = String::from_utf8_lossy(&request).to_lowercase();
                let mut server = std::net::TcpStream::connect(&upstream).unwrap();
                server.write_all(&request).unwrap();
                let Some(response) = read_message(&mut server) else { break };
                if !lost && text.contains("x-amz-target: dynamodb_20120810.transactwriteitems") {
                    lost = true;
                    break; // drop the connection: the answer is lost
                }
                if client.write_all(&response).is_err() {
                    break;
                }
            }
        }
    });
    url
}

/// A commit whose answer was lost is retried by the SDK; the retry meets its own write
/// (moto, unlike DynamoDB, executes a replayed transaction again) and the store recognises
/// its commit id instead of reporting a conflict.
#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_not_a_conflict() {
    let direct = store("lost").await;
    let rec = create(&direct, record("t", "lost", "e1")).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(lossy_proxy(&endpoint()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_initial_backoff(Duration::from_millis(1)))
        .load()
        .await;
    let store = DynamoStore::new(&config, DynamoOptions::new(direct.table()));
    let c = commit_on(&rec, vec![step("once", OperationStatus::Started, None)], 1);
    let (result, counts) = counting(&store, async || store.commit(c.clone()).await).await;
    result.expect("the commit landed; its lost answer must not turn into a conflict");
    assert_eq!(counts.transact_write_items, 2, "sent, answer lost, sent again: {counts}");
    assert_eq!(direct.get_execution(&rec.arn).await.unwrap().unwrap(), c.record);
    assert_eq!(direct.read_operations(&rec.arn, None, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_then_reported_retryable() {
    for (status, code) in [(500, "InternalServerError"), (400, "ThrottlingException")] {
        let (url, hits) = failing_server(status, code);
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1))
                    .with_max_backoff(Duration::from_millis(5)),
            )
            .load()
            .await;
        let store = DynamoStore::new(&config, DynamoOptions::new("any"));
        let err = store.get_execution("arn:x").await.expect_err("the server refuses everything");
        assert!(err.is_retryable(), "{code} must be retryable: {err}");
        assert!(err.to_string().contains(code), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 3, "{code}: the SDK tried 3 times");
        assert_eq!(store.requests().get_item, 3, "every attempt is counted");
    }
}
