//! A test runner with time skipping: runs a durable function through as many invocations
//! as it takes, in process, on an in-memory store and a manual clock. A one-hour wait
//! finishes at once while the history keeps the modelled duration.
//!
//! ```
//! use std::time::Duration;
//! use durable_core::{DurableContext, Error, testing::TestRunner};
//!
//! async fn greet(ctx: DurableContext, name: String) -> Result<String, Error> {
//!     let greeting = ctx.step("greet", async |_| Ok(format!("hello {name}"))).await?;
//!     ctx.wait("nap", Duration::from_hours(1)).await?;
//!     Ok(greeting)
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let runner = TestRunner::new();
//! let run = runner.run(greet, "ada").await;
//! assert_eq!(run.result::<String>().unwrap(), "hello ada");
//! assert_eq!(run.invocations(), 2);
//! # });
//! ```
//!
//! Time skipping reaches every timer, a callback's timeout included: `run` (and `drive`) of a
//! function waiting for a callback with a timeout ends with that timeout. To answer the
//! callback first, start the execution and [`settle`](TestRunner::settle) it, which runs
//! what is due without moving the clock:
//!
//! ```
//! use std::time::Duration;
//! use durable_core::{DurableContext, Error, handler, model::ExecutionStatus, testing::TestRunner};
//!
//! async fn approve(ctx: DurableContext) -> Result<String, Error> {
//!     ctx.wait_for_callback::<String>("manager", async |_id: String, _| Ok(()))
//!         .timeout(Duration::from_hours(24))
//!         .await
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let runner = TestRunner::new();
//! let arn = runner.start("approve", None, Some("null".into())).await.unwrap();
//! let run = runner.settle(&handler(approve), &arn).await;
//! assert_eq!(run.status(), ExecutionStatus::Running);
//! let id = runner.callback_ids(&arn).await.remove(0);
//! runner.callback_success(&id, "\"yes\"").await.unwrap();
//! let run = runner.settle(&handler(approve), &arn).await;
//! assert_eq!(run.result::<String>().unwrap(), "yes");
//! # });
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::Limits;
use crate::clock::ManualClock;
use crate::error::Error;
use crate::handler::{DurableFn, Handler, handler};
use crate::invocation::{Handlers, InvokeOptions, Ran, invoke};
use crate::model::{ErrorObject, Event, EventType, ExecutionStatus, Operation, Timestamp};
use crate::service::{CheckpointService, ServiceConfig, ServiceError, StartExecution};
use crate::store::{ExecutionRecord, MemoryStore, Store};

/// Runs durable functions in process with time skipping. See the [module documentation](self).
pub struct TestRunner {
    service: Arc<CheckpointService>,
    clock: ManualClock,
    max_invocations: u64,
    targets: RefCell<HashMap<String, Rc<dyn Handler>>>,
}

impl Default for TestRunner {
    fn default() -> Self {
        TestRunner::new()
    }
}

/// Where test clocks start: 2026-01-01T00:00:00Z.
pub const TEST_EPOCH: Timestamp = Timestamp::from_millis(1_767_225_600_000);

impl TestRunner {
    /// A runner on a fresh in-memory store, with the clock at [`TEST_EPOCH`].
    pub fn new() -> Self {
        TestRunner::with_store(Arc::new(MemoryStore::new()), ServiceConfig::default())
    }

    /// A runner whose service enforces AWS's limits ([`Limits::AWS`]: 256 KiB per operation
    /// payload, 6 MiB execution results, ...), to test what a function does against the
    /// managed service.
    pub fn with_aws_limits() -> Self {
        TestRunner::with_store(
            Arc::new(MemoryStore::new()),
            ServiceConfig { limits: Limits::AWS, ..ServiceConfig::default() },
        )
    }

    /// A runner over a given store and settings.
    pub fn with_store(store: Arc<dyn Store>, config: ServiceConfig) -> Self {
        let clock = ManualClock::new(TEST_EPOCH);
        let service = Arc::new(CheckpointService::with_config(store, Arc::new(clock.clone()), config));
        TestRunner { service, clock, max_invocations: 10_000, targets: RefCell::new(HashMap::new()) }
    }

    /// The service the runner drives.
    pub fn service(&self) -> &Arc<CheckpointService> {
        &self.service
    }

    /// The runner's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Registers a function under `name`: the target of chained invokes of that name.
    pub fn register(&self, name: impl Into<String>, handler: impl Handler) -> &Self {
        self.targets.borrow_mut().insert(name.into(), Rc::new(handler));
        self
    }

    /// Completes a callback with a result (JSON text), as `SendDurableExecutionCallbackSuccess` does.
    pub async fn callback_success(&self, callback_id: &str, result_json: &str) -> Result<(), ServiceError> {
        self.service.callback_success(callback_id, Some(result_json.to_owned())).await
    }

    /// Fails a callback, as `SendDurableExecutionCallbackFailure` does.
    pub async fn callback_failure(&self, callback_id: &str, error: ErrorObject) -> Result<(), ServiceError> {
        self.service.callback_failure(callback_id, error).await
    }

    /// Sends a callback heartbeat, as `SendDurableExecutionCallbackHeartbeat` does.
    pub async fn callback_heartbeat(&self, callback_id: &str) -> Result<(), ServiceError> {
        self.service.callback_heartbeat(callback_id).await
    }

    /// The ids of the callbacks an execution created, in order.
    pub async fn callback_ids(&self, arn: &str) -> Vec<String> {
        self.service
            .operations(arn)
            .await
            .expect("operations")
            .iter()
            .filter_map(|o| o.callback_details.as_ref().and_then(|d| d.callback_id.clone()))
            .collect()
    }

    /// Caps the invocations of one run (default 10,000), so a function that never finishes
    /// fails the test instead of hanging it.
    pub fn max_invocations(mut self, n: u64) -> Self {
        self.max_invocations = n;
        self
    }

    /// Starts `f` with `input` and runs it to the end (or until it waits on something
    /// only the outside world can complete).
    pub async fn run<F, M>(&self, f: F, input: impl Serialize) -> TestExecution
    where
        F: DurableFn<M>,
        M: 'static,
    {
        self.run_handler(&handler(f), &serde_json::to_string(&input).expect("input serialises")).await
    }

    /// Starts a handler with an input given as JSON text and runs it.
    pub async fn run_handler(&self, handler: &dyn Handler, input_json: &str) -> TestExecution {
        let arn = self.start("test", None, Some(input_json.to_owned())).await.expect("start");
        self.drive(handler, &arn).await
    }

    /// Starts an execution without running it.
    pub async fn start(
        &self,
        function: &str,
        name: Option<&str>,
        input: Option<String>,
    ) -> Result<String, ServiceError> {
        let started = self
            .service
            .start_execution(StartExecution {
                function_name: function.to_owned(),
                name: name.map(str::to_owned),
                input,
                ..StartExecution::default()
            })
            .await?;
        Ok(started.arn)
    }

    /// Runs one invocation of an execution with `handler` and records its end.
    ///
    /// # Panics
    ///
    /// If the invocation cannot begin (the execution ended, or does not exist) or its end
    /// cannot be recorded.
    pub async fn invoke_once(&self, handler: &dyn Handler, arn: &str) -> Ran {
        self.invoke_with(Some(handler), arn).await
    }

    /// One invocation with `handler`, or without one (the target of a chained invoke)
    /// with the handler registered under the execution's function name.
    async fn invoke_with(&self, handler: Option<&dyn Handler>, arn: &str) -> Ran {
        let record = self.service.get_record(arn).await.expect("record");
        let target = self.targets.borrow().get(&*record.function_name).cloned();
        let handler = handler.or(target.as_deref());
        let options = InvokeOptions { lease: None, retry_delay: Duration::from_secs(1) };
        invoke(&self.service, &Handlers(|_: &ExecutionRecord| handler), &record, options)
            .await
            .expect("the invocation begins and ends")
            .ran
    }

    fn clock_now(&self) -> Timestamp {
        crate::clock::Clock::now(&self.clock)
    }

    /// Drives an execution, and the executions its chained invokes start, through
    /// invocations, skipping time to each wake-up, until it ends or waits on nothing the
    /// clock can bring (a callback).
    pub async fn drive(&self, handler: &dyn Handler, arn: &str) -> TestExecution {
        self.run_family(handler, arn, true).await
    }

    /// Runs the invocations that are due now, without moving the clock: the execution (and
    /// the executions its chained invokes start) runs until it ends or waits (on a timer,
    /// a retry, a callback). Use it to complete a callback before its timeout.
    pub async fn settle(&self, handler: &dyn Handler, arn: &str) -> TestExecution {
        self.run_family(handler, arn, false).await
    }

    /// Invokes what is due in `arn`'s family until nothing is; with `skip_time`, moves the
    /// clock to the family's next wake-up whenever nothing is due now.
    async fn run_family(&self, handler: &dyn Handler, arn: &str, skip_time: bool) -> TestExecution {
        let mut invocations = 0;
        loop {
            let root = self.service.get_record(arn).await.expect("record");
            if root.status.is_terminal() {
                break;
            }
            // The root may have been abandoned mid-invocation (a simulated crash).
            let mut due: Vec<String> = Vec::new();
            if root.invocation == 0 || root.invocation_started.is_some() {
                due.push(arn.to_owned());
            }
            for d in self.service.store().due_executions(self.clock_now(), usize::MAX).await.expect("due") {
                if !due.contains(&d.arn) && self.in_family(&d.arn, arn).await {
                    due.push(d.arn);
                }
            }
            if due.is_empty() {
                if !skip_time {
                    break;
                }
                let far = Timestamp::from_millis(i64::MAX);
                let mut next = None;
                for d in self.service.store().due_executions(far, usize::MAX).await.expect("due") {
                    if self.in_family(&d.arn, arn).await {
                        next = Some(d.wake_at);
                        break;
                    }
                }
                match next {
                    Some(t) => {
                        self.clock.set(t);
                        continue;
                    }
                    None => break,
                }
            }
            for target in due {
                assert!(
                    invocations < self.max_invocations,
                    "the execution did not finish within {} invocations",
                    self.max_invocations
                );
                invocations += 1;
                if target == arn {
                    self.invoke_once(handler, &target).await;
                } else {
                    self.invoke_with(None, &target).await;
                }
            }
        }
        self.inspect(arn).await
    }

    /// Whether `arn` is `root` or was started by a chained invoke of its family.
    async fn in_family(&self, arn: &str, root: &str) -> bool {
        let mut current = arn.to_owned();
        for _ in 0..64 {
            if current == root {
                return true;
            }
            let Ok(r) = self.service.get_record(&current).await else { return false };
            match r.invoked_by {
                Some(p) => current = p.arn.to_string(),
                None => return false,
            }
        }
        false
    }

    /// Skips the clock forward.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// A snapshot of an execution: record, operations and history.
    pub async fn inspect(&self, arn: &str) -> TestExecution {
        TestExecution {
            record: self.service.get_record(arn).await.expect("record"),
            operations: self.service.operations(arn).await.expect("operations"),
            history: self.service.full_history(arn).await.expect("history"),
        }
    }
}

/// A finished (or waiting) execution, for assertions.
#[derive(Debug, Clone)]
pub struct TestExecution {
    /// The execution record.
    pub record: ExecutionRecord,
    /// Its operations in creation order.
    pub operations: Vec<Operation>,
    /// Its history.
    pub history: Vec<Event>,
}

impl TestExecution {
    /// The ARN.
    pub fn arn(&self) -> &str {
        &self.record.arn
    }

    /// The status.
    pub fn status(&self) -> ExecutionStatus {
        self.record.status
    }

    /// The result, deserialised; the execution's error if it did not succeed.
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match self.record.status {
            ExecutionStatus::Succeeded => serde_json::from_str(self.record.result.as_deref().unwrap_or("null"))
                .map_err(|e| Error::new("TestResultType", format!("the result does not deserialise: {e}"))),
            ExecutionStatus::Running => Err(Error::new("NotFinished", "the execution is still running")),
            _ => Err(Error::from(self.record.error.clone().unwrap_or_default())),
        }
    }

    /// The error of a failed execution.
    pub fn error(&self) -> Option<&ErrorObject> {
        self.record.error.as_ref()
    }

    /// The number of invocations.
    pub fn invocations(&self) -> u64 {
        self.record.invocation
    }

    /// The operations named `name`.
    pub fn operations_named(&self, name: &str) -> Vec<&Operation> {
        self.operations.iter().filter(|o| o.name.as_deref() == Some(name)).collect()
    }

    /// The first operation named `name`.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.name.as_deref() == Some(name))
    }

    /// The event types of the history, in order.
    pub fn event_types(&self) -> Vec<EventType> {
        self.history.iter().map(|e| e.event_type).collect()
    }

    /// The history as `GetDurableExecutionHistory` JSON.
    pub fn history_json(&self) -> serde_json::Value {
        serde_json::json!({ "Events": self.history })
    }

    /// Checks the invariants every history must hold: event ids 1, 2, 3, ... with no gap;
    /// `ExecutionStarted` first; at most one terminal execution event, and only last.
    pub fn assert_well_formed(&self) {
        for (i, e) in self.history.iter().enumerate() {
            assert_eq!(e.event_id, i as u64 + 1, "event ids are consecutive from 1");
        }
        assert_eq!(self.history.first().map(|e| e.event_type), Some(EventType::ExecutionStarted));
        let terminal: Vec<_> = self.history.iter().filter(|e| e.event_type.is_execution_terminal()).collect();
        assert!(terminal.len() <= 1, "at most one terminal execution event: {terminal:?}");
        if let Some(t) = terminal.first() {
            assert_eq!(t.event_id, self.history.len() as u64, "the terminal event is the last one");
        }
    }
}
