//! The one way the service changes an execution: an optimistic-concurrency transaction.
//!
//! Within this process an execution's changes take turns on its lock ([`Locked`]), and its
//! state stays cached between them. Other processes may share the store, so the cache can
//! be stale: every commit holds only if the stored version is still the one the change was
//! planned against, and when another writer committed first the store refuses it
//! ([`StoreError::Conflict`]). The execution is then reloaded and the change planned again
//! against what is there now. A change is therefore a *plan*: a function of the state and
//! the time that says what to write, and that may run more than once.
//!
//! [`Locked::run`] is that loop, for every change the service makes. It also keeps one
//! rule for every write that ends an execution (an invocation's final output, a stop, a
//! time-out): a parent execution waiting on it through a chained invoke hears of the end
//! before it is committed. Only the work that follows a transaction under the same lock
//! (recording dispatched invokes) commits by itself, once.

use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;

use super::CheckpointService;
use super::error::ServiceError;
use super::state::ExecState;
use super::token;
use crate::model::{ErrorObject, Event, Timestamp};
use crate::store::{Commit, ExecutionRecord, StoreError, StoredOperation};

/// An execution's place in the service's cache: its state once loaded, behind its lock.
pub(super) type Slot = Arc<tokio::sync::Mutex<Option<ExecState>>>;

/// How many times a change that lost to another writer is planned again. After that the
/// caller gets the conflict, which is retryable (`TooManyRequestsException`).
const RETRIES: u32 = 2;

/// Who makes a change: it decides what is checked before a plan runs, and what a reload
/// after a lost commit keeps.
#[derive(Debug, Clone, Copy)]
pub(super) enum Writer<'a> {
    /// The invocation that holds `token`: its checkpoints and its end. The token must name
    /// the current invocation of a running execution. A reload keeps what the invocation
    /// is yet to hear of.
    Invocation {
        /// The token the invocation sent.
        token: &'a str,
        /// The token must also be unused (a checkpoint consumes it).
        latest: bool,
    },
    /// Anyone else: a runner beginning an invocation, a stop, a callback's sender, a child
    /// execution reporting its end. The execution must be running. A reload starts afresh.
    Outside,
}

/// What one commit writes: the execution's next record, and the operations and history
/// events that come with it.
pub(super) struct Write {
    /// The record, at the next version.
    pub(super) record: ExecutionRecord,
    /// Operations created or changed.
    pub(super) ops: Vec<StoredOperation>,
    /// Events appended, numbered on from the record's previous `next_event_id`.
    pub(super) events: Vec<Event>,
}

impl Write {
    /// A write that changes nothing yet: the current record at the next version.
    pub(super) fn on(state: &ExecState) -> Write {
        let mut record = state.record.clone();
        record.version += 1;
        Write { record, ops: Vec::new(), events: Vec::new() }
    }
}

/// What a plan decided.
#[expect(
    clippy::large_enum_variant,
    reason = "a plan is moved once, to its commit: boxing the write would cost every checkpoint an allocation"
)]
pub(super) enum Plan<T> {
    /// Commit the write, then hand `T` to the caller.
    Commit(Write, T),
    /// Commit nothing; hand `T` to the caller.
    Skip(T),
}

/// A change to an execution from outside an invocation (a callback completed, a child
/// execution ended), for [`CheckpointService::mutate`].
pub(super) struct Change {
    /// What to commit.
    pub(super) write: Write,
    /// The change completes something the execution waits on: wake it.
    pub(super) wake: bool,
    /// The operation to report to a running invocation.
    pub(super) notify: Option<Arc<str>>,
}

/// Computes a [`Change`] from an execution's current state and the time; `None` changes
/// nothing.
pub(super) type Mutation<'a> = dyn FnMut(&ExecState, Timestamp) -> Result<Option<Change>, ServiceError> + Send + 'a;

/// One execution under its lock for as long as this value lives, so that its holder's
/// changes and the work that follows them (dispatching invokes, building the answer,
/// forgetting a finished execution) never interleave with anything else this service does
/// to the execution.
pub(super) struct Locked<'s> {
    service: &'s CheckpointService,
    arn: &'s str,
    writer: Writer<'s>,
    held: OwnedMutexGuard<Option<ExecState>>,
    /// Lost commits that may still be planned again, over all transactions of this lock.
    retries: u32,
    /// Whether the change planned last ends the execution.
    planned_end: bool,
}

impl CheckpointService {
    /// Takes the lock of execution `arn`, for changes by `writer`.
    pub(super) async fn lock<'s>(&'s self, arn: &'s str, writer: Writer<'s>) -> Locked<'s> {
        let slot = self.slot(arn);
        Locked { service: self, arn, writer, held: slot.lock_owned().await, retries: RETRIES, planned_end: false }
    }

    /// The slot of `arn`, made on first use.
    fn slot(&self, arn: &str) -> Slot {
        let mut cache = self.cache.lock().expect("cache lock");
        // Looked up first: `entry` would allocate the key on every call.
        if let Some(slot) = cache.get(arn) {
            return slot.clone();
        }
        cache.entry(arn.to_owned()).or_default().clone()
    }

    /// The execution as stored: its record and every operation.
    async fn load(&self, arn: &str) -> Result<ExecState, ServiceError> {
        let record = (*self.store).get_execution(arn).await?.ok_or_else(|| ServiceError::NotFound(arn.to_owned()))?;
        Ok(ExecState::load(&*self.store, record).await?)
    }

    /// Commits `write`, reporting to the parent first when it ends the execution.
    async fn write(&self, state: &mut ExecState, write: Write) -> Result<(), ServiceError> {
        if write.record.status.is_terminal() {
            // The parent hears of the end first: if the commit then fails, the end is made
            // again and reported again, which the parent ignores. In the other order a
            // failed report would be lost for good, with the parent waiting forever.
            Box::pin(self.report_to_parent(&write.record)).await?;
            let arn = write.record.arn.clone();
            self.commit(state, write).await?;
            self.announce_end(&arn);
            return Ok(());
        }
        self.commit(state, write).await
    }

    /// Commits `write` to the store, if the execution is still at the cached version, and
    /// then to the cached state. Transactions commit through it, and so does the work that
    /// follows one under its lock (recording dispatched invokes), unretried: a conflict
    /// there is the caller's.
    pub(super) async fn commit(&self, state: &mut ExecState, write: Write) -> Result<(), ServiceError> {
        // Operations are shared (`Arc`): the cache keeps what the store keeps, uncopied.
        let cached_ops = write.ops.clone();
        let cached_record = write.record.clone();
        let commit = Commit {
            expected_version: state.record.version,
            record: write.record,
            operations: write.ops,
            events: write.events,
        };
        (*self.store).commit(commit).await?;
        state.record = cached_record;
        for op in cached_ops {
            state.put(op);
        }
        Ok(())
    }

    /// Applies a change from outside an invocation, computed by `f` from the execution's
    /// current state. A change that completes something wakes the execution: a running
    /// invocation hears of it in its next checkpoint response, an idle execution becomes
    /// due now. An unknown execution is a `ResourceNotFoundException` (as an invalid
    /// parameter: the caller named it, in a callback id or as a parent).
    pub(super) async fn mutate(&self, arn: &str, f: &mut Mutation<'_>) -> Result<(), ServiceError> {
        let mut locked = self.lock(arn, Writer::Outside).await;
        let notify = locked
            .run(|state, now| {
                let Some(mut change) = f(state, now)? else { return Ok(Plan::Skip(None)) };
                let active = state.record.active_invocation().is_some();
                // While an invocation runs, `wake_at` is its lease (or nothing), which the
                // invocation's end replaces: a change from outside leaves it alone.
                if !active {
                    let record = &mut change.write.record;
                    record.wake_at = if change.wake {
                        Some(now)
                    } else {
                        state.next_timer_with(&change.write.ops).map(|t| t.max(now))
                    };
                }
                Ok(Plan::Commit(change.write, change.notify.filter(|_| active)))
            })
            .await
            .map_err(|e| match e {
                ServiceError::NotFound(_) => ServiceError::InvalidParameter(ErrorObject::new(
                    "ResourceNotFoundException",
                    format!("no execution {arn}"),
                )),
                e => e,
            })?;
        if let Some(id) = notify {
            locked.state().notify.push(id);
        }
        Ok(())
    }
}

impl Locked<'_> {
    /// The execution, loaded when not cached, once the writer may change it: its token is
    /// current, or for a writer from outside, the execution is running.
    pub(super) async fn checked(&mut self) -> Result<&mut ExecState, ServiceError> {
        let state = match &mut *self.held {
            Some(state) => state,
            held @ None => held.insert(self.service.load(self.arn).await?),
        };
        match self.writer {
            Writer::Invocation { token, latest } => token::check(state, self.arn, token, latest)?,
            Writer::Outside if state.record.status.is_terminal() => {
                return Err(ServiceError::NotRunning(format!("{} is {}", self.arn, state.record.status)));
            }
            Writer::Outside => {}
        }
        Ok(state)
    }

    /// One transaction: runs `plan` on the checked execution at the current time and
    /// commits what it decided. When another writer committed first, reloads and runs
    /// `plan` again, [`RETRIES`] times at most over this lock's life; then, and on any
    /// other failure, returns the error. An error from `plan` is returned as it is.
    pub(super) async fn run<T>(
        &mut self,
        mut plan: impl FnMut(&mut ExecState, Timestamp) -> Result<Plan<T>, ServiceError>,
    ) -> Result<T, ServiceError> {
        let service = self.service;
        loop {
            let state = self.checked().await?;
            let now = service.clock.now();
            let (write, then) = match plan(state, now)? {
                Plan::Commit(write, then) => (write, then),
                Plan::Skip(then) => return Ok(then),
            };
            let ends = write.record.status.is_terminal();
            let written = service.write(state, write).await;
            self.planned_end = ends;
            match written {
                Ok(()) => return Ok(then),
                Err(ServiceError::Store(StoreError::Conflict(_))) if self.retries > 0 => {
                    self.retries -= 1;
                    self.reload().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the change the last transaction planned ends the execution, committed or not.
    pub(super) fn planned_end(&self) -> bool {
        self.planned_end
    }

    /// The execution as the last transaction left it.
    ///
    /// # Panics
    ///
    /// Unless a transaction or [`checked`](Self::checked) succeeded first: only they load
    /// the execution.
    pub(super) fn state(&mut self) -> &mut ExecState {
        self.held.as_mut().expect("a transaction loaded the execution")
    }

    /// Forgets a finished execution: its slot leaves the cache (nothing will change it
    /// again), and its state is freed off this path when large.
    pub(super) fn forget(&mut self) {
        self.service.cache.lock().expect("cache lock").remove(self.arn);
        if let Some(state) = self.held.take() {
            let large = state.by_seq.len() >= crate::free::LARGE_OPERATIONS;
            crate::free::free(state, large);
        }
    }

    /// Refreshes the cache after a lost commit, as the writer needs.
    async fn reload(&mut self) -> Result<(), ServiceError> {
        match self.writer {
            // The next transaction loads what is there now.
            Writer::Outside => *self.held = None,
            Writer::Invocation { .. } => self.reload_for_invocation().await?,
        }
        Ok(())
    }

    /// Reloads the execution after a commit of its running invocation lost to another
    /// writer. The operations that differ from the cached state were changed by that
    /// writer (a callback completed, a child execution reported its end), perhaps in
    /// another process with its own service: the invocation hears of them as of changes
    /// made through this service, in its next checkpoint response, and if it ends
    /// `PENDING` the execution is due at once. Without this, a completion made elsewhere
    /// during an invocation would be lost to it (and an execution waiting on nothing else
    /// would be failed for returning `PENDING` with nothing pending).
    async fn reload_for_invocation(&mut self) -> Result<(), ServiceError> {
        let old = self.held.take();
        let mut fresh = self.service.load(self.arn).await?;
        if let Some(old) = old
            && old.record.active_invocation().is_some()
            && fresh.record.active_invocation() == old.record.active_invocation()
        {
            fresh.notify = old.notify;
            for op in fresh.by_seq.values() {
                let changed =
                    old.ops.get(&op.id).is_none_or(|o| !Arc::ptr_eq(&o.operation, op) && *o.operation != **op);
                if changed && !fresh.notify.contains(&op.id) {
                    fresh.notify.push(op.id.clone());
                }
            }
        }
        *self.held = Some(fresh);
        Ok(())
    }
}
