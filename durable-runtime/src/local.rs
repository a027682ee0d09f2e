//! The local runner: hosts durable functions in this process, starts executions, invokes
//! them when they are due (a timer fired, a retry delay passed), and after a restart picks
//! up every execution that was still running.
//!
//! ```no_run
//! use durable_core::{DurableContext, Error, handler};
//! use durable_runtime::LocalRunner;
//!
//! async fn hello(ctx: DurableContext, name: String) -> Result<String, Error> {
//!     ctx.step("greet", async |_| Ok(format!("hello {name}"))).await
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runner = LocalRunner::builder().embedded(".durable")?.register("hello", handler(hello)).build();
//! let arn = runner.start("hello", &"ada", Some("greet-ada")).await?;
//! let done = runner.run_until_finished(&arn).await?;
//! println!("{:?}", done.result);
//! # Ok(()) }
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::clock::{Clock, SystemClock};
use durable_core::invocation::{Handlers, InvokeError, InvokeOptions, Invoked, Ran, Unended, invoke};
use durable_core::model::{ExecutionStatus, Timestamp};
use durable_core::retry::Backoff;
use durable_core::service::{CheckpointService, ServiceConfig, ServiceError, StartExecution};
use durable_core::store::{ExecutionRecord, ListQuery, MemoryStore, Store, StoreError};
use durable_core::{Handler, handler::FnHandler};
use serde::Serialize;
use tokio::sync::Notify;

use crate::health::{Health, StoreBackoff, store_failure};

/// What the runner can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunnerError {
    /// The service refused (unknown execution, idempotency conflict, invalid input, ...).
    Service(ServiceError),
    /// The store could not be opened.
    Store(StoreError),
    /// No handler is registered under this name.
    UnknownFunction(String),
    /// The input could not be serialised.
    Input(String),
    /// The control plane could not listen (address in use, not loopback, ...).
    Io(std::io::Error),
}

impl fmt::Display for RunnerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunnerError::Service(e) => write!(f, "{e}"),
            RunnerError::Store(e) => write!(f, "{e}"),
            RunnerError::UnknownFunction(n) => write!(f, "no durable function is registered as {n:?}"),
            RunnerError::Input(m) => write!(f, "cannot serialise the input: {m}"),
            RunnerError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunnerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunnerError::Service(e) => Some(e),
            RunnerError::Store(e) => Some(e),
            RunnerError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ServiceError> for RunnerError {
    fn from(e: ServiceError) -> Self {
        RunnerError::Service(e)
    }
}

impl From<std::io::Error> for RunnerError {
    fn from(e: std::io::Error) -> Self {
        RunnerError::Io(e)
    }
}

impl From<StoreError> for RunnerError {
    fn from(e: StoreError) -> Self {
        RunnerError::Store(e)
    }
}

type SharedHandler = Arc<dyn Handler + Send + Sync>;

/// Builds a [`LocalRunner`].
pub struct LocalRunnerBuilder {
    store: Option<Arc<dyn Store>>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    handlers: HashMap<String, SharedHandler>,
    max_concurrency: usize,
    retry_delay: Duration,
    store_backoff: Backoff,
}

impl fmt::Debug for LocalRunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRunnerBuilder")
            .field("functions", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalRunnerBuilder {
    /// Journals to the embedded store in folder `dir` (created if missing).
    pub fn embedded(mut self, dir: impl AsRef<Path>) -> Result<Self, RunnerError> {
        let store = durable_core::store::EmbeddedStore::open(dir.as_ref())?;
        self.store = Some(Arc::new(store));
        Ok(self)
    }

    /// Journals to a given store.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Reads time from `clock` (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Service settings.
    pub fn config(mut self, config: ServiceConfig) -> Self {
        self.config = config;
        self
    }

    /// Registers a durable function under `name` (what executions are started with).
    pub fn register(mut self, name: impl Into<String>, handler: impl Handler + Send + Sync) -> Self {
        self.handlers.insert(name.into(), Arc::new(handler));
        self
    }

    /// How many executions may run at once (default 256).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// How long to wait before retrying an invocation that failed transiently (default 1 s).
    pub fn retry_delay(mut self, d: Duration) -> Self {
        self.retry_delay = d;
        self
    }

    /// How the worker backs off while the store fails (default: 100 ms doubling to 30 s,
    /// half jitter). The delays are [`Backoff::delay_after`] of the back-off's attempt
    /// count; the strategy's attempt limit and error filters do not apply: the worker
    /// tries again until the store works. See [`LocalRunner::health`].
    pub fn store_backoff(mut self, backoff: Backoff) -> Self {
        self.store_backoff = backoff;
        self
    }

    /// The runner. Without a store it journals in memory.
    pub fn build(self) -> LocalRunner {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let service = Arc::new(CheckpointService::with_config(store, self.clock, self.config));
        let wake = Arc::new(Notify::new());
        let ready: Arc<Mutex<Vec<String>>> = Arc::default();
        // Starts and callback completions hand the worker the execution they made due,
        // whoever made them: it runs it without reading the store to find it.
        let (waker, queue) = (wake.clone(), ready.clone());
        service.on_due(Arc::new(move |arn| {
            queue.lock().expect("ready lock").push(arn.to_owned());
            waker.notify_one();
        }));
        let ended = Arc::new(Notify::new());
        let ends = ended.clone();
        service.on_end(Arc::new(move |_| ends.notify_waiters()));
        LocalRunner {
            service,
            handlers: Arc::new(self.handlers),
            wake,
            rescan: Arc::default(),
            ready,
            ended,
            unknown: Arc::default(),
            max_concurrency: self.max_concurrency,
            retry_delay: self.retry_delay,
            backoff: StoreBackoff::new(self.store_backoff),
        }
    }
}

/// The local runner. See the [module documentation](self).
///
/// Executions run on the calling thread (their futures need not be `Send`): call the
/// runner's `async` methods from a Tokio runtime; they drive every due execution, not only
/// the one they wait for.
///
/// When the store fails (a full disk), the worker does not retry at once: it backs off
/// ([`LocalRunnerBuilder::store_backoff`]), logs once per back-off, reports the outage in
/// [`health`](Self::health), and carries on at the first success.
#[derive(Clone)]
pub struct LocalRunner {
    service: Arc<CheckpointService>,
    handlers: Arc<HashMap<String, SharedHandler>>,
    /// Wakes the worker: something may be due.
    wake: Arc<Notify>,
    /// Set by [`LocalRunner::wake`]: the worker reads the store for due work at its next
    /// pass (a change it could not hear of, such as another process's).
    rescan: Arc<AtomicBool>,
    /// Executions the service announced due (starts, completed callbacks) or that an
    /// invocation left due at once: the worker runs them without looking them up.
    ready: Arc<Mutex<Vec<String>>>,
    /// Told when an execution ends through the service: `run_until_finished` waits on it.
    ended: Arc<Notify>,
    /// Executions of functions no handler is registered for (each logged once).
    unknown: Arc<Mutex<HashSet<String>>>,
    max_concurrency: usize,
    retry_delay: Duration,
    backoff: StoreBackoff,
}

impl fmt::Debug for LocalRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRunner")
            .field("functions", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalRunner {
    /// A builder.
    pub fn builder() -> LocalRunnerBuilder {
        LocalRunnerBuilder {
            store: None,
            clock: Arc::new(SystemClock),
            config: ServiceConfig::default(),
            handlers: HashMap::new(),
            max_concurrency: 256,
            retry_delay: Duration::from_secs(1),
            store_backoff: crate::health::default_policy(),
        }
    }

    /// The checkpoint service (for inspection: records, operations, history).
    pub fn service(&self) -> &Arc<CheckpointService> {
        &self.service
    }

    /// The names of the registered functions.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// Whether the store works, as the runner last saw it: [`Health::Unhealthy`] from a
    /// store error (one that says the store failed, not a lost race or an unknown
    /// execution; in process, an invocation retried because a checkpoint failed counts)
    /// until the next invocation that runs without one, or the next look for due work that
    /// finds none to retry. Meanwhile the worker backs off. The control plane answers
    /// `GET /health` from it.
    pub fn health(&self) -> Health {
        self.backoff.health()
    }

    /// Records `e` in the health if it is a store failure.
    fn note(&self, e: &RunnerError) {
        if let Some(failure) = store_failure(e) {
            self.backoff.failed(failure, self.service.clock().now());
        }
    }

    /// Wakes the worker ([`run_worker`](Self::run_worker)): it looks for due executions and
    /// checks its stop condition now instead of at its next timer. Starts and callback
    /// completions through the service wake it by themselves; call this after changing
    /// something the worker does not see (a stop flag, a store written by another
    /// process).
    pub fn wake(&self) {
        self.rescan.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Serves the AWS control-plane routes for this runner on `addr` (a loopback address;
    /// port 0 picks a free port): other processes (the `durable` CLI, aws-sdk clients,
    /// the AWS CLI, boto3) can then start executions of the registered functions, read
    /// executions and histories, complete callbacks and stop executions. Starts and
    /// callback completions wake the worker, which must run too
    /// ([`run_worker`](Self::run_worker) or [`run_until_finished`](Self::run_until_finished)).
    /// The server runs on the current Tokio runtime until the returned handle is dropped or
    /// shut down. See [`crate::control_plane`].
    ///
    /// `GET /health` answers 503 while the store fails ([`health`](Self::health)). For
    /// other timeouts than the defaults, bind [`ControlPlane::for_runner`] instead.
    ///
    /// [`ControlPlane::for_runner`]: crate::control_plane::ControlPlane::for_runner
    #[cfg(feature = "control-plane")]
    pub async fn control_plane(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> Result<crate::control_plane::ControlPlaneServer, RunnerError> {
        Ok(crate::control_plane::ControlPlane::for_runner(self).bind(addr).await?)
    }

    /// Starts an execution of `function` with `input`. With a `name` the start is
    /// idempotent: the same name and input return the existing execution; the same name
    /// with another input is an error (`DurableExecutionAlreadyStartedException`).
    pub async fn start(
        &self,
        function: &str,
        input: &impl Serialize,
        name: Option<&str>,
    ) -> Result<String, RunnerError> {
        if !self.handlers.contains_key(function) {
            return Err(RunnerError::UnknownFunction(function.to_owned()));
        }
        let input = serde_json::to_string(input).map_err(|e| RunnerError::Input(e.to_string()))?;
        let started = self
            .service
            .start_execution(StartExecution {
                function_name: function.to_owned(),
                name: name.map(str::to_owned),
                input: Some(input),
                ..StartExecution::default()
            })
            .await?;
        Ok(started.arn)
    }

    /// Runs one invocation of `arn` and records how it ended. A store failure on the way
    /// (or a retry because a checkpoint failed) is reported in [`health`](Self::health); an
    /// invocation without one ends the outage.
    pub async fn invoke(&self, arn: &str) -> Result<Ran, RunnerError> {
        self.invoke_recorded(arn).await.map(|invoked| invoked.ran)
    }

    /// [`invoke`](Self::invoke), with the execution's record after the end.
    async fn invoke_recorded(&self, arn: &str) -> Result<Invoked, RunnerError> {
        let result = self.invoke_once(arn).await;
        match &result {
            // In process, a checkpoint is retried only when the store failed: the service's
            // other refusals fail the execution or revoke the token (and the state pages
            // it is asked for are its own).
            Ok(Invoked { ran: Ran::Retry(m), .. }) => self.backoff.failed(m, self.service.clock().now()),
            Ok(_) => self.backoff.succeeded(),
            Err(RunnerError::UnknownFunction(function)) => {
                if self.unknown.lock().expect("unknown lock").insert(arn.to_owned()) {
                    tracing::error!(arn, function, "no handler registered; skipping the execution");
                }
                // A caller waiting for it learns that it will not run here.
                self.ended.notify_waiters();
            }
            Err(e) => self.note(e),
        }
        result
    }

    async fn invoke_once(&self, arn: &str) -> Result<Invoked, RunnerError> {
        let record = self.service.get_record(arn).await?;
        let host = Handlers(|r: &ExecutionRecord| self.handlers.get(&*r.function_name).map(|h| &**h as &dyn Handler));
        let options = InvokeOptions { lease: None, retry_delay: self.retry_delay };
        match invoke(&self.service, &host, &record, options).await {
            Ok(invoked) => Ok(invoked),
            Err(InvokeError::NotHosted(function)) => Err(RunnerError::UnknownFunction(function)),
            Err(InvokeError::Service(e)) => Err(e.into()),
            Err(InvokeError::Unended(unended, error)) => self.record_end(&unended, error.into()).await,
        }
    }

    /// Records the end of an invocation that ran but whose end the store refused, backing
    /// off while it fails: until then the execution is neither due nor finished, and only
    /// this task knows how the invocation ended.
    async fn record_end(&self, unended: &Unended, mut error: RunnerError) -> Result<Invoked, RunnerError> {
        loop {
            if store_failure(&error).is_none() {
                return Err(error);
            }
            self.note(&error);
            if let Some(until) = self.backoff.until() {
                tokio::time::sleep_until(until).await;
            }
            match unended.record(&self.service).await {
                Ok(ended) => return Ok(Invoked { ran: unended.ran.clone(), ended }),
                Err(e) => error = e.into(),
            }
        }
    }

    /// The executions due now (at most `limit`), plus (after a restart, or while the store
    /// fails) those whose invocation was cut short; and when the next one not due yet
    /// becomes due. One read of the due index serves both.
    async fn due(&self, limit: usize, include_interrupted: bool) -> Result<Due, RunnerError> {
        let now = self.service.clock().now();
        let mut due = Due::default();
        for d in self.service.due_at(Timestamp::from_millis(i64::MAX), limit).await? {
            if d.wake_at.as_millis() <= now.as_millis() {
                due.now.push(d.arn);
            } else {
                due.next = Some(d.wake_at);
                break;
            }
        }
        if due.now.len() >= limit {
            // More may be due than were read: look again as soon as there is room.
            due.next = Some(now);
        }
        if include_interrupted {
            let query = ListQuery { statuses: vec![ExecutionStatus::Running], ..ListQuery::default() };
            for r in self.service.store().list_executions(&query).await? {
                if r.invocation_started.is_some() && !due.now.iter().any(|a| **a == *r.arn) {
                    due.now.push(r.arn.to_string());
                }
            }
        }
        Ok(due)
    }

    /// Runs the worker until `stop` says so: invokes every due execution (up to the
    /// concurrency limit), sleeps until the next timer or a new start, and repeats. At
    /// startup it picks up executions whose invocation was interrupted by a crash.
    /// `stop` is checked after every invocation and every wake-up; an invocation in
    /// progress when it says so is dropped, as if the process stopped there.
    ///
    /// The worker reads the store for due work only when it has reason to: at startup,
    /// when the earliest wake-up it knows of comes, after [`wake`](Self::wake), and at
    /// least once a minute (a change made by another process). Executions this process
    /// makes due (a start, a completed callback, an invocation that must go on at once)
    /// are handed to it directly. An idle worker sleeps until its next known wake-up.
    ///
    /// A store failure does not end the worker, and does not stop the invocations in
    /// progress: it backs off ([`LocalRunnerBuilder::store_backoff`]) and tries again,
    /// reporting the outage in [`health`](Self::health); an invocation whose end could not
    /// be recorded records it once the store works. While the store fails, each attempt
    /// also picks up executions whose invocation could not record its end, so none is
    /// left behind. Other errors end it.
    pub async fn run_worker(&self, mut stop: impl FnMut() -> bool) -> Result<(), RunnerError> {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let running: Rc<RefCell<HashSet<String>>> = Rc::default();
                // Wake-ups learned from invocations that ended (not due at once).
                let learned: Rc<Cell<Option<Timestamp>>> = Rc::default();
                let mut next: Option<Timestamp> = None;
                let mut last_read: Option<tokio::time::Instant> = None;
                let mut first = true;
                loop {
                    if stop() {
                        return Ok(());
                    }
                    if let Some(until) = self.backoff.until() {
                        // Nothing is tried before the back-off ends; a wake-up (a stop, a
                        // start) only checks `stop` again.
                        tokio::select! {
                            () = self.wake.notified() => {}
                            () = tokio::time::sleep_until(until) => {}
                        }
                        continue;
                    }
                    let now = self.service.clock().now();
                    next = earliest(next, learned.take());
                    let in_flight = running.borrow().len();
                    let free = self.max_concurrency.saturating_sub(in_flight);
                    let mut due = std::mem::take(&mut *self.ready.lock().expect("ready lock"));
                    let failing = self.backoff.is_failing();
                    let read = first
                        || failing
                        || self.rescan.swap(false, Ordering::SeqCst)
                        || next.is_some_and(|t| t.as_millis() <= now.as_millis())
                        || last_read.is_none_or(|at| at.elapsed() >= IDLE_RESCAN);
                    if read && free > 0 {
                        // An invocation whose end could not be recorded is neither due nor
                        // running: look for such executions while the store fails.
                        match self.due(free + in_flight, first || failing).await {
                            Ok(found) => {
                                due.extend(found.now);
                                next = found.next;
                                last_read = Some(tokio::time::Instant::now());
                            }
                            Err(e) if store_failure(&e).is_some() => {
                                self.note(&e);
                                self.ready.lock().expect("ready lock").extend(due);
                                continue;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    let mut started = 0;
                    let mut left = Vec::new();
                    for arn in due {
                        if running.borrow().contains(&arn) || self.unknown.lock().expect("unknown lock").contains(&arn)
                        {
                            continue;
                        }
                        if running.borrow().len() >= self.max_concurrency {
                            left.push(arn);
                            continue;
                        }
                        started += 1;
                        running.borrow_mut().insert(arn.clone());
                        let (this, running, learned) = (self.clone(), running.clone(), learned.clone());
                        tokio::task::spawn_local(async move {
                            match this.invoke_recorded(&arn).await {
                                Ok(Invoked { ended: Some(record), .. }) => match record.wake_at {
                                    Some(t) if t.as_millis() <= this.service.clock().now().as_millis() => {
                                        this.ready.lock().expect("ready lock").push(arn.clone());
                                    }
                                    Some(t) => learned.set(earliest(learned.get(), Some(t))),
                                    None => {}
                                },
                                Ok(_) | Err(RunnerError::UnknownFunction(_)) => {}
                                // Logged once per back-off by the health instead.
                                Err(e) if store_failure(&e).is_some() => {}
                                Err(e) => tracing::error!(arn, error = %e, "invocation failed"),
                            }
                            running.borrow_mut().remove(&arn);
                            this.wake.notify_one();
                        });
                    }
                    // Due but over the concurrency limit: next time there is room.
                    self.ready.lock().expect("ready lock").extend(left);
                    if failing && read && started == 0 {
                        // The store answered and nothing is left to retry.
                        self.backoff.succeeded();
                    }
                    first = false;
                    let sleep_for = match next {
                        Some(t) => {
                            let now = self.service.clock().now();
                            Duration::from_millis(u64::try_from(t.as_millis() - now.as_millis()).unwrap_or(0))
                                .min(IDLE_RESCAN)
                        }
                        None => IDLE_RESCAN,
                    };
                    if sleep_for.is_zero()
                        && running.borrow().is_empty()
                        && self.ready.lock().expect("ready lock").is_empty()
                    {
                        // Due but nothing could be started (unknown functions): do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(sleep_for.max(Duration::from_millis(1))) => {}
                    }
                }
            })
            .await
    }

    /// Runs the worker until execution `arn` finishes, then returns its record.
    /// Other due executions run meanwhile too. Like [`run_worker`](Self::run_worker), it
    /// waits out a failing store.
    ///
    /// It learns of the end from the service (no polling while this process runs the
    /// execution); a change made by another process is seen within a second.
    ///
    /// # Errors
    ///
    /// The worker's error if it stops, `UnknownFunction` if no handler here runs the
    /// execution, or the store's error when the execution cannot be read (for a reason
    /// other than a failing store).
    pub async fn run_until_finished(&self, arn: &str) -> Result<ExecutionRecord, RunnerError> {
        let finished = Cell::new(false);
        let watcher = async {
            loop {
                let ended = self.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                match self.service.get_record(arn).await.map_err(RunnerError::from) {
                    Ok(r) if r.status.is_terminal() => return Ok(r),
                    Ok(r) if self.unknown.lock().expect("unknown lock").contains(arn) => {
                        return Err(RunnerError::UnknownFunction(r.function_name.to_string()));
                    }
                    Ok(_) => {}
                    Err(e) if store_failure(&e).is_some() => self.note(&e),
                    Err(e) => return Err(e),
                }
                let poll = tokio::time::Instant::now() + WATCH_POLL;
                let at = self.backoff.until().map_or(poll, |until| until.max(poll));
                tokio::select! {
                    () = ended => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
        };
        let worker = self.run_worker(|| finished.get());
        tokio::pin!(worker, watcher);
        let outcome = tokio::select! {
            outcome = &mut watcher => outcome,
            stopped = &mut worker => {
                // The worker ends only on an error it cannot wait out.
                stopped?;
                return Ok(self.service.get_record(arn).await?);
            }
        };
        finished.set(true);
        self.wake.notify_one();
        worker.await?;
        outcome
    }

    /// Runs the worker until no execution is due now and none is running: every execution
    /// has finished or waits on a timer or a callback.
    ///
    /// It does not wait out a failing store: it returns the first store error (which
    /// [`health`](Self::health) reports too), since its caller asked for a run that ends.
    pub async fn run_until_idle(&self) -> Result<(), RunnerError> {
        let mut first = true;
        loop {
            let mut due = self.due(self.max_concurrency, first).await.inspect_err(|e| self.note(e))?.now;
            for arn in std::mem::take(&mut *self.ready.lock().expect("ready lock")) {
                if !due.contains(&arn) {
                    due.push(arn);
                }
            }
            first = false;
            let runnable: Vec<_> = {
                let mut v = Vec::new();
                for arn in due {
                    let r =
                        self.service.get_record(&arn).await.map_err(RunnerError::from).inspect_err(|e| self.note(e))?;
                    if self.handlers.contains_key(&*r.function_name) || r.invoked_by.is_some() {
                        v.push(arn);
                    }
                }
                v
            };
            if runnable.is_empty() {
                return Ok(());
            }
            let local = tokio::task::LocalSet::new();
            let results = local.run_until(futures::future::join_all(runnable.iter().map(|arn| self.invoke(arn)))).await;
            for r in results {
                r?;
            }
        }
    }
}

/// The worker reads the store for due work at least this often, for changes it cannot
/// hear of (another process's).
const IDLE_RESCAN: Duration = Duration::from_mins(1);

/// `run_until_finished` reads the execution at least this often, for an end it cannot
/// hear of (another process's).
const WATCH_POLL: Duration = Duration::from_secs(1);

/// What the worker's look at the due index found.
#[derive(Default)]
struct Due {
    /// Due now.
    now: Vec<String>,
    /// When the next execution becomes due, if any waits on time.
    next: Option<Timestamp>,
}

/// The earlier of two optional times.
fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    a.into_iter().chain(b).min()
}

/// Wraps a plain async function as a handler (re-exported for convenience).
pub fn function<F: durable_core::DurableFn<M>, M>(f: F) -> FnHandler<F, M> {
    durable_core::handler(f)
}
