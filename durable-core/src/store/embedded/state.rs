//! The store's state in memory: every execution's record (what lists, lookups, the due
//! index and the writer's checks need), and the operations and events of the executions
//! that are running. A finished execution's operations and events leave memory: they are
//! read back from disk on demand (see `load`). Same answers as `MemoryStore`.
//!
//! Every execution also knows where its operations and events are on disk ([`Stored`]): a
//! base (its part of a snapshot, or an archive file) and the journal frames written since,
//! in order. Applying them in order rebuilds what a running execution holds in memory.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use super::format::Location;
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
    /// What the operations and events held in memory take (an estimate).
    loaded_bytes: u64,
}

pub(super) struct Execution {
    pub(super) record: ExecutionRecord,
    /// The (function, name) pair the name index holds this execution under: the one it was
    /// created with.
    pub(super) name_key: (Arc<str>, Arc<str>),
    /// Where its operations and events are on disk.
    pub(super) stored: Stored,
    /// Its operations and events, while it runs.
    pub(super) data: Option<Data>,
}

/// Where an execution's operations and events are on disk.
#[derive(Debug, Clone, Default)]
pub(super) struct Stored {
    /// Its part of a snapshot, or its archive entry.
    pub(super) base: Option<Location>,
    /// Journal frames written since the base, in order.
    pub(super) frames: Vec<Location>,
}

impl Stored {
    /// Every range to read, in order.
    pub(super) fn ranges(&self) -> impl Iterator<Item = &Location> {
        self.base.iter().chain(&self.frames)
    }
}

/// An execution's operations (by sequence number) and events.
#[derive(Debug, Clone, Default)]
pub(super) struct Data {
    pub(super) ops: BTreeMap<u64, StoredOperation>,
    pub(super) seq_of: HashMap<Arc<str>, u64>,
    pub(super) events: Vec<Event>,
    /// What they take (an estimate).
    pub(super) bytes: u64,
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

fn opt_len<S: AsRef<str>>(s: Option<&S>) -> u64 {
    s.map_or(0, |s| s.as_ref().len() as u64)
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

impl Data {
    /// Creates or replaces operations, as `MemoryStore` does.
    pub(super) fn upsert(&mut self, operations: Vec<StoredOperation>) {
        for op in operations {
            if let Some(old) = self.seq_of.insert(op.operation.id.clone(), op.seq)
                && old != op.seq
                && let Some(gone) = self.ops.remove(&old)
            {
                self.bytes = self.bytes.saturating_sub(op_bytes(&gone.operation));
            }
            self.bytes += op_bytes(&op.operation);
            if let Some(replaced) = self.ops.insert(op.seq, op) {
                self.bytes = self.bytes.saturating_sub(op_bytes(&replaced.operation));
            }
        }
    }

    /// Appends events; they must continue the history (checked when read from disk).
    pub(super) fn append(&mut self, events: Vec<Event>) {
        self.bytes += events.iter().map(event_bytes).sum::<u64>();
        self.events.extend(events);
    }

    /// Appends events read back from disk, checking that they continue the history.
    pub(super) fn append_checked(&mut self, arn: &str, events: Vec<Event>) -> Result<(), String> {
        for (next, e) in (self.events.len() as u64 + 1..).zip(&events) {
            if e.event_id != next {
                return Err(format!("event {} of {arn} does not continue its history at {next}", e.event_id));
            }
        }
        self.append(events);
        Ok(())
    }

    pub(super) fn read_operations(&self, after: Option<u64>, limit: usize) -> Vec<StoredOperation> {
        let range = match after {
            Some(a) => self.ops.range(a.saturating_add(1)..),
            None => self.ops.range(..),
        };
        range.take(limit).map(|(_, op)| op.clone()).collect()
    }

    pub(super) fn read_events(&self, after: u64, limit: usize, reverse: bool) -> Vec<Event> {
        let n = self.events.len();
        if reverse {
            let end = if after == 0 { n } else { (after.saturating_sub(1) as usize).min(n) };
            self.events[..end].iter().rev().take(limit).cloned().collect()
        } else {
            let start = (after as usize).min(n);
            self.events[start..].iter().take(limit).cloned().collect()
        }
    }
}

/// What a read needs: the data in memory, or where it is on disk.
pub(super) enum Source<'a> {
    Memory(&'a Data),
    Disk { stored: Stored, version: u64 },
}

impl State {
    /// What the operations and events held in memory take (an estimate).
    pub(super) fn loaded_bytes(&self) -> u64 {
        self.loaded_bytes
    }

    /// How many executions hold their data in memory.
    pub(super) fn loaded(&self) -> usize {
        self.executions.values().filter(|e| e.data.is_some()).count()
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

    /// Applies a create that was checked and written at `at`.
    pub(super) fn apply_create(&mut self, new: NewExecution, at: Location) {
        let name_key = (new.record.function_name.clone(), new.record.name.clone());
        let mut data = Data::default();
        data.upsert(new.operations);
        data.append(new.events);
        let exec = Execution {
            record: new.record,
            name_key,
            stored: Stored { base: None, frames: vec![at] },
            data: Some(data),
        };
        self.insert(exec);
    }

    /// Adds an execution; a finished one keeps only its record in memory.
    pub(super) fn insert(&mut self, mut exec: Execution) {
        if let Some(k) = due_key(&exec.record) {
            self.due.insert(k);
        }
        if exec.record.status != ExecutionStatus::Running {
            exec.data = None;
        }
        self.loaded_bytes += exec.data.as_ref().map_or(0, |d| d.bytes);
        self.names.insert(exec.name_key.clone(), exec.record.arn.clone());
        self.executions.insert(exec.record.arn.clone(), exec);
    }

    /// Applies a commit that was checked and written at `at`. An execution it finishes
    /// leaves memory (but for its record): its data is returned, for the caller to free
    /// outside the lock.
    pub(super) fn apply_commit(&mut self, commit: Commit, at: Location) -> Option<Data> {
        let exec = self.executions.get_mut(&*commit.record.arn)?;
        if let Some(k) = due_key(&exec.record) {
            self.due.remove(&k);
        }
        if let Some(k) = due_key(&commit.record) {
            self.due.insert(k);
        }
        exec.record = commit.record;
        exec.stored.frames.push(at);
        if let Some(data) = &mut exec.data {
            let before = data.bytes;
            data.upsert(commit.operations);
            data.append(commit.events);
            self.loaded_bytes = (self.loaded_bytes + data.bytes).saturating_sub(before);
        }
        if exec.record.status != ExecutionStatus::Running
            && let Some(data) = exec.data.take()
        {
            self.loaded_bytes = self.loaded_bytes.saturating_sub(data.bytes);
            return Some(data);
        }
        None
    }

    /// Replays a create from the journal (checked, since the journal is input too).
    pub(super) fn replay_create(&mut self, new: NewExecution, at: Location) -> StoreResult<()> {
        self.check_create(&new, &mut Pending::default())?;
        self.apply_create(new, at);
        Ok(())
    }

    /// Replays a commit from the journal.
    pub(super) fn replay_commit(&mut self, commit: Commit, at: Location) -> StoreResult<()> {
        self.check_commit(&commit, &mut Pending::default())?;
        self.apply_commit(commit, at);
        Ok(())
    }

    /// Adds an execution read from a snapshot: a running one with its data to follow
    /// (`data` empty, filled by [`State::snap_extend`]), a finished one with where its data
    /// is.
    pub(super) fn snap_execution(
        &mut self,
        record: ExecutionRecord,
        name_key: Option<(String, String)>,
        stored: Stored,
        data: Option<Data>,
    ) -> Result<(), String> {
        let name_key = name_key
            .map_or_else(|| (record.function_name.clone(), record.name.clone()), |(f, n)| (Arc::from(f), Arc::from(n)));
        if self.executions.contains_key(&*record.arn) || self.names.contains_key(&name_key) {
            return Err(format!("execution {} appears twice", record.arn));
        }
        self.insert(Execution { record, name_key, stored, data });
        Ok(())
    }

    /// Adds operations or events of an execution from a snapshot. A finished execution's
    /// are left on disk (a snapshot written before archives existed holds them).
    pub(super) fn snap_extend(
        &mut self,
        arn: &str,
        operations: Vec<StoredOperation>,
        events: Vec<Event>,
    ) -> Result<(), String> {
        let exec = self.executions.get_mut(arn).ok_or_else(|| format!("execution {arn} has no record"))?;
        let Some(data) = &mut exec.data else { return Ok(()) };
        let before = data.bytes;
        data.upsert(operations);
        data.append_checked(arn, events)?;
        self.loaded_bytes = (self.loaded_bytes + data.bytes).saturating_sub(before);
        Ok(())
    }

    /// Where an execution's data now is (after a compaction rewrote it).
    pub(super) fn restore(&mut self, arn: &str, stored: Stored) {
        if let Some(exec) = self.executions.get_mut(arn) {
            exec.stored = stored;
        }
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
            self.loaded_bytes = self.loaded_bytes.saturating_sub(exec.data.map_or(0, |d| d.bytes));
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

    /// Where to read an execution's operations and events.
    pub(super) fn source(&self, arn: &str) -> StoreResult<Source<'_>> {
        let exec = self.executions.get(arn).ok_or_else(|| StoreError::NotFound(arn.to_owned()))?;
        Ok(match &exec.data {
            Some(d) => Source::Memory(d),
            None => Source::Disk { stored: exec.stored.clone(), version: exec.record.version },
        })
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
