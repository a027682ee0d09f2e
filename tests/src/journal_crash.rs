//! The embedded store's kill -9 test, shared by the test (`tests/crash_journal.rs`) and the
//! process it kills (the `crash-journal` binary): the executions they both work on and the
//! commits the child makes.
//!
//! Each execution is created with its EXECUTION operation (seq 1), an operation `latest`
//! (seq 2) that every commit overwrites with the commit's version, and `ExecutionStarted`;
//! every commit adds one operation `s<version>` and two events, so a reader can tell
//! whether every commit the record counts is there, whole.

use durable::model::{
    Event, EventDetails, EventType, Operation, OperationStatus, OperationType, StepDetails, Timestamp,
};
use durable::store::conformance::{commit_on, record};
use durable::store::embedded::EmbeddedOptions;
use durable::store::{Commit, ExecutionRecord, NewExecution, StoredOperation};

/// Executions the child commits on, concurrently.
pub const EXECUTIONS: usize = 4;

/// The store's options on both sides: tiny segments, so rollovers and compactions get
/// killed too.
pub fn options() -> EmbeddedOptions {
    EmbeddedOptions::new().segment_bytes(64 << 10).compaction(256 << 10, 2.0)
}

/// Execution `i`'s record as created.
pub fn exec_record(i: usize) -> ExecutionRecord {
    record("kill9", "crash", &format!("e{i}"))
}

/// A small deterministic generator (xorshift64*), so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn step(id: &str, result: String) -> Operation {
    let mut op =
        Operation::new(id, OperationType::Step, OperationStatus::Succeeded, Timestamp::from_millis(1_700_000_000_000));
    op.step_details =
        Some(Box::new(StepDetails { attempt: Some(1), result: Some(result.into()), ..StepDetails::default() }));
    op
}

/// Execution `i` as created: its EXECUTION operation (seq 1), the operation `latest`
/// (seq 2) that every commit overwrites with its version, and `ExecutionStarted`.
pub fn new_execution(i: usize) -> NewExecution {
    let rec = ExecutionRecord { next_op_seq: 3, next_event_id: 2, ..exec_record(i) };
    let exec =
        Operation::new(rec.execution_id.to_string(), OperationType::Execution, OperationStatus::Started, rec.start);
    NewExecution {
        operations: vec![
            StoredOperation::new(1, exec),
            StoredOperation::new(2, step("latest", rec.version.to_string())),
        ],
        events: vec![Event {
            event_type: EventType::ExecutionStarted,
            event_id: 1,
            event_timestamp: rec.start,
            id: None,
            name: None,
            parent_id: None,
            sub_type: None,
            details: EventDetails::default(),
        }],
        record: rec,
    }
}

/// The next commit on `rec`: a new small operation, `latest` rewritten with the new version
/// and padding of random size (so frames, and torn writes, vary), and two events.
pub fn next_commit(rec: &ExecutionRecord, rng: &mut Rng) -> Commit {
    let mut c = commit_on(rec, vec![step(&format!("s{}", rec.version + 1), format!("\"v{}\"", rec.version + 1))], 2);
    let pad = "p".repeat(rng.below(12_000) as usize);
    let latest = step("latest", format!("{} {pad}", c.record.version));
    c.operations.push(StoredOperation::new(2, latest));
    c
}
