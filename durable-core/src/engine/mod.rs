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
//!
//! Every durable operation goes through one lifecycle (module `lifecycle`): the call is checked
//! against the history (module `history`: its record, and the order of its context), then the
//! operation replays its recorded outcome or does its work and checkpoints it.

mod driver;
mod history;
mod lifecycle;
mod queue;
mod stack;

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
pub(crate) use driver::{panic_message, run_observed};
pub(crate) use history::{CallShape, History, Visit};
pub use history::{Divergence, Frontier, OperationShape};
pub(crate) use lifecycle::{Call, Lifecycle, Next, Outcome, drive, fit_error};
pub(crate) use queue::Queue;
pub(crate) use stack::Deep;

use crate::checkpoint::{CheckpointError, Checkpointer, Limits};
use crate::id::Site;
use crate::model::{ErrorObject, Operation, OperationAction, OperationStatus, OperationType, OperationUpdate, SubType};
use crate::plugin::{AttemptEvent, AttemptOutcome, OperationEvent, Plugins};

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

/// Watches an invocation from outside: the replay tester. With an observer the engine
/// runs in replay-only mode: every path of the code stops where it would do new work
/// (start an operation the history does not have, run a step body), and the observer is
/// told where, and where the code diverged from the history.
pub(crate) trait Observer {
    /// The code diverged from the history (the invocation fails).
    fn diverged(&self, divergence: &Divergence);
    /// A path of the code reached new work and stops there.
    fn reached_frontier(&self, frontier: Frontier);
}

/// A call diverged from the history: the invocation fails; the caller parks.
pub(crate) struct Diverged;

/// Shared state of one invocation.
pub(crate) struct Engine {
    pub(crate) arn: Rc<str>,
    pub(crate) checkpointer: Rc<dyn Checkpointer>,
    pub(crate) limits: Limits,
    /// The recorded operations, the code's progress through them, and what the service
    /// reported since.
    history: RefCell<History>,
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
    /// The replay tester, when it runs the invocation.
    observer: Option<Rc<dyn Observer>>,
}

impl Engine {
    pub(crate) fn new(
        arn: String,
        token: String,
        checkpointer: Rc<dyn Checkpointer>,
        plugins: Plugins,
        observer: Option<Rc<dyn Observer>>,
    ) -> Engine {
        let limits = checkpointer.limits();
        Engine {
            arn: Rc::from(arn),
            checkpointer,
            limits,
            history: RefCell::new(History::default()),
            queue: RefCell::new(Queue::new(token, limits)),
            running: Cell::new(0),
            blocked: Cell::new(0),
            watchers: RefCell::new(Vec::new()),
            abort: RefCell::new(None),
            site_keys: RefCell::new(HashMap::new()),
            plugins,
            ended: RefCell::new(HashSet::default()),
            observer,
        }
    }

    /// The operations recorded before the invocation that it never visited, in contexts
    /// its code entered.
    pub(crate) fn unvisited_operations(&self) -> Vec<Operation> {
        let history = self.history.borrow();
        history.unvisited(|id| history.entered(id))
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

    /// Tells the plugins an attempt of `call` starts (`outcome` `None`) or ended.
    pub(crate) fn plugin_attempt(&self, call: &Call, attempt: u32, outcome: Option<Result<(), &ErrorObject>>) {
        if self.plugins.is_empty() {
            return;
        }
        let event = AttemptEvent {
            execution_arn: &self.arn,
            operation_id: &call.id,
            parent_id: call.parent_id(),
            name: call.name.as_deref(),
            op_type: call.op_type,
            sub_type: Some(&call.sub_type),
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
        self.history.borrow_mut().record(ops);
    }

    /// The site key of a compile-time site, computed once per invocation.
    pub(crate) fn site_key(&self, site: &'static Site) -> Rc<str> {
        let addr = std::ptr::from_ref(site) as usize;
        self.site_keys.borrow_mut().entry(addr).or_insert_with(|| Rc::from(site.key())).clone()
    }

    /// Runs `f` on the current record of an operation without cloning it.
    pub(crate) fn with_operation<R>(&self, id: &str, f: impl FnOnce(Option<&Operation>) -> R) -> R {
        f(self.history.borrow().get(id))
    }

    /// Merges operations returned by the service, and wakes whoever watches for changes.
    pub(crate) fn apply_state(&self, ops: Vec<Operation>) {
        if ops.is_empty() {
            return;
        }
        let mut history = self.history.borrow_mut();
        for op in ops {
            self.plugin_operation_end(&op);
            history.update(op);
        }
        drop(history);
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
        self.history.borrow().is_replaying(parent.unwrap_or(""))
    }

    /// Whether an operation is recorded (and not visited yet), without visiting it.
    pub(crate) fn is_recorded(&self, id: &str) -> bool {
        self.history.borrow().get(id).is_some()
    }

    /// Looks up the record of a call, checking it against the call and the history's
    /// order (see [`History`]): the recorded operation, or `None` for new work. A new
    /// operation in concurrent code waits here until its context's recorded operations
    /// are all met. In the replay tester a path stops (never returns) at new work. On a
    /// divergence the invocation fails and this returns `Err`: the caller must park.
    pub(crate) async fn enter(self: &Rc<Self>, call: &CallShape<'_>) -> Result<Option<Operation>, Diverged> {
        if self.aborted() {
            return Err(Diverged);
        }
        let visit = self.history.borrow_mut().visit(call);
        match visit {
            Ok(Visit::Recorded(op)) => return Ok(Some(op)),
            Ok(Visit::New) => {}
            Ok(Visit::Park) => {
                self.history.borrow_mut().park(call);
                let key: Arc<str> = Arc::from(call.parent_id.unwrap_or(""));
                Parked { engine: self.clone(), key, id: Arc::from(call.id), counted: false }.await;
                if self.aborted() {
                    return Err(Diverged);
                }
            }
            Err(d) => {
                self.diverge(*d);
                return Err(Diverged);
            }
        }
        if let Some(observer) = &self.observer {
            observer.reached_frontier(Frontier { operation_id: call.id.to_owned(), call_site: (call.describe)() });
            match self.blocked().await {}
        }
        Ok(None)
    }

    /// The code returned from context `key` (`""`: the handler returned): its recorded
    /// operations must all have been met. On a divergence the invocation fails.
    pub(crate) fn close_context(&self, key: &str, site: &dyn Fn() -> String) -> Result<(), Diverged> {
        if self.aborted() {
            return Err(Diverged);
        }
        let closed = self.history.borrow().close(key, site);
        closed.map_err(|d| {
            self.diverge(*d);
            Diverged
        })
    }

    /// Fails the invocation as non-deterministic.
    pub(crate) fn diverge(&self, divergence: Divergence) {
        if self.aborted() {
            return;
        }
        if let Some(observer) = &self.observer {
            observer.diverged(&divergence);
        }
        self.set_abort(Abort::NonDeterministic(ErrorObject::new(NON_DETERMINISTIC_ERROR_TYPE, divergence.message)));
    }

    /// A divergence that is not about one operation of the history (a combinator's
    /// recorded decision that does not fit its members).
    pub(crate) fn diverge_at(&self, call: &Call, message: String) {
        self.diverge(Divergence {
            operation_id: call.id.to_string(),
            call_site: call.describe(),
            recorded: None,
            current: None,
            message,
        });
    }

    /// Parked calls that can never go on make the code diverge. Called when the
    /// invocation would otherwise suspend; whether it diverged.
    pub(crate) fn check_stuck(&self) -> bool {
        let stuck = self.history.borrow().stuck();
        match stuck {
            Some(d) => {
                self.diverge(d);
                true
            }
            None => false,
        }
    }

    /// The history, for the operations that excuse, trace and open regions.
    pub(crate) fn history(&self) -> std::cell::RefMut<'_, History> {
        self.history.borrow_mut()
    }

    /// Whether a step body (or check) of `call` may run now. Not after an abort, and
    /// never in the replay tester, where running it would be new work: the path stops
    /// there (the caller parks, counted as blocked).
    pub(crate) fn may_run_body(&self, call: &Call) -> bool {
        if self.aborted() {
            return false;
        }
        if let Some(observer) = &self.observer {
            self.blocked.set(self.blocked.get() + 1);
            observer.reached_frontier(Frontier { operation_id: call.id.to_string(), call_site: call.describe() });
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

/// A new operation of concurrent code waiting for its context's recorded operations to
/// be met (see [`History`]). Counts as blocked while it waits.
struct Parked {
    engine: Rc<Engine>,
    key: Arc<str>,
    id: Arc<str>,
    counted: bool,
}

impl Parked {
    fn uncount(&mut self) {
        if self.counted {
            self.counted = false;
            self.engine.blocked.set(self.engine.blocked.get() - 1);
        }
    }
}

impl Future for Parked {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.engine.aborted() {
            return Poll::Ready(());
        }
        let go = self.engine.history.borrow_mut().may_proceed(&self.key, cx.waker());
        if go {
            self.uncount();
            self.engine.history.borrow_mut().unpark(&self.id);
            return Poll::Ready(());
        }
        if !self.counted {
            self.counted = true;
            self.engine.blocked.set(self.engine.blocked.get() + 1);
        }
        Poll::Pending
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.uncount();
        if let Ok(mut history) = self.engine.history.try_borrow_mut() {
            history.unpark(&self.id);
        }
    }
}

/// Code running concurrently with other code of context `key` (a combinator member, a
/// map item, a parallel branch): while it is polled, its visits of `key` form a region
/// (see [`History`]).
pub(crate) struct Concurrent<F> {
    engine: Rc<Engine>,
    key: Arc<str>,
    complete: bool,
    inner: F,
}

impl<F: Future + Unpin> Concurrent<F> {
    /// `inner`, run as concurrent code of context `key`; `complete` when it replays a
    /// recorded decision, so that every operation it meets must be recorded.
    pub(crate) fn new(engine: &Rc<Engine>, key: Arc<str>, complete: bool, inner: F) -> Self {
        Concurrent { engine: engine.clone(), key, complete, inner }
    }
}

impl<F: Future + Unpin> Future for Concurrent<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _region = Region::open(&this.engine, &this.key, this.complete);
        Pin::new(&mut this.inner).poll(cx)
    }
}

/// Visits of a context being traced (a combinator attributes them to its members); the
/// trace stops on drop, also when the combinator is dropped before it decides.
pub(crate) struct Trace<'a> {
    engine: &'a Engine,
    key: &'a str,
}

impl<'a> Trace<'a> {
    pub(crate) fn start(engine: &'a Engine, key: &'a str) -> Self {
        engine.history.borrow_mut().start_trace(key);
        Trace { engine, key }
    }
}

impl Drop for Trace<'_> {
    fn drop(&mut self) {
        if let Ok(mut history) = self.engine.history.try_borrow_mut() {
            history.stop_trace(self.key);
        }
    }
}

/// An open region of a context; closed on drop (also when the code inside panics).
pub(crate) struct Region<'a> {
    engine: &'a Engine,
    key: &'a str,
}

impl<'a> Region<'a> {
    pub(crate) fn open(engine: &'a Engine, key: &'a str, complete: bool) -> Self {
        engine.history.borrow_mut().enter_region(key, complete);
        Region { engine, key }
    }
}

impl Drop for Region<'_> {
    fn drop(&mut self) {
        if let Ok(mut history) = self.engine.history.try_borrow_mut() {
            history.leave_region(self.key);
        }
    }
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
