//! The service's in-memory view of one execution: record, operations by id and by
//! sequence, and the index of its timers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use crate::model::{Operation, OperationStatus, OperationType, Timestamp};
use crate::store::{ExecutionRecord, Store, StoreResult, StoredOperation};

/// Why a timer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    WaitEnds,
    RetryReady,
}

pub(crate) struct ExecState {
    pub(crate) record: ExecutionRecord,
    pub(crate) ops: HashMap<Arc<str>, StoredOperation>,
    pub(crate) by_seq: BTreeMap<u64, Arc<Operation>>,
    pub(crate) timers: BTreeSet<(Timestamp, Arc<str>, TimerKind)>,
    /// Steps whose retry timer fired and that wait for their next attempt.
    pub(crate) ready: BTreeSet<Arc<str>>,
    /// Operations the service changed (not the function) since the current invocation's
    /// last checkpoint response: reported in the next one.
    pub(crate) notify: Vec<Arc<str>>,
}

fn timer_of(op: &Operation) -> Option<(Timestamp, TimerKind)> {
    match (op.op_type, op.status) {
        (OperationType::Wait, OperationStatus::Started) => {
            op.wait_details.as_ref()?.scheduled_end_timestamp.map(|t| (t, TimerKind::WaitEnds))
        }
        (OperationType::Step, OperationStatus::Pending) => {
            op.step_details.as_ref()?.next_attempt_timestamp.map(|t| (t, TimerKind::RetryReady))
        }
        _ => None,
    }
}

impl ExecState {
    pub(crate) async fn load(store: &dyn Store, record: ExecutionRecord) -> StoreResult<ExecState> {
        let mut state = ExecState {
            record,
            ops: HashMap::new(),
            by_seq: BTreeMap::new(),
            timers: BTreeSet::new(),
            ready: BTreeSet::new(),
            notify: Vec::new(),
        };
        let mut after = None;
        loop {
            let page = store.read_operations(&state.record.arn, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            for op in page {
                state.put(op);
            }
        }
        Ok(state)
    }

    /// Inserts or replaces an operation, keeping the indexes right.
    pub(crate) fn put(&mut self, op: StoredOperation) {
        if let Some(old) = self.ops.get(&op.operation.id)
            && let Some((t, k)) = timer_of(&old.operation)
        {
            self.timers.remove(&(t, old.operation.id.clone(), k));
        }
        if op.operation.status == OperationStatus::Ready {
            self.ready.insert(op.operation.id.clone());
        } else {
            self.ready.remove(&op.operation.id);
        }
        if let Some((t, k)) = timer_of(&op.operation) {
            self.timers.insert((t, op.operation.id.clone(), k));
        }
        self.by_seq.insert(op.seq, op.operation.clone());
        self.ops.insert(op.operation.id.clone(), op);
    }

    /// Timers due at `now`, earliest first.
    pub(crate) fn due_timers(&self, now: Timestamp) -> Vec<(Timestamp, Arc<str>, TimerKind)> {
        self.timers.iter().take_while(|(t, _, _)| *t <= now).cloned().collect()
    }

    /// The earliest timer, if any.
    pub(crate) fn next_timer(&self) -> Option<Timestamp> {
        self.timers.iter().next().map(|(t, _, _)| *t)
    }

    /// The EXECUTION operation.
    pub(crate) fn execution_op(&self) -> Option<&StoredOperation> {
        self.ops.get(&*self.record.execution_id)
    }

    /// Whether anything could still resume the execution: a timer, or a step ready to run.
    pub(crate) fn has_pending_work(&self) -> bool {
        !self.timers.is_empty() || !self.ready.is_empty()
    }
}
