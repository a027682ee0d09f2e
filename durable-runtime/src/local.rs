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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use durable_core::clock::{Clock, SystemClock};
use durable_core::engine::{InvocationOutcome, run_invocation};
use durable_core::model::{ErrorObject, ExecutionStatus, Timestamp};
use durable_core::service::{CheckpointService, InvocationEnd, ServiceConfig, ServiceError, StartExecution};
use durable_core::store::{ExecutionRecord, ListQuery, MemoryStore, Store, StoreError};
use durable_core::{Handler, handler::FnHandler};
use serde::Serialize;
use tokio::sync::Notify;

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

    /// The runner. Without a store it journals in memory.
    pub fn build(self) -> LocalRunner {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let service = Arc::new(CheckpointService::with_config(store, self.clock, self.config));
        let wake = Arc::new(Notify::new());
        // Starts and callback completions wake the worker, whoever made them.
        let waker = wake.clone();
        service.on_due(Arc::new(move |_| waker.notify_one()));
        LocalRunner {
            service,
            handlers: Arc::new(self.handlers),
            wake,
            max_concurrency: self.max_concurrency,
            retry_delay: self.retry_delay,
        }
    }
}

/// The local runner. See the [module documentation](self).
///
/// Executions run on the calling thread (their futures need not be `Send`): call the
/// runner's `async` methods from a Tokio runtime; they drive every due execution, not only
/// the one they wait for.
#[derive(Clone)]
pub struct LocalRunner {
    service: Arc<CheckpointService>,
    handlers: Arc<HashMap<String, SharedHandler>>,
    wake: Arc<Notify>,
    max_concurrency: usize,
    retry_delay: Duration,
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

    /// Wakes the worker ([`run_worker`](Self::run_worker)): it looks for due executions and
    /// checks its stop condition now instead of at its next timer. Starts and callback
    /// completions through the service wake it by themselves; call this after changing
    /// something the worker does not see (a stop flag, a store written by another
    /// process).
    pub fn wake(&self) {
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
    #[cfg(feature = "control-plane")]
    pub async fn control_plane(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> Result<crate::control_plane::ControlPlaneServer, RunnerError> {
        let wake = self.wake.clone();
        let server = crate::control_plane::ControlPlane::new(self.service.clone())
            .functions(self.functions())
            .on_change(move || wake.notify_one())
            .bind(addr)
            .await?;
        Ok(server)
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
        self.wake.notify_one();
        Ok(started.arn)
    }

    /// Runs one invocation of `arn` and records how it ended.
    pub async fn invoke(&self, arn: &str) -> Result<InvocationOutcome, RunnerError> {
        let record = self.service.get_record(arn).await?;
        let Some(handler) = self.handlers.get(&*record.function_name) else {
            if record.invoked_by.is_some() {
                // A chained invoke of a function this runner does not host fails, as
                // Lambda's ResourceNotFoundException would, instead of waiting forever.
                let input = self.service.begin_invocation(arn).await?;
                let error = ErrorObject::new(
                    "ResourceNotFoundException",
                    format!("Function not found: {}", record.function_name),
                );
                let out = durable_core::model::DurableExecutionInvocationOutput::failed(Some(error));
                self.service.end_invocation(arn, &input.checkpoint_token, InvocationEnd::Output(out.clone())).await?;
                return Ok(InvocationOutcome::Output(out));
            }
            return Err(RunnerError::UnknownFunction(record.function_name.to_string()));
        };
        let input = self.service.begin_invocation(arn).await?;
        let token = input.checkpoint_token.clone();
        let outcome = run_invocation(handler.as_ref(), input, self.service.checkpointer()).await;
        let end = match &outcome {
            InvocationOutcome::Output(o) => Some(InvocationEnd::Output(o.clone())),
            InvocationOutcome::Retry(m) => Some(InvocationEnd::Crashed {
                error: ErrorObject::new("Invocation.Retry", m.clone()),
                retry_at: self.service.clock().now().plus_millis(self.retry_delay.as_millis() as i64),
            }),
            InvocationOutcome::Revoked(m) => {
                tracing::warn!(arn, reason = %m, "invocation revoked; another invocation owns the execution");
                None
            }
        };
        if let Some(end) = end {
            match self.service.end_invocation(arn, &token, end).await {
                Ok(_) | Err(ServiceError::InvalidToken(_) | ServiceError::NotRunning(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(outcome)
    }

    /// Executions due now, plus (after a restart) those whose invocation was cut short.
    async fn due(&self, limit: usize, include_interrupted: bool) -> Result<Vec<String>, RunnerError> {
        let mut due = self.service.due_executions(limit).await?;
        if include_interrupted {
            let query = ListQuery { statuses: vec![ExecutionStatus::Running], ..ListQuery::default() };
            for r in self.service.store().list_executions(&query).await? {
                if r.invocation_started.is_some() && !due.iter().any(|a| **a == *r.arn) {
                    due.push(r.arn.to_string());
                }
            }
        }
        Ok(due)
    }

    /// When the next execution becomes due, if any is waiting on time.
    async fn next_wake(&self) -> Result<Option<Timestamp>, RunnerError> {
        let far = Timestamp::from_millis(i64::MAX);
        Ok(self.service.store().due_executions(far, 1).await?.first().map(|d| d.wake_at))
    }

    /// Runs the worker until `stop` says so: invokes every due execution (up to the
    /// concurrency limit), sleeps until the next timer or a new start, and repeats. At
    /// startup it picks up executions whose invocation was interrupted by a crash.
    /// `stop` is checked after every invocation and every wake-up.
    pub async fn run_worker(&self, mut stop: impl FnMut() -> bool) -> Result<(), RunnerError> {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let running: Rc<std::cell::RefCell<HashSet<String>>> = Rc::default();
                let unknown: Rc<std::cell::RefCell<HashSet<String>>> = Rc::default();
                let mut first = true;
                loop {
                    if stop() {
                        return Ok(());
                    }
                    let in_flight = running.borrow().len();
                    let free = self.max_concurrency.saturating_sub(in_flight);
                    if free > 0 {
                        for arn in self.due(free + in_flight, first).await? {
                            if running.borrow().contains(&arn) || unknown.borrow().contains(&arn) {
                                continue;
                            }
                            running.borrow_mut().insert(arn.clone());
                            let this = self.clone();
                            let running = running.clone();
                            let unknown = unknown.clone();
                            tokio::task::spawn_local(async move {
                                match this.invoke(&arn).await {
                                    Ok(_) => {}
                                    Err(RunnerError::UnknownFunction(f)) => {
                                        tracing::error!(
                                            arn,
                                            function = f,
                                            "no handler registered; skipping the execution"
                                        );
                                        unknown.borrow_mut().insert(arn.clone());
                                    }
                                    Err(e) => tracing::error!(arn, error = %e, "invocation failed"),
                                }
                                running.borrow_mut().remove(&arn);
                                this.wake.notify_one();
                            });
                        }
                    }
                    first = false;
                    let sleep_for = match self.next_wake().await? {
                        Some(t) => {
                            let now = self.service.clock().now();
                            Duration::from_millis((t.as_millis() - now.as_millis()).clamp(0, 60_000) as u64)
                        }
                        None => Duration::from_mins(1),
                    };
                    if sleep_for.is_zero() && free > 0 && running.borrow().is_empty() {
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
    /// Other due executions run meanwhile too.
    pub async fn run_until_finished(&self, arn: &str) -> Result<ExecutionRecord, RunnerError> {
        let finished = Rc::new(std::cell::Cell::new(false));
        let flag = finished.clone();
        let service = self.service.clone();
        let wake = self.wake.clone();
        let arn_owned = arn.to_owned();
        let watcher = async move {
            loop {
                let r = service.get_record(&arn_owned).await?;
                if r.status.is_terminal() {
                    flag.set(true);
                    wake.notify_one();
                    return Ok::<_, RunnerError>(());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let worker = self.run_worker(|| finished.get());
        let (w, r) = tokio::join!(worker, watcher);
        w?;
        r?;
        Ok(self.service.get_record(arn).await?)
    }

    /// Runs the worker until no execution is due now and none is running: every execution
    /// has finished or waits on a timer or a callback.
    pub async fn run_until_idle(&self) -> Result<(), RunnerError> {
        let mut first = true;
        loop {
            let due = self.due(self.max_concurrency, first).await?;
            first = false;
            let runnable: Vec<_> = {
                let mut v = Vec::new();
                for arn in due {
                    let r = self.service.get_record(&arn).await?;
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

/// Wraps a plain async function as a handler (re-exported for convenience).
pub fn function<F: durable_core::DurableFn<M>, M>(f: F) -> FnHandler<F, M> {
    durable_core::handler(f)
}
