//! An in-memory store, for tests and the test runner.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    Commit, DueExecution, ExecutionRecord, ListQuery, NewExecution, Store, StoreError, StoreResult, StoredOperation,
};
use crate::model::{Event, ExecutionStatus, Timestamp};

/// Keeps everything in process memory; nothing survives the process. Commits are atomic
/// and conditional like every store's.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    executions: BTreeMap<Arc<str>, Execution>,
    names: HashMap<(Arc<str>, Arc<str>), Arc<str>>,
    due: BTreeSet<(Timestamp, Arc<str>)>,
}

struct Execution {
    record: ExecutionRecord,
    ops: BTreeMap<u64, StoredOperation>,
    seq_of: HashMap<Arc<str>, u64>,
    events: Vec<Event>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

fn due_key(r: &ExecutionRecord) -> Option<(Timestamp, Arc<str>)> {
    match (r.status, r.wake_at) {
        (ExecutionStatus::Running, Some(t)) => Some((t, r.arn.clone())),
        _ => None,
    }
}

/// Checks the invariants every store enforces on a commit against the current record.
pub(crate) fn check_commit(current: &ExecutionRecord, commit: &Commit) -> StoreResult<()> {
    if current.version != commit.expected_version {
        return Err(StoreError::Conflict(format!(
            "execution {} is at version {}, the writer read version {}",
            current.arn, current.version, commit.expected_version
        )));
    }
    if commit.record.arn != current.arn {
        return Err(StoreError::Invalid("a commit cannot change an execution's ARN".into()));
    }
    if commit.record.version != commit.expected_version + 1 {
        return Err(StoreError::Invalid(format!(
            "a commit must bump the version by one ({} -> {})",
            commit.expected_version, commit.record.version
        )));
    }
    let mut next = current.next_event_id;
    for e in &commit.events {
        if e.event_id != next {
            return Err(StoreError::Invalid(format!(
                "event id {} does not continue the history at {next}",
                e.event_id
            )));
        }
        next += 1;
    }
    if commit.record.next_event_id != next {
        return Err(StoreError::Invalid(format!(
            "the record's next event id {} does not follow the appended events ({next})",
            commit.record.next_event_id
        )));
    }
    Ok(())
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()> {
        let mut inner = self.inner.lock().expect("memory store lock");
        let r = &new.record;
        let name_key = (r.function_name.clone(), r.name.clone());
        if inner.executions.contains_key(&*r.arn) || inner.names.contains_key(&name_key) {
            return Err(StoreError::AlreadyExists(format!("execution {} of {}", r.name, r.function_name)));
        }
        let mut exec =
            Execution { record: new.record.clone(), ops: BTreeMap::new(), seq_of: HashMap::new(), events: new.events };
        for op in new.operations {
            exec.seq_of.insert(op.operation.id.clone(), op.seq);
            exec.ops.insert(op.seq, op);
        }
        if let Some(k) = due_key(&exec.record) {
            inner.due.insert(k);
        }
        inner.names.insert(name_key, r.arn.clone());
        inner.executions.insert(r.arn.clone(), exec);
        Ok(())
    }

    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        let inner = self.inner.lock().expect("memory store lock");
        Ok(inner.executions.get(arn).map(|e| e.record.clone()))
    }

    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        let inner = self.inner.lock().expect("memory store lock");
        let arn = inner.names.get(&(Arc::from(function_name), Arc::from(name)));
        Ok(arn.and_then(|a| inner.executions.get(a)).map(|e| e.record.clone()))
    }

    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        let mut guard = self.inner.lock().expect("memory store lock");
        let inner = &mut *guard;
        let exec = inner
            .executions
            .get_mut(&*commit.record.arn)
            .ok_or_else(|| StoreError::NotFound(commit.record.arn.to_string()))?;
        check_commit(&exec.record, &commit)?;
        if let Some(k) = due_key(&exec.record) {
            inner.due.remove(&k);
        }
        if let Some(k) = due_key(&commit.record) {
            inner.due.insert(k);
        }
        exec.record = commit.record;
        for op in commit.operations {
            if let Some(old) = exec.seq_of.insert(op.operation.id.clone(), op.seq)
                && old != op.seq
            {
                exec.ops.remove(&old);
            }
            exec.ops.insert(op.seq, op);
        }
        exec.events.extend(commit.events);
        Ok(())
    }

    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>> {
        let inner = self.inner.lock().expect("memory store lock");
        let exec = inner.executions.get(arn).ok_or_else(|| StoreError::NotFound(arn.to_owned()))?;
        let range = match after {
            Some(a) => exec.ops.range(a.saturating_add(1)..),
            None => exec.ops.range(..),
        };
        Ok(range.take(limit).map(|(_, op)| op.clone()).collect())
    }

    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        let inner = self.inner.lock().expect("memory store lock");
        let exec = inner.executions.get(arn).ok_or_else(|| StoreError::NotFound(arn.to_owned()))?;
        let n = exec.events.len();
        if reverse {
            let end = if after == 0 { n } else { (after.saturating_sub(1) as usize).min(n) };
            Ok(exec.events[..end].iter().rev().take(limit).cloned().collect())
        } else {
            let start = (after as usize).min(n);
            Ok(exec.events[start..].iter().take(limit).cloned().collect())
        }
    }

    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        let inner = self.inner.lock().expect("memory store lock");
        Ok(inner
            .due
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(t, a)| DueExecution { arn: a.to_string(), wake_at: *t })
            .collect())
    }

    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let inner = self.inner.lock().expect("memory store lock");
        let iter = match &query.after {
            Some(a) => {
                inner.executions.range::<str, _>((std::ops::Bound::Excluded(a.as_str()), std::ops::Bound::Unbounded))
            }
            None => inner.executions.range::<str, _>(..),
        };
        Ok(iter
            .map(|(_, e)| &e.record)
            .filter(|r| query.function_name.as_ref().is_none_or(|f| *r.function_name == **f))
            .filter(|r| query.statuses.is_empty() || query.statuses.contains(&r.status))
            .take(if query.limit == 0 { usize::MAX } else { query.limit })
            .cloned()
            .collect())
    }
}
