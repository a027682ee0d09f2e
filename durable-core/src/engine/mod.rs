//! The replay engine: one invocation of a durable function.
//!
//! The engine drives the user's future and a checkpoint flusher on one task. Durable
//! operations look up their recorded outcome by id, validate it against the call, and
//! either return it (replay) or do the work and queue updates. A durable operation that
//! cannot finish in this invocation (a wait, a retry delay) never completes: it parks and
//! counts itself as *blocked*. When the user future is stuck, no step body is running, no
//! checkpoint is in flight and something is blocked, the engine flushes what is queued and
//! ends the invocation `PENDING`; the service re-invokes it when the blocker is done.
//! Suspension is therefore invisible to user code: there is no error to catch by mistake.

mod driver;
mod queue;

use foldhash::{HashMap, HashMapExt, HashSet};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use driver::{
    InvocationOutcome, PANIC_ERROR_TYPE, Stopped, run_invocation, run_invocation_until, run_invocation_with,
    run_invocation_with_plugins,
};
pub(crate) use driver::{panic_message, run_for_replay_check};
pub(crate) use queue::Queue;

use crate::checkpoint::{CheckpointError, Checkpointer, Limits};
use crate::id::Site;
use crate::model::{ErrorObject, Operation, OperationAction, OperationStatus, OperationType, OperationUpdate, SubType};
use crate::plugin::{AttemptEvent, AttemptOutcome, OperationEvent, Plugins};
use crate::replay::{Divergence, Frontier, OperationShape};

/// The error type recorded when replay finds a different operation than the code calls.
pub const NON_DETERMINISTIC_ERROR_TYPE: &str = "NonDeterministicExecutionError";

/// Why an invocation stops early.
#[derive(Debug, Clone)]
pub(crate) enum Abort {
    /// Replay found a recorded operation that does not match the call: FAILED.
    NonDeterministic(ErrorObject),
    /// User code outside a step panicked: FAILED.
    Panic(ErrorObject),
    /// A checkpoint call failed.
    Checkpoint(CheckpointError),
}

/// What a call expects to find recorded at its id.
pub(crate) struct Expect<'a> {
    pub(crate) op_type: OperationType,
    pub(crate) sub_type: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) parent_id: Option<&'a str>,
}

/// Shared state of one invocation.
pub(crate) struct Engine {
    pub(crate) arn: Rc<str>,
    pub(crate) checkpointer: Rc<dyn Checkpointer>,
    pub(crate) limits: Limits,
    /// Recorded operations not visited yet by this invocation's code (a visit takes the
    /// record out: each id is visited once), plus operations the service reported since.
    ops: RefCell<HashMap<Arc<str>, Operation>>,
    /// How many operations recorded when the invocation started are still unvisited, per
    /// parent ("" = root): while non-zero, code in that context is replaying.
    unvisited: RefCell<HashMap<Arc<str>, usize>>,
    visited: RefCell<Visited>,
    /// Contexts that started a new operation in this invocation: no longer replaying.
    live: RefCell<HashSet<Arc<str>>>,
    pub(crate) queue: RefCell<Queue>,
    running: Cell<usize>,
    blocked: Cell<usize>,
    /// Futures waiting for the service to change an operation (a callback's result, an
    /// invoke's outcome): woken whenever a checkpoint response brings new state.
    watchers: RefCell<Vec<std::task::Waker>>,
    abort: RefCell<Option<Abort>>,
    site_keys: RefCell<HashMap<usize, Rc<str>>>,
    /// The handler's plugins.
    pub(crate) plugins: Plugins,
    /// Operations whose end the plugins were told about in this invocation.
    ended: RefCell<HashSet<Arc<str>>>,
    /// The replay tester's mode: replay only, stopping each path at new work.
    pub(crate) replay_check: bool,
    /// Replay tester: the first point where the code went past the history.
    pub(crate) frontier: RefCell<Option<Frontier>>,
    /// The details of a non-deterministic replay.
    pub(crate) divergence: RefCell<Option<Divergence>>,
}

impl Engine {
    pub(crate) fn new(arn: String, token: String, checkpointer: Rc<dyn Checkpointer>, plugins: Plugins) -> Engine {
        let limits = checkpointer.limits();
        Engine {
            arn: Rc::from(arn),
            checkpointer,
            limits,
            ops: RefCell::new(HashMap::new()),
            unvisited: RefCell::new(HashMap::new()),
            visited: RefCell::new(Visited::default()),
            live: RefCell::new(HashSet::default()),
            queue: RefCell::new(Queue::new(token, limits)),
            running: Cell::new(0),
            blocked: Cell::new(0),
            watchers: RefCell::new(Vec::new()),
            abort: RefCell::new(None),
            site_keys: RefCell::new(HashMap::new()),
            plugins,
            ended: RefCell::new(HashSet::default()),
            replay_check: false,
            frontier: RefCell::new(None),
            divergence: RefCell::new(None),
        }
    }

    /// The operations recorded before the invocation that it never visited.
    pub(crate) fn unvisited_operations(&self) -> Vec<Operation> {
        let mut ops: Vec<Operation> =
            self.ops.borrow().values().filter(|o| o.op_type != OperationType::Execution).cloned().collect();
        ops.sort_by(|a, b| a.start_timestamp.cmp(&b.start_timestamp).then_with(|| a.id.cmp(&b.id)));
        ops
    }

    /// Tells the plugins that operation `op` ended, once per invocation.
    pub(crate) fn plugin_operation_end(&self, op: &Operation) {
        if self.plugins.is_empty() || op.op_type == OperationType::Execution || !op.status.is_terminal() {
            return;
        }
        if !self.ended.borrow_mut().insert(op.id.clone()) {
            return;
        }
        let event = OperationEvent {
            execution_arn: &self.arn,
            operation_id: &op.id,
            parent_id: op.parent_id.as_deref(),
            name: op.name.as_deref(),
            op_type: op.op_type,
            sub_type: op.sub_type.as_ref().map(SubType::as_str),
            status: op.status,
        };
        self.plugins.each("operation-end", |p| p.on_operation_end(&event));
    }

    /// Tells the plugins what an acknowledged batch started and ended.
    pub(crate) fn plugin_batch_acked(&self, batch: &[OperationUpdate]) {
        for u in batch {
            if u.op_type == OperationType::Execution {
                continue;
            }
            let status = match u.action {
                OperationAction::Start => OperationStatus::Started,
                OperationAction::Succeed => OperationStatus::Succeeded,
                OperationAction::Fail => OperationStatus::Failed,
                OperationAction::Cancel => OperationStatus::Cancelled,
                OperationAction::Retry => continue,
            };
            let event = OperationEvent {
                execution_arn: &self.arn,
                operation_id: &u.id,
                parent_id: u.parent_id.as_deref(),
                name: u.name.as_deref(),
                op_type: u.op_type,
                sub_type: u.sub_type.as_ref().map(SubType::as_str),
                status,
            };
            if status == OperationStatus::Started {
                self.plugins.each("operation-start", |p| p.on_operation_start(&event));
            } else if self.ended.borrow_mut().insert(u.id.clone()) {
                self.plugins.each("operation-end", |p| p.on_operation_end(&event));
            }
        }
    }

    /// Tells the plugins an attempt starts (`outcome` `None`) or ended.
    pub(crate) fn plugin_attempt(
        &self,
        id: &str,
        parent_id: Option<&str>,
        name: Option<&str>,
        sub_type: &str,
        attempt: u32,
        outcome: Option<Result<(), &ErrorObject>>,
    ) {
        if self.plugins.is_empty() {
            return;
        }
        let event = AttemptEvent {
            execution_arn: &self.arn,
            operation_id: id,
            parent_id,
            name,
            op_type: OperationType::Step,
            sub_type: Some(sub_type),
            attempt,
            outcome: outcome.map(|o| if o.is_ok() { AttemptOutcome::Succeeded } else { AttemptOutcome::Failed }),
            error: outcome.and_then(Result::err),
        };
        if outcome.is_none() {
            self.plugins.each("attempt-start", |p| p.on_attempt_start(&event));
        } else {
            self.plugins.each("attempt-end", |p| p.on_attempt_end(&event));
        }
    }

    /// Adds operations recorded before this invocation (a page of the initial state).
    pub(crate) fn record(&self, ops: Vec<Operation>) {
        let mut map = self.ops.borrow_mut();
        let mut unvisited = self.unvisited.borrow_mut();
        map.reserve(ops.len());
        for op in ops {
            if op.op_type != OperationType::Execution {
                *unvisited.entry(op.parent_id.clone().unwrap_or_else(|| Arc::from(""))).or_default() += 1;
            }
            map.insert(op.id.clone(), op);
        }
    }

    /// The site key of a compile-time site, computed once per invocation.
    pub(crate) fn site_key(&self, site: &'static Site) -> Rc<str> {
        let addr = std::ptr::from_ref(site) as usize;
        self.site_keys.borrow_mut().entry(addr).or_insert_with(|| Rc::from(site.key())).clone()
    }

    /// Runs `f` on the current record of an operation without cloning it.
    pub(crate) fn with_operation<R>(&self, id: &str, f: impl FnOnce(Option<&Operation>) -> R) -> R {
        f(self.ops.borrow().get(id))
    }

    /// Merges operations returned by the service, and wakes whoever watches for changes.
    pub(crate) fn apply_state(&self, ops: Vec<Operation>) {
        if ops.is_empty() {
            return;
        }
        let mut map = self.ops.borrow_mut();
        for op in ops {
            self.plugin_operation_end(&op);
            map.insert(op.id.clone(), op);
        }
        drop(map);
        for w in self.watchers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// A future that resolves with operation `id` once the service reports it finished
    /// (terminal). While it waits it counts as blocked: the invocation may suspend.
    pub(crate) fn watch(self: &Rc<Self>, id: Arc<str>) -> Watch {
        Watch { engine: self.clone(), id, counted: false }
    }

    /// Whether code in the context `parent` is still re-executing recorded history: some
    /// operation recorded under it is not visited yet, and the code has not started a new
    /// operation there (which means it went past the recorded history).
    pub(crate) fn is_replaying(&self, parent: Option<&str>) -> bool {
        let key = parent.unwrap_or("");
        !self.live.borrow().contains(key) && self.unvisited.borrow().get(key).is_some_and(|n| *n > 0)
    }

    /// Whether an operation is recorded (and not visited yet), without visiting it.
    pub(crate) fn is_recorded(&self, id: &str) -> bool {
        self.ops.borrow().contains_key(id)
    }

    /// Looks up the record at `id` and validates it against the call. On a mismatch the
    /// invocation aborts (FAILED, non-deterministic) and this returns `Err(())`: the caller
    /// must then park forever.
    pub(crate) fn visit(
        &self,
        id: &str,
        expect: &Expect<'_>,
        describe: &dyn Fn() -> String,
    ) -> Result<Option<Operation>, ()> {
        if !self.visited.borrow_mut().insert(id) {
            self.fail_nondeterministic(
                id,
                describe(),
                None,
                Some(OperationShape::of_call(expect)),
                format!(
                    "two durable calls produced the same operation id {id} ({}); give the calls distinct names or pin \
                     distinct function names with #[durable(name = ...)]",
                    describe()
                ),
            );
            return Err(());
        }
        let Some(op) = self.ops.borrow_mut().remove(id) else {
            if self.replay_check {
                // The replay tester stops each path where the code goes past the history.
                self.reach_frontier(id, describe());
                return Err(());
            }
            // A new operation: this context has gone past its recorded history.
            self.live.borrow_mut().insert(Arc::from(expect.parent_id.unwrap_or("")));
            return Ok(None);
        };
        if op.op_type != OperationType::Execution
            && let Some(n) = self.unvisited.borrow_mut().get_mut(op.parent_id.as_deref().unwrap_or(""))
        {
            *n = n.saturating_sub(1);
        }
        let rec_sub = op.sub_type.as_ref().map(SubType::as_str);
        let mismatch = op.op_type != expect.op_type
            || rec_sub != Some(expect.sub_type)
            || op.name.as_deref() != expect.name
            || op.parent_id.as_deref() != expect.parent_id;
        if mismatch {
            let recorded = describe_side(op.op_type, rec_sub, op.name.as_deref(), op.parent_id.as_deref());
            let current = describe_side(expect.op_type, Some(expect.sub_type), expect.name, expect.parent_id);
            let message = format!(
                "non-deterministic replay at {} (operation {id}): the history recorded {recorded}, but the code now calls \
                 {current}",
                describe()
            );
            self.fail_nondeterministic(
                id,
                describe(),
                Some(OperationShape::of_record(&op)),
                Some(OperationShape::of_call(expect)),
                message,
            );
            return Err(());
        }
        Ok(Some(op))
    }

    /// Fails the invocation as non-deterministic, keeping the details for the replay
    /// tester.
    pub(crate) fn fail_nondeterministic(
        &self,
        id: &str,
        call_site: String,
        recorded: Option<OperationShape>,
        current: Option<OperationShape>,
        message: String,
    ) {
        if self.abort.borrow().is_none() {
            *self.divergence.borrow_mut() = Some(Divergence {
                operation_id: id.to_owned(),
                call_site,
                recorded,
                current,
                message: message.clone(),
            });
        }
        self.set_abort(Abort::NonDeterministic(ErrorObject::new(NON_DETERMINISTIC_ERROR_TYPE, message)));
    }

    /// Replay tester: a path of the code reached new work at `id`. It stays blocked (the
    /// invocation then ends as suspended, after every other path has gone as far as the
    /// history reaches); the first such point is reported.
    fn reach_frontier(&self, id: &str, call_site: String) {
        self.blocked.set(self.blocked.get() + 1);
        let mut frontier = self.frontier.borrow_mut();
        if frontier.is_none() {
            *frontier = Some(Frontier { operation_id: id.to_owned(), call_site });
        }
    }

    /// Whether a step body (or check) at `id` may run now. Not after an abort, and never
    /// in the replay tester, where running it would be new work: the path stops there.
    pub(crate) fn may_run_body(&self, id: &str, describe: &dyn Fn() -> String) -> bool {
        if self.aborted() {
            return false;
        }
        if self.replay_check {
            self.reach_frontier(id, describe());
            return false;
        }
        true
    }

    pub(crate) fn set_abort(&self, abort: Abort) {
        let mut slot = self.abort.borrow_mut();
        if slot.is_none() {
            *slot = Some(abort);
        }
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.borrow().is_some()
    }

    pub(crate) fn take_abort(&self) -> Option<Abort> {
        self.abort.borrow_mut().take()
    }

    /// Queues an update without waiting for it (it goes out with the next batch).
    pub(crate) fn enqueue(&self, update: OperationUpdate) {
        self.queue.borrow_mut().push(update);
    }

    /// Queues an update and returns a future that resolves once it is acknowledged.
    pub(crate) fn enqueue_sync(self: &Rc<Self>, update: OperationUpdate) -> Acked {
        let target = self.queue.borrow_mut().push(update);
        Acked { engine: self.clone(), target }
    }

    /// Marks user code as doing work the engine cannot see (a step body) while the guard lives.
    pub(crate) fn running(self: &Rc<Self>) -> RunningGuard {
        self.running.set(self.running.get() + 1);
        RunningGuard(self.clone())
    }

    /// A future that never completes: the operation waits for the service.
    pub(crate) fn blocked(self: &Rc<Self>) -> Blocked {
        Blocked { engine: self.clone(), counted: false }
    }

    pub(crate) fn running_count(&self) -> usize {
        self.running.get()
    }

    pub(crate) fn blocked_count(&self) -> usize {
        self.blocked.get()
    }
}

/// The ids visited by this invocation. Ids made by `durable-id-v1` (32 lowercase hex
/// digits) are kept as the 128-bit number they spell, without allocating; others as text.
#[derive(Default)]
struct Visited {
    ids: HashSet<u128>,
    other: HashSet<String>,
}

impl Visited {
    /// Records `id`; `false` if it was visited before.
    fn insert(&mut self, id: &str) -> bool {
        if id.len() == 32
            && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && let Ok(n) = u128::from_str_radix(id, 16)
        {
            self.ids.insert(n)
        } else {
            self.other.insert(id.to_owned())
        }
    }
}

fn describe_side(t: OperationType, sub: Option<&str>, name: Option<&str>, parent: Option<&str>) -> String {
    format!(
        "{t}/{} named {} under {}",
        sub.unwrap_or("-"),
        name.map_or_else(|| "(unnamed)".to_owned(), |n| format!("{n:?}")),
        parent.map_or_else(|| "the root".to_owned(), |p| format!("parent {p}"))
    )
}

/// Resolves once the update it was created for is acknowledged by the checkpointer.
pub(crate) struct Acked {
    engine: Rc<Engine>,
    target: u64,
}

impl Future for Acked {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.engine.aborted() {
            // The driver ends the invocation; this operation never completes.
            return Poll::Pending;
        }
        let mut q = self.engine.queue.borrow_mut();
        if q.acked() >= self.target {
            Poll::Ready(())
        } else {
            q.wait_for(self.target, cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Resolves with an operation once it is terminal. See [`Engine::watch`].
pub(crate) struct Watch {
    engine: Rc<Engine>,
    id: Arc<str>,
    counted: bool,
}

impl Future for Watch {
    type Output = Operation;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Operation> {
        if self.engine.aborted() {
            return Poll::Pending;
        }
        let done = self.engine.with_operation(&self.id, |op| op.filter(|o| o.status.is_terminal()).cloned());
        if let Some(op) = done {
            if self.counted {
                self.counted = false;
                self.engine.blocked.set(self.engine.blocked.get() - 1);
            }
            return Poll::Ready(op);
        }
        if !self.counted {
            self.counted = true;
            self.engine.blocked.set(self.engine.blocked.get() + 1);
        }
        self.engine.watchers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.counted {
            self.engine.blocked.set(self.engine.blocked.get() - 1);
        }
    }
}

/// Counts a running step body.
pub(crate) struct RunningGuard(Rc<Engine>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.set(self.0.running.get() - 1);
    }
}

/// A future that never completes and counts itself as blocked while it is alive.
pub(crate) struct Blocked {
    engine: Rc<Engine>,
    counted: bool,
}

impl Future for Blocked {
    type Output = std::convert::Infallible;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.counted {
            self.counted = true;
            self.engine.blocked.set(self.engine.blocked.get() + 1);
        }
        Poll::Pending
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if self.counted {
            self.engine.blocked.set(self.engine.blocked.get() - 1);
        }
    }
}

/// Parks forever: used after the invocation was aborted.
pub(crate) async fn park<T>() -> T {
    std::future::pending().await
}
