//! The crash test: runs a durable workflow in a child process on the embedded store, kills
//! it with SIGKILL at random instants, restarts it each time, and checks that nothing
//! acknowledged was lost, at-most-once effects happened at most once, at-least-once
//! effects at least once, the history is well formed and the result is right.
//!
//! 50 kills by default; `DURABLE_CRASH_KILLS=1000` runs a thousand.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable::model::{EventType, ExecutionStatus, OperationStatus};
use durable::service::CheckpointService;
use durable::store::EmbeddedStore;

const ROUNDS: i64 = 6;

#[test]
fn sigkill_at_random_instants_loses_nothing() {
    let kills: usize = std::env::var("DURABLE_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let effects = dir.path().join("effects.log");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = acked.clone();
    let run = support::kill_until_finished(
        env!("CARGO_BIN_EXE_crash-workflow"),
        &[&store_dir, &effects],
        kills,
        Duration::from_millis(40),
        Duration::from_millis(400),
        move |line| {
            if let Some(step) = line.strip_prefix("acked ") {
                sink.lock().unwrap().push(step.to_owned());
            }
        },
    );
    eprintln!("{} kills, {} runs, {:?}", run.kills, run.runs, run.elapsed);
    let finished = Some(run.result);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = Arc::new(EmbeddedStore::open(&store_dir).expect("the journal opens without repair"));
        let service = CheckpointService::new(store);
        let list = service.list_executions(&durable::store::ListQuery::default()).await.unwrap();
        assert_eq!(list.durable_executions.len(), 1, "one execution despite the restarts (idempotent start)");
        let arn = &list.durable_executions[0].durable_execution_arn;
        let record = service.get_record(arn).await.unwrap();
        assert_eq!(record.status, ExecutionStatus::Succeeded);
        let ops = service.operations(arn).await.unwrap();
        let history = service.full_history(arn).await.unwrap();

        // The history is well formed.
        for (i, e) in history.iter().enumerate() {
            assert_eq!(e.event_id, i as u64 + 1, "event ids are consecutive from 1");
        }
        assert_eq!(history[0].event_type, EventType::ExecutionStarted);
        let terminal = history.iter().filter(|e| e.event_type.is_execution_terminal()).count();
        assert_eq!(terminal, 1, "exactly one terminal event");
        assert_eq!(history.last().unwrap().event_type, EventType::ExecutionSucceeded);
        let invocations = history.iter().filter(|e| e.event_type == EventType::InvocationCompleted).count() as u64;
        assert_eq!(invocations, record.invocation, "one InvocationCompleted per invocation");

        // Side effects: at-least-once at least once, at-most-once at most once.
        let text = std::fs::read_to_string(&effects).unwrap_or_default();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for line in text.lines() {
            *counts.entry(line.split(' ').next().unwrap().to_owned()).or_default() += 1;
        }
        let status = |name: &str| ops.iter().find(|o| o.name.as_deref() == Some(name)).map(|o| o.status);
        let mut expected = 0;
        for i in 0..ROUNDS {
            let alo = format!("alo-{i}");
            assert_eq!(status(&alo), Some(OperationStatus::Succeeded), "{alo}");
            assert!(counts.get(&alo).copied().unwrap_or(0) >= 1, "{alo} ran at least once");
            expected += i;
            let amo = format!("amo-{i}");
            let n = counts.get(&amo).copied().unwrap_or(0);
            assert!(n <= 1, "{amo} ran {n} times; at-most-once allows one");
            match status(&amo) {
                Some(OperationStatus::Succeeded) => {
                    assert_eq!(n, 1, "{amo} succeeded, so it ran once");
                    expected += i * 10;
                }
                Some(OperationStatus::Failed) => {} // interrupted by a kill, never re-run
                other => panic!("{amo} is {other:?}"),
            }
        }
        assert_eq!(
            finished.as_deref(),
            Some(expected.to_string().as_str()),
            "the result matches the recorded outcomes"
        );
        assert_eq!(record.result.as_deref(), Some(expected.to_string().as_str()));

        // Nothing acknowledged was lost: every step a run saw acknowledged is recorded final.
        for step in acked.lock().unwrap().iter() {
            let s = status(step).unwrap_or_else(|| panic!("acknowledged {step} is missing"));
            assert!(s.is_terminal(), "acknowledged {step} is {s}");
        }
    });
}
