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
    /// A started wait reaches its scheduled end.
    WaitEnds,
    /// A step's retry delay passes: it becomes ready for its next attempt.
    RetryReady,
    /// A callback's overall timeout passes.
    CallbackTimeout,
    /// A callback's heartbeat timeout passes without a heartbeat.
    CallbackHeartbeat,
}

/// One execution as the service caches it: what the store holds, indexed for the
/// questions plans ask (an operation by id, pages in creation order, the next timer).
pub(crate) struct ExecState {
    /// The execution's record, as last committed.
    pub(crate) record: ExecutionRecord,
    /// Operations by id.
    pub(crate) ops: HashMap<Arc<str>, StoredOperation>,
    /// The same operations in creation order (their sequence numbers), for paging.
    pub(crate) by_seq: BTreeMap<u64, Arc<Operation>>,
    /// Every pending timer, earliest first.
    pub(crate) timers: BTreeSet<(Timestamp, Arc<str>, TimerKind)>,
    /// Steps whose retry timer fired and that wait for their next attempt.
    pub(crate) ready: BTreeSet<Arc<str>>,
    /// Operations the service changed (not the function) since the current invocation's
    /// last checkpoint response: reported in the next one.
    pub(crate) notify: Vec<Arc<str>>,
    /// Callbacks and chained invokes still waiting for the outside world.
    pub(crate) external: BTreeSet<Arc<str>>,
    /// Chained invokes whose child execution is not created yet.
    pub(crate) undispatched: BTreeSet<Arc<str>>,
}

fn timers_of(stored: &StoredOperation) -> Vec<(Timestamp, TimerKind)> {
    let op = &stored.operation;
    let one = match (op.op_type, op.status) {
        (OperationType::Wait, OperationStatus::Started) => {
            op.wait_details.as_ref().and_then(|d| d.scheduled_end_timestamp).map(|t| (t, TimerKind::WaitEnds))
        }
        (OperationType::Step, OperationStatus::Pending) => {
            op.step_details.as_ref().and_then(|d| d.next_attempt_timestamp).map(|t| (t, TimerKind::RetryReady))
        }
        (OperationType::Callback, OperationStatus::Started) => {
            let mut v = Vec::new();
            if let Some(t) = stored.meta.timeout_at {
                v.push((t, TimerKind::CallbackTimeout));
            }
            if let Some(t) = stored.meta.heartbeat_at {
                v.push((t, TimerKind::CallbackHeartbeat));
            }
            return v;
        }
        _ => None,
    };
    one.into_iter().collect()
}

fn is_external_wait(op: &Operation) -> bool {
    matches!(op.op_type, OperationType::Callback | OperationType::ChainedInvoke)
        && op.status == OperationStatus::Started
}

impl ExecState {
    /// The execution of `record` with every operation the store holds for it.
    pub(crate) async fn load(store: &dyn Store, record: ExecutionRecord) -> StoreResult<ExecState> {
        let mut state = ExecState {
            record,
            ops: HashMap::new(),
            by_seq: BTreeMap::new(),
            timers: BTreeSet::new(),
            ready: BTreeSet::new(),
            notify: Vec::new(),
            external: BTreeSet::new(),
            undispatched: BTreeSet::new(),
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
        if let Some(old) = self.ops.get(&op.operation.id) {
            for (t, k) in timers_of(old) {
                self.timers.remove(&(t, old.operation.id.clone(), k));
            }
        }
        let id = &op.operation.id;
        if op.operation.status == OperationStatus::Ready {
            self.ready.insert(id.clone());
        } else if !self.ready.is_empty() {
            self.ready.remove(id);
        }
        if is_external_wait(&op.operation) {
            self.external.insert(id.clone());
        } else if !self.external.is_empty() {
            self.external.remove(id);
        }
        if op.operation.op_type == OperationType::ChainedInvoke && !op.meta.dispatched && op.meta.child_arn.is_some() {
            self.undispatched.insert(id.clone());
        } else if !self.undispatched.is_empty() {
            self.undispatched.remove(id);
        }
        for (t, k) in timers_of(&op) {
            self.timers.insert((t, id.clone(), k));
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

    /// The earliest timer once `changed` replace their current versions.
    pub(crate) fn next_timer_with(&self, changed: &[StoredOperation]) -> Option<Timestamp> {
        let unchanged =
            self.timers.iter().find(|(_, id, _)| !changed.iter().any(|c| c.operation.id == *id)).map(|(t, _, _)| *t);
        changed.iter().flat_map(timers_of).map(|(t, _)| t).chain(unchanged).min()
    }

    /// The EXECUTION operation.
    pub(crate) fn execution_op(&self) -> Option<&StoredOperation> {
        self.ops.get(&*self.record.execution_id)
    }

    /// Whether anything could still resume the execution: a timer, a step ready to run,
    /// or a callback or chained invoke the outside world will complete.
    pub(crate) fn has_pending_work(&self) -> bool {
        !self.timers.is_empty() || !self.ready.is_empty() || !self.external.is_empty()
    }
}
