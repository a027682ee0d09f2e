//! A property test of the embedded store against `MemoryStore`, the model: any sequence of
//! creates and commits (valid ones and refused ones, commits to finished executions,
//! overwritten operations), with reopens and compactions in between, gets the same answers
//! and leaves the same state, whether an execution's data is in memory, in the journal, in
//! a snapshot or in an archive file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use durable_core::model::{ExecutionStatus, Operation, OperationStatus, OperationType, StepDetails, Timestamp};
use durable_core::store::conformance::{commit_on, create, record};
use durable_core::store::embedded::EmbeddedOptions;
use durable_core::store::{EmbeddedStore, ExecutionRecord, ListQuery, MemoryStore, Store, StoredOperation};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Action {
    Create(u8),
    Commit { exec: u8, ops: u8, events: u8, finish: bool, stale: bool, overwrite: bool },
    Reopen,
    Compact,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (0u8..4).prop_map(Action::Create),
        8 => (0u8..4, 0u8..3, 0u8..3, proptest::bool::weighted(0.15), proptest::bool::weighted(0.1), any::<bool>())
            .prop_map(|(exec, ops, events, finish, stale, overwrite)| Action::Commit {
                exec,
                ops,
                events,
                finish,
                stale,
                overwrite
            }),
        1 => Just(Action::Reopen),
        1 => Just(Action::Compact),
    ]
}

fn dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    base.join(format!("durable-model-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
}

fn step(id: &str, result: String) -> Operation {
    let mut op =
        Operation::new(id, OperationType::Step, OperationStatus::Succeeded, Timestamp::from_millis(1_700_000_000_000));
    op.step_details =
        Some(Box::new(StepDetails { attempt: Some(1), result: Some(result.into()), ..StepDetails::default() }));
    op
}

type Dump = Vec<(ExecutionRecord, Vec<StoredOperation>, Vec<durable_core::model::Event>)>;

async fn dump(store: &dyn Store) -> Dump {
    let mut out = Vec::new();
    for r in store.list_executions(&ListQuery::default()).await.unwrap() {
        let ops = store.read_operations(&r.arn, None, usize::MAX).await.unwrap();
        let events = store.read_events(&r.arn, 0, usize::MAX, false).await.unwrap();
        assert_eq!(store.find_execution(&r.function_name, &r.name).await.unwrap().map(|f| f.arn), Some(r.arn.clone()));
        out.push((r, ops, events));
    }
    out
}

fn options() -> EmbeddedOptions {
    // Small segments and eager compaction, so that data moves between places often.
    EmbeddedOptions::new().segment_bytes(4096).compaction(2048, 0.5).cache_bytes(4096)
}

async fn check(actions: Vec<Action>) {
    let path = dir();
    let model = MemoryStore::new();
    let mut store = EmbeddedStore::open_with(&path, options()).unwrap();
    // The record before the last commit of each execution, for stale commits.
    let mut previous: Vec<Option<ExecutionRecord>> = vec![None; 4];
    for (i, a) in actions.into_iter().enumerate() {
        match a {
            Action::Create(e) => {
                let rec = record("model", "f", &format!("e{e}"));
                let exists = model.get_execution(&rec.arn).await.unwrap().is_some();
                if !exists {
                    create(&model, rec.clone()).await;
                    create(&store, rec).await;
                }
            }
            Action::Commit { exec, ops, events, finish, stale, overwrite } => {
                let arn = record("model", "f", &format!("e{exec}")).arn;
                let Some(current) = model.get_execution(&arn).await.unwrap() else { continue };
                let base =
                    if stale { previous[exec as usize].clone().unwrap_or(current.clone()) } else { current.clone() };
                let new_ops =
                    (0..ops).map(|k| step(&format!("s{i}-{k}"), "r".repeat(10 + usize::from(k) * 50))).collect();
                let mut c = commit_on(&base, new_ops, u64::from(events));
                if overwrite && current.next_op_seq > 1 {
                    c.operations.push(StoredOperation::new(1, step(&format!("over{i}"), "o".repeat(30))));
                }
                if finish {
                    c.record.status = ExecutionStatus::Succeeded;
                }
                let want = model.commit(c.clone()).await;
                let got = store.commit(c).await;
                assert_eq!(got.is_ok(), want.is_ok(), "action {i}: {got:?} vs the model's {want:?}");
                if want.is_ok() {
                    previous[exec as usize] = Some(current);
                }
            }
            Action::Reopen => {
                drop(store);
                store = EmbeddedStore::open_with(&path, options()).unwrap();
            }
            Action::Compact => store.compact().unwrap(),
        }
    }
    assert_eq!(dump(&store).await, dump(&model).await, "the state as read");
    drop(store);
    let store = EmbeddedStore::open_with(&path, options()).unwrap();
    assert_eq!(dump(&store).await, dump(&model).await, "the state after a reopen");
    drop(store);
    let _ = std::fs::remove_dir_all(&path);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_embedded_store_answers_as_the_memory_store_does(actions in proptest::collection::vec(action(), 1..40)) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(check(actions));
    }
}
