//! The whole state of the store, in memory: what readers read, and what the writer checks
//! writes against. Same structures and semantics as `MemoryStore`.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt, HashSet};
use std::sync::Arc;

use crate::model::{Event, ExecutionStatus, Operation, Timestamp};
use crate::store::memory::check_commit;
use crate::store::{
    Commit, DueExecution, ExecutionRecord, ListQuery, NewExecution, StoreError, StoreResult, StoredOperation,
};

#[derive(Default)]
pub(super) struct State {
    pub(super) executions: BTreeMap<Arc<str>, Execution>,
    names: HashMap<(Arc<str>, Arc<str>), Arc<str>>,
    due: BTreeSet<(Timestamp, Arc<str>)>,
    /// An estimate of what a snapshot of the state would take on disk.
    live_bytes: u64,
}

pub(super) struct Execution {
    pub(super) record: ExecutionRecord,
    /// The (function, name) pair the name index holds this execution under: the one it was
    /// created with.
    pub(super) name_key: (Arc<str>, Arc<str>),
    pub(super) ops: BTreeMap<u64, StoredOperation>,
    seq_of: HashMap<Arc<str>, u64>,
    pub(super) events: Vec<Event>,
    /// This execution's share of `State::live_bytes`.
    bytes: u64,
}

/// The writes accepted so far in a group, not applied yet: later members of the group are
/// checked against them (versions chain, names stay unique).
#[derive(Default)]
pub(super) struct Pending<'a> {
    records: HashMap<&'a str, &'a ExecutionRecord>,
    names: HashSet<(&'a str, &'a str)>,
}

fn due_key(r: &ExecutionRecord) -> Option<(Timestamp, Arc<str>)> {
    match (r.status, r.wake_at) {
        (ExecutionStatus::Running, Some(t)) => Some((t, r.arn.clone())),
        _ => None,
    }
}

fn len(s: &str) -> u64 {
    s.len() as u64
}

fn opt_len<S: AsRef<str>>(s: Option<&S>) -> u64 {
    s.map_or(0, |s| len(s.as_ref()))
}

/// Roughly what a record takes serialised: a fixed part plus its strings and payloads.
fn record_bytes(r: &ExecutionRecord) -> u64 {
    400 + len(&r.arn)
        + len(&r.execution_id)
        + len(&r.function_name)
        + len(&r.name)
        + opt_len(r.result.as_ref())
        + r.error.as_ref().map_or(0, |e| e.approx_size() as u64)
}

pub(super) fn op_bytes(op: &Operation) -> u64 {
    op.approx_size() as u64
}

pub(super) fn event_bytes(e: &Event) -> u64 {
    let d = &e.details;
    150 + opt_len(e.id.as_ref())
        + opt_len(e.name.as_ref())
        + opt_len(e.parent_id.as_ref())
        + d.input.as_ref().map_or(0, |i| opt_len(i.payload.as_ref()))
        + d.result.as_ref().map_or(0, |r| opt_len(r.payload.as_ref()))
        + d.error.as_ref().and_then(|e| e.payload.as_ref()).map_or(0, |e| e.approx_size() as u64)
}

impl Execution {
    fn new(record: ExecutionRecord, name_key: (Arc<str>, Arc<str>)) -> Self {
        let bytes = record_bytes(&record);
        Execution { record, name_key, ops: BTreeMap::new(), seq_of: HashMap::new(), events: Vec::new(), bytes }
    }

    /// Creates or replaces operations, as `MemoryStore` does; returns the change in size.
    fn upsert(&mut self, operations: Vec<StoredOperation>) -> i64 {
        let mut delta = 0i64;
        for op in operations {
            if let Some(old) = self.seq_of.insert(op.operation.id.clone(), op.seq)
                && old != op.seq
                && let Some(gone) = self.ops.remove(&old)
            {
                delta -= op_bytes(&gone.operation) as i64;
            }
            delta += op_bytes(&op.operation) as i64;
            let seq = op.seq;
            if let Some(replaced) = self.ops.insert(seq, op) {
                delta -= op_bytes(&replaced.operation) as i64;
            }
        }
        delta
    }

    fn append(&mut self, events: Vec<Event>) -> i64 {
        let delta: u64 = events.iter().map(event_bytes).sum();
        self.events.extend(events);
        delta as i64
    }

    fn grow(&mut self, delta: i64) {
        self.bytes = self.bytes.saturating_add_signed(delta);
    }
}

impl State {
    /// The estimated size of a snapshot of everything.
    pub(super) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Checks a create against the state and the group's earlier members.
    pub(super) fn check_create<'a>(&self, new: &'a NewExecution, pending: &mut Pending<'a>) -> StoreResult<()> {
        let r = &new.record;
        if self.executions.contains_key(&*r.arn)
            || pending.records.contains_key(&*r.arn)
            || self.names.contains_key(&(r.function_name.clone(), r.name.clone()))
            || pending.names.contains(&(&*r.function_name, &*r.name))
        {
            return Err(StoreError::AlreadyExists(format!("execution {} of {}", r.name, r.function_name)));
        }
        pending.records.insert(&r.arn, r);
        pending.names.insert((&r.function_name, &r.name));
        Ok(())
    }

    /// Checks a commit against the state and the group's earlier members.
    pub(super) fn check_commit<'a>(&self, commit: &'a Commit, pending: &mut Pending<'a>) -> StoreResult<()> {
        let arn = &*commit.record.arn;
        let current = match pending.records.get(arn) {
            Some(r) => *r,
            None => {
                &self.executions.get(arn).ok_or_else(|| StoreError::NotFound(commit.record.arn.to_string()))?.record
            }
        };
        check_commit(current, commit)?;
        pending.records.insert(arn, &commit.record);
        Ok(())
    }

    /// Applies a create that was checked.
    pub(super) fn apply_create(&mut self, new: NewExecution) {
        let name_key = (new.record.function_name.clone(), new.record.name.clone());
        let mut exec = Execution::new(new.record, name_key);
        let delta = exec.upsert(new.operations) + exec.append(new.events);
        exec.grow(delta);
        self.insert(exec);
    }

    fn insert(&mut self, exec: Execution) {
        if let Some(k) = due_key(&exec.record) {
            self.due.insert(k);
        }
        self.live_bytes += exec.bytes;
        self.names.insert(exec.name_key.clone(), exec.record.arn.clone());
        self.executions.insert(exec.record.arn.clone(), exec);
    }

    /// Applies a commit that was checked.
    pub(super) fn apply_commit(&mut self, commit: Commit) {
        let Some(exec) = self.executions.get_mut(&*commit.record.arn) else { return };
        if let Some(k) = due_key(&exec.record) {
            self.due.remove(&k);
        }
        if let Some(k) = due_key(&commit.record) {
            self.due.insert(k);
        }
        let before = exec.bytes;
        let mut delta = record_bytes(&commit.record) as i64 - record_bytes(&exec.record) as i64;
        exec.record = commit.record;
        delta += exec.upsert(commit.operations);
        delta += exec.append(commit.events);
        exec.grow(delta);
        self.live_bytes = (self.live_bytes + exec.bytes).saturating_sub(before);
    }

    /// Replays a create from the journal (checked, since the journal is input too).
    pub(super) fn replay_create(&mut self, new: NewExecution) -> StoreResult<()> {
        self.check_create(&new, &mut Pending::default())?;
        self.apply_create(new);
        Ok(())
    }

    /// Replays a commit from the journal.
    pub(super) fn replay_commit(&mut self, commit: Commit) -> StoreResult<()> {
        self.check_commit(&commit, &mut Pending::default())?;
        self.apply_commit(commit);
        Ok(())
    }

    /// Loads an execution's record from a snapshot.
    pub(super) fn snap_execution(
        &mut self,
        record: ExecutionRecord,
        name_key: Option<(String, String)>,
    ) -> Result<(), String> {
        let name_key = name_key
            .map_or_else(|| (record.function_name.clone(), record.name.clone()), |(f, n)| (Arc::from(f), Arc::from(n)));
        if self.executions.contains_key(&*record.arn) || self.names.contains_key(&name_key) {
            return Err(format!("execution {} appears twice", record.arn));
        }
        self.insert(Execution::new(record, name_key));
        Ok(())
    }

    /// Loads operations or events of an execution from a snapshot.
    pub(super) fn snap_extend(
        &mut self,
        arn: &str,
        operations: Vec<StoredOperation>,
        events: Vec<Event>,
    ) -> Result<(), String> {
        let exec = self.executions.get_mut(arn).ok_or_else(|| format!("execution {arn} has no record"))?;
        for (next, e) in (exec.events.len() as u64 + 1..).zip(&events) {
            if e.event_id != next {
                return Err(format!("event {} of {arn} does not continue its history at {next}", e.event_id));
            }
        }
        let before = exec.bytes;
        let delta = exec.upsert(operations) + exec.append(events);
        exec.grow(delta);
        self.live_bytes = (self.live_bytes + exec.bytes).saturating_sub(before);
        Ok(())
    }

    /// Forgets an execution.
    pub(super) fn remove(&mut self, arn: &str) {
        if let Some(exec) = self.executions.remove(arn) {
            if let Some(k) = due_key(&exec.record) {
                self.due.remove(&k);
            }
            if self.names.get(&exec.name_key).is_some_and(|a| **a == *arn) {
                self.names.remove(&exec.name_key);
            }
            self.live_bytes = self.live_bytes.saturating_sub(exec.bytes);
        }
    }

    // Reads: the same answers as `MemoryStore`'s.

    pub(super) fn get(&self, arn: &str) -> Option<ExecutionRecord> {
        self.executions.get(arn).map(|e| e.record.clone())
    }

    pub(super) fn find(&self, function_name: &str, name: &str) -> Option<ExecutionRecord> {
        let arn = self.names.get(&(Arc::from(function_name), Arc::from(name)))?;
        self.get(arn)
    }

    pub(super) fn read_operations(
        &self,
        arn: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<StoredOperation>> {
        let exec = self.executions.get(arn).ok_or_else(|| StoreError::NotFound(arn.to_owned()))?;
        let range = match after {
            Some(a) => exec.ops.range(a.saturating_add(1)..),
            None => exec.ops.range(..),
        };
        Ok(range.take(limit).map(|(_, op)| op.clone()).collect())
    }

    pub(super) fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        let exec = self.executions.get(arn).ok_or_else(|| StoreError::NotFound(arn.to_owned()))?;
        let n = exec.events.len();
        if reverse {
            let end = if after == 0 { n } else { (after.saturating_sub(1) as usize).min(n) };
            Ok(exec.events[..end].iter().rev().take(limit).cloned().collect())
        } else {
            let start = (after as usize).min(n);
            Ok(exec.events[start..].iter().take(limit).cloned().collect())
        }
    }

    pub(super) fn due_executions(&self, now: Timestamp, limit: usize) -> Vec<DueExecution> {
        self.due
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(t, a)| DueExecution { arn: a.to_string(), wake_at: *t })
            .collect()
    }

    pub(super) fn list_executions(&self, query: &ListQuery) -> Vec<ExecutionRecord> {
        let iter = match &query.after {
            Some(a) => {
                self.executions.range::<str, _>((std::ops::Bound::Excluded(a.as_str()), std::ops::Bound::Unbounded))
            }
            None => self.executions.range::<str, _>(..),
        };
        iter.map(|(_, e)| &e.record)
            .filter(|r| query.function_name.as_ref().is_none_or(|f| *r.function_name == **f))
            .filter(|r| query.statuses.is_empty() || query.statuses.contains(&r.status))
            .take(if query.limit == 0 { usize::MAX } else { query.limit })
            .cloned()
            .collect()
    }
}
