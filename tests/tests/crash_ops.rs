//! Replay after SIGKILL for every operation: a workflow with one of each (step, child
//! context, wait, wait_for_condition, wait_for_callback, invoke, map, parallel, race,
//! patched, a compensating saga) runs in a child process on the embedded store and is
//! killed at random instants until it finishes. The result must be exactly what an
//! uninterrupted run returns, every operation recorded final, every side effect done at
//! least once, and the history well formed.
//!
//! 25 kills by default; `DURABLE_CRASH_KILLS` sets another count.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use durable::model::{EventType, ExecutionStatus, OperationStatus, OperationType};
use durable::service::CheckpointService;
use durable::store::{EmbeddedStore, ListQuery};

#[test]
fn every_operation_survives_sigkill() {
    let kills: usize =
        std::env::var("DURABLE_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).map_or(25, |n: usize| n.div_ceil(2));
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let effects = dir.path().join("effects.log");
    let run = support::kill_until_finished(
        env!("CARGO_BIN_EXE_crash-all-ops"),
        &[&store_dir, &effects],
        kills,
        Duration::from_millis(30),
        Duration::from_millis(400),
        |_| {},
    );
    eprintln!("{} kills, {} runs, {:?}", run.kills, run.runs, run.elapsed);
    let result: serde_json::Value = serde_json::from_str(&run.result).unwrap();
    assert_eq!(
        result,
        serde_json::json!({
            "one": 1, "child": 11, "polls": 3, "approval": "approved", "doubled": 42,
            "squares": [1, 4, 9, 16], "sides": ["l", "r"], "winner": "fast", "patched": true,
            "saga": "Declined",
        }),
        "the same result as an uninterrupted run"
    );

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = Arc::new(EmbeddedStore::open(&store_dir).expect("the journal opens without repair"));
        let service = CheckpointService::new(store);
        let list = service.list_executions(&ListQuery::default()).await.unwrap();
        let roots: Vec<_> =
            list.durable_executions.iter().filter(|e| e.durable_execution_name == "crash-all-ops").collect();
        assert_eq!(roots.len(), 1, "one execution despite the restarts");
        assert_eq!(list.durable_executions.len(), 2, "and one invoked child execution");
        let arn = &roots[0].durable_execution_arn;
        let record = service.get_record(arn).await.unwrap();
        assert_eq!(record.status, ExecutionStatus::Succeeded);

        let history = service.full_history(arn).await.unwrap();
        for (i, e) in history.iter().enumerate() {
            assert_eq!(e.event_id, i as u64 + 1, "event ids are consecutive from 1");
        }
        assert_eq!(history[0].event_type, EventType::ExecutionStarted);
        assert_eq!(history.iter().filter(|e| e.event_type.is_execution_terminal()).count(), 1);
        assert_eq!(history.last().unwrap().event_type, EventType::ExecutionSucceeded);

        // Every operation ended; the only failures are the saga's declined charge (and
        // nothing else), the only cancelled-or-pending one the race's losing wait.
        let ops = service.operations(arn).await.unwrap();
        for op in &ops {
            let name = op.name.as_deref().unwrap_or("-");
            match name {
                "charge" => assert_eq!(op.status, OperationStatus::Failed, "{name}"),
                "slow" => assert_eq!(op.op_type, OperationType::Wait),
                _ if op.op_type == OperationType::Execution => {}
                _ => assert_eq!(op.status, OperationStatus::Succeeded, "{name} is {}", op.status),
            }
        }
        let race = ops.iter().find(|o| o.name.as_deref() == Some("race")).expect("the race is recorded");
        let decision = race.context_details.as_ref().and_then(|d| d.result.as_deref()).unwrap();
        let slow = ops.iter().find(|o| o.name.as_deref() == Some("slow")).expect("the losing wait is recorded");
        assert_eq!(
            decision,
            format!(r#"{{"members":2,"settled":[0],"dropped":["{}"]}}"#, slow.id),
            "the recorded winner is the step; the losing wait is excused on replay"
        );
        assert!(ops.iter().any(|o| o.name.as_deref() == Some("compensate reserve")), "the compensation is a step");

        // Side effects: every body ran at least once (at-least-once steps may repeat
        // after a kill); the compensation ran.
        let text = std::fs::read_to_string(&effects).unwrap();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for line in text.lines() {
            *counts.entry(line).or_default() += 1;
        }
        for effect in [
            "step",
            "child-step",
            "submit",
            "square-1",
            "square-2",
            "square-3",
            "square-4",
            "left",
            "right",
            "fast",
            "reserve",
            "charge",
            "release-7",
        ] {
            assert!(counts.get(effect).copied().unwrap_or(0) >= 1, "{effect} never ran: {counts:?}");
        }
        assert!(counts["poll"] >= 3, "three polls at least: {counts:?}");
    });
}
