//! The self-hosted checkpoint service: what AWS's durable-execution control plane does,
//! over a [`Store`].
//!
//! It validates each checkpoint batch against the operations' current statuses (AWS's
//! legal transitions), writes operation records and numbered history events in one
//! conditional commit, owns wait timers and retry delays, and hands out checkpoint tokens
//! that fence stale invocations off. Runners drive it: [`CheckpointService::begin_invocation`]
//! gives the invocation input, the engine checkpoints through
//! [`CheckpointService::checkpointer`], and [`CheckpointService::end_invocation`] records how
//! the invocation ended.

mod apply;
mod callback;
mod invoke;
mod state;

use foldhash::{HashMap, HashMapExt};
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use self::apply::{apply_batch, execution_started, op_event};
use self::state::{ExecState, TimerKind};
use crate::checkpoint::{CheckpointError, Checkpointer, Limits};
use crate::clock::{Clock, SystemClock};
use crate::engine::fit_error;
use crate::model::{
    CheckpointDurableExecutionResponse, DurableExecutionInvocationInput, DurableExecutionInvocationOutput,
    DurableExecutionSummary, ErrorObject, Event, EventDetails, EventType, ExecutionDetails, ExecutionState,
    ExecutionStatus, GetDurableExecutionHistoryResponse, GetDurableExecutionResponse, InvocationStatus,
    ListDurableExecutionsResponse, Operation, OperationStatus, OperationType, OperationUpdate, Timestamp,
};
use crate::store::{
    Commit, DueExecution, ExecutionRecord, InvokedBy, ListQuery, NewExecution, Store, StoreError, StoredOperation,
};

/// Settings of a [`CheckpointService`].
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The service's caps on payload sizes. The service enforces, and tells the engine,
    /// these caps bounded by what its store holds ([`Limits::within_store`] with the
    /// store's `max_payload_bytes`): [`CheckpointService::limits`].
    pub limits: Limits,
    /// The execution timeout when a start names none (seconds; AWS allows 1 to 31,622,400).
    pub default_timeout_seconds: u64,
    /// Days a finished execution is kept.
    pub retention_days: u32,
    /// Region used in ARNs.
    pub region: String,
    /// Account used in ARNs.
    pub account: String,
    /// Operations per page of invocation state.
    pub state_page_items: usize,
    /// Whether [`CheckpointService::callback_success`] refuses a result that is not JSON
    /// text (default `true`). A callback decodes its result with its codec: JSON unless
    /// `CreateCallback::serdes` names another. The service cannot see which codec a
    /// callback uses (nothing on the wire says), so it checks for the default, and a result
    /// the default codec could never decode is refused while the sender can still correct
    /// it, instead of failing the execution later. Turn it off when callbacks use a codec
    /// whose payloads are not JSON (`Postcard`, an `FnSerdes` reading plain text): results
    /// are then taken as sent, and one the codec cannot read fails in the function.
    pub require_json_callback_results: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            limits: Limits {
                max_input: 6 * 1024 * 1024,
                max_operation_payload: 6 * 1024 * 1024,
                max_context_result: 6 * 1024 * 1024,
                max_callback_result: 1024 * 1024,
                max_execution_result: 6 * 1024 * 1024,
                // In process, results of any allowed size are returned directly.
                max_invocation_result: usize::MAX,
                max_batch_updates: 250,
                max_batch_bytes: 750 * 1024,
            },
            default_timeout_seconds: 31_622_400,
            retention_days: 14,
            region: "local".to_owned(),
            account: "000000000000".to_owned(),
            state_page_items: 1000,
            require_json_callback_results: true,
        }
    }
}

/// What the service can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceError {
    /// No such execution.
    NotFound(String),
    /// An execution with this name exists with a different input
    /// (`DurableExecutionAlreadyStartedException`).
    AlreadyStarted(String),
    /// The checkpoint token is stale or malformed.
    InvalidToken(String),
    /// A request or update was invalid (`InvalidParameterValueException`).
    InvalidParameter(ErrorObject),
    /// The execution is not running any more.
    NotRunning(String),
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::NotFound(m) => write!(f, "execution not found: {m}"),
            ServiceError::AlreadyStarted(m) => write!(f, "{m}"),
            ServiceError::InvalidToken(m) => write!(f, "invalid checkpoint token: {m}"),
            ServiceError::InvalidParameter(e) => write!(f, "{e}"),
            ServiceError::NotRunning(m) => write!(f, "execution is not running: {m}"),
            ServiceError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServiceError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Store(e)
    }
}

impl ServiceError {
    /// The AWS error code this maps to.
    pub fn error_code(&self) -> &'static str {
        match self {
            ServiceError::NotFound(_) => "ResourceNotFoundException",
            ServiceError::AlreadyStarted(_) => "DurableExecutionAlreadyStartedException",
            ServiceError::InvalidParameter(e)
                if e.error_type.as_deref() == Some(crate::PAYLOAD_TOO_LARGE_ERROR_TYPE) =>
            {
                REQUEST_TOO_LARGE
            }
            ServiceError::Store(StoreError::TooLarge(_)) => REQUEST_TOO_LARGE,
            ServiceError::InvalidToken(_) | ServiceError::InvalidParameter(_) | ServiceError::NotRunning(_) => {
                "InvalidParameterValueException"
            }
            ServiceError::Store(e) if e.is_retryable() => "TooManyRequestsException",
            ServiceError::Store(_) => "ServiceException",
        }
    }

    /// The error as the engine sees it.
    pub fn into_checkpoint_error(self) -> CheckpointError {
        match self {
            ServiceError::InvalidToken(m) | ServiceError::NotRunning(m) | ServiceError::NotFound(m) => {
                CheckpointError::InvalidToken(m)
            }
            ServiceError::InvalidParameter(e) => CheckpointError::Rejected(e),
            ServiceError::AlreadyStarted(m) => {
                CheckpointError::Rejected(ErrorObject::new("InvalidParameterValueException", m))
            }
            ServiceError::Store(StoreError::TooLarge(m)) => {
                CheckpointError::Rejected(ErrorObject::new(crate::PAYLOAD_TOO_LARGE_ERROR_TYPE, m))
            }
            ServiceError::Store(e) => CheckpointError::Retryable(e.to_string()),
        }
    }
}

/// The AWS error code of a request refused for a payload over its limit (Lambda's, HTTP 413).
const REQUEST_TOO_LARGE: &str = "RequestTooLargeException";

/// A request to start an execution.
#[derive(Debug, Clone, Default)]
pub struct StartExecution {
    /// The function (handler name) to run.
    pub function_name: String,
    /// An optional name (1 to 64 of `[A-Za-z0-9_-]`) that makes the start idempotent: the
    /// same name with the same input returns the existing execution.
    pub name: Option<String>,
    /// The input as JSON text.
    pub input: Option<String>,
    /// The execution timeout in seconds.
    pub timeout_seconds: Option<u64>,
    /// A fixed execution id (32 hex digits) instead of a random one: chained invokes derive
    /// their child's id from the parent so that a repeated dispatch finds the same child.
    pub execution_id: Option<String>,
    /// The chained invoke this execution serves.
    pub invoked_by: Option<InvokedBy>,
}

/// The result of a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The execution's ARN.
    pub arn: String,
    /// `false` when an execution with this name and input existed already.
    pub created: bool,
}

/// How an invocation ended, as a runner reports it.
#[derive(Debug, Clone)]
pub enum InvocationEnd {
    /// The function returned this output.
    Output(DurableExecutionInvocationOutput),
    /// The invocation died or must be retried: it is recorded with this error and the
    /// execution is due again at `retry_at`.
    Crashed {
        /// The error recorded on `InvocationCompleted` (e.g. `Runtime.ExitError`).
        error: ErrorObject,
        /// When to invoke again.
        retry_at: Timestamp,
    },
}

impl InvocationEnd {
    /// The execution fails with `error`, a `PayloadTooLargeError`.
    fn too_large(error: ErrorObject) -> Self {
        InvocationEnd::Output(DurableExecutionInvocationOutput::failed(Some(error)))
    }
}

/// Which history events to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Include payloads (inputs, results, errors).
    pub include_data: bool,
    /// Continue after this marker.
    pub marker: Option<String>,
    /// At most this many (1 to 1000; default 1000).
    pub max_items: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

type Slot = Arc<tokio::sync::Mutex<Option<ExecState>>>;

/// The self-hosted checkpoint service. See the [module documentation](self).
pub struct CheckpointService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    cache: Mutex<HashMap<String, Slot>>,
    due_listener: std::sync::RwLock<Option<DueListener>>,
}

/// Called with an execution's ARN when it became due to run now (see
/// [`CheckpointService::on_due`]).
pub type DueListener = Arc<dyn Fn(&str) + Send + Sync>;

impl fmt::Debug for CheckpointService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointService").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A checkpoint token: `<execution id>.<invocation>.<sequence>`. Tokens fence, they do
/// not authenticate: the invocation number fences off older invocations and the sequence
/// number refuses a token used twice.
fn encode_token(execution_id: &str, invocation: u64, seq: u64) -> String {
    format!("{execution_id}.{invocation}.{seq}")
}

fn decode_token(token: &str) -> Option<(&str, u64, u64)> {
    let mut parts = token.rsplitn(3, '.');
    let seq = parts.next()?.parse().ok()?;
    let invocation = parts.next()?.parse().ok()?;
    Some((parts.next()?, invocation, seq))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The error recorded on `InvocationCompleted` when an invocation never reported back.
pub const INVOCATION_LOST_ERROR_TYPE: &str = "Runtime.ExitError";

impl CheckpointService {
    /// A service over `store` with the wall clock and default settings.
    pub fn new(store: Arc<dyn Store>) -> Self {
        CheckpointService::with_config(store, Arc::new(SystemClock), ServiceConfig::default())
    }

    /// A service with a given clock and settings. The limits it enforces are the
    /// configured ones bounded by the store's ([`Limits::within_store`]).
    pub fn with_config(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut config: ServiceConfig) -> Self {
        config.limits = config.limits.within_store(store.max_payload_bytes());
        CheckpointService {
            store,
            clock,
            config,
            cache: Mutex::new(HashMap::new()),
            due_listener: std::sync::RwLock::new(None),
        }
    }

    /// Registers the function told when an execution becomes due to run now because of a
    /// call to this service (a start, a callback completed or failed): a runner wakes its
    /// worker with it, however the call arrived. Timers are not announced (they come due
    /// with time; runners look for them). One listener; a new one replaces the old.
    pub fn on_due(&self, listener: DueListener) {
        *self.due_listener.write().expect("listener lock") = Some(listener);
    }

    pub(crate) fn announce_due(&self, arn: &str) {
        let listener = self.due_listener.read().expect("listener lock").clone();
        if let Some(l) = listener {
            l(arn);
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The settings, with the limits the service enforces.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The limits the service enforces and its checkpointer advertises to the engine.
    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// The ARN of a function.
    pub fn function_arn(&self, function_name: &str) -> String {
        format!("arn:aws:lambda:{}:{}:function:{function_name}", self.config.region, self.config.account)
    }

    fn slot(&self, arn: &str) -> Slot {
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some(slot) = cache.get(arn) {
            return slot.clone();
        }
        cache.entry(arn.to_owned()).or_default().clone()
    }

    /// Forgets a finished execution: its slot leaves the cache, and its state (taken out
    /// of `held`, the slot's guarded content) is freed off this path when large.
    fn forget(&self, arn: &str, held: &mut Option<ExecState>) {
        self.cache.lock().expect("cache lock").remove(arn);
        if let Some(state) = held.take() {
            let large = state.by_seq.len() >= crate::free::LARGE_OPERATIONS;
            crate::free::free(state, large);
        }
    }

    async fn load(&self, arn: &str) -> Result<ExecState, ServiceError> {
        let record = (*self.store).get_execution(arn).await?.ok_or_else(|| ServiceError::NotFound(arn.to_owned()))?;
        Ok(ExecState::load(&*self.store, record).await?)
    }

    /// Reloads an execution after a write of this service lost to another writer while
    /// an invocation runs. The operations that differ from the cached state were changed
    /// by that writer (a callback completed, a child execution reported its end), perhaps
    /// in another process with its own service: the invocation hears of them as of changes
    /// made through this service, in its next checkpoint response, and if it ends
    /// `PENDING` the execution is due at once. Without this, a completion made elsewhere
    /// during an invocation would be lost to it (and an execution waiting on nothing else
    /// would be failed for returning `PENDING` with nothing pending).
    async fn reload_after_conflict(&self, arn: &str, guard: &mut Option<ExecState>) -> Result<(), ServiceError> {
        let old = guard.take();
        let mut fresh = self.load(arn).await?;
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
        *guard = Some(fresh);
        Ok(())
    }

    /// Starts an execution (or returns the existing one for an idempotent name).
    pub async fn start_execution(&self, req: StartExecution) -> Result<Started, ServiceError> {
        if !valid_name(&req.function_name) {
            return Err(ServiceError::InvalidParameter(ErrorObject::new(
                "InvalidParameterValueException",
                format!("function name {:?} must be 1 to 64 characters of [A-Za-z0-9_-]", req.function_name),
            )));
        }
        if let Some(name) = &req.name
            && !valid_name(name)
        {
            return Err(ServiceError::InvalidParameter(ErrorObject::new(
                "InvalidParameterValueException",
                format!("execution name {name:?} must be 1 to 64 characters of [A-Za-z0-9_-]"),
            )));
        }
        if let Some(input) = &req.input
            && input.len() > self.config.limits.max_input
        {
            return Err(ServiceError::InvalidParameter(crate::error::payload_too_large(
                "the input",
                input.len(),
                self.config.limits.max_input,
            )));
        }
        if let Some(name) = &req.name
            && let Some(existing) = (*self.store).find_execution(&req.function_name, name).await?
        {
            return self.same_start(&existing, &req).await;
        }
        let now = self.clock.now();
        let id = req.execution_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let name = req.name.clone().unwrap_or_else(|| id.clone());
        let arn = format!("{}:$LATEST/durable-execution/{name}/{id}", self.function_arn(&req.function_name));
        let timeout = req.timeout_seconds.unwrap_or(self.config.default_timeout_seconds).clamp(1, 31_622_400);
        let mut record = ExecutionRecord {
            arn: arn.as_str().into(),
            execution_id: id.as_str().into(),
            function_name: req.function_name.as_str().into(),
            name: name.as_str().into(),
            status: ExecutionStatus::Running,
            result: None,
            error: None,
            start: now,
            end: None,
            timeout_seconds: timeout,
            retention_days: self.config.retention_days,
            expires_at: None,
            version: 1,
            next_event_id: 1,
            next_op_seq: 2,
            invocation: 0,
            invocation_started: None,
            checkpoint_seq: 0,
            wake_at: Some(now),
            invoked_by: req.invoked_by.clone(),
        };
        let mut exec_op = Operation::new(id, OperationType::Execution, OperationStatus::Started, now);
        exec_op.name = Some(name.as_str().into());
        exec_op.execution_details =
            Some(Box::new(ExecutionDetails { input_payload: req.input.as_deref().map(Into::into) }));
        let started = execution_started(&mut record, &exec_op, now);
        let new = NewExecution { record, operations: vec![StoredOperation::new(1, exec_op)], events: vec![started] };
        match (*self.store).create_execution(new).await {
            Ok(()) => {
                self.announce_due(&arn);
                Ok(Started { arn, created: true })
            }
            Err(StoreError::AlreadyExists(m)) => {
                // A concurrent start with the same name won the race.
                let Some(name) = &req.name else { return Err(ServiceError::Store(StoreError::AlreadyExists(m))) };
                let existing = self
                    .store
                    .find_execution(&req.function_name, name)
                    .await?
                    .ok_or(ServiceError::Store(StoreError::AlreadyExists(m)))?;
                self.same_start(&existing, &req).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The input of an execution (on its EXECUTION operation, the first one).
    async fn input_of(&self, arn: &str) -> Result<Option<String>, ServiceError> {
        let first = (*self.store).read_operations(arn, None, 1).await?;
        Ok(first
            .first()
            .filter(|o| o.operation.op_type == OperationType::Execution)
            .and_then(|o| o.operation.execution_details.as_ref())
            .and_then(|d| d.input_payload.as_deref().map(str::to_owned)))
    }

    async fn same_start(&self, existing: &ExecutionRecord, req: &StartExecution) -> Result<Started, ServiceError> {
        if self.input_of(&existing.arn).await? == req.input {
            Ok(Started { arn: existing.arn.to_string(), created: false })
        } else {
            Err(ServiceError::AlreadyStarted(format!(
                "an execution named {:?} of function {} already exists with a different input ({})",
                existing.name, existing.function_name, existing.arn
            )))
        }
    }

    /// Commits `applied`-style changes to the store and, on success, to the cached state.
    async fn commit(
        &self,
        state: &mut ExecState,
        record: ExecutionRecord,
        ops: Vec<StoredOperation>,
        events: Vec<Event>,
    ) -> Result<(), ServiceError> {
        // Operations are shared (`Arc`): the cache keeps what the store keeps, uncopied.
        let cached_ops = ops.clone();
        let cached_record = record.clone();
        let commit = Commit { expected_version: state.record.version, record, operations: ops, events };
        (*self.store).commit(commit).await?;
        state.record = cached_record;
        for op in cached_ops {
            state.put(op);
        }
        Ok(())
    }

    /// Fires the timers due at `now`: ends waits, readies steps whose retry delay passed,
    /// times out the execution. Returns the ids of the operations it changed.
    fn fire_timers(
        state: &ExecState,
        record: &mut ExecutionRecord,
        now: Timestamp,
        ops: &mut Vec<StoredOperation>,
        events: &mut Vec<Event>,
    ) {
        for (_, id, kind) in state.due_timers(now) {
            let Some(stored) = state.ops.get(&id) else { continue };
            if ops.iter().any(|o: &StoredOperation| o.operation.id == id) {
                // Both deadlines of one callback passed: the first one decided.
                continue;
            }
            let mut op = (*stored.operation).clone();
            match kind {
                TimerKind::CallbackTimeout | TimerKind::CallbackHeartbeat => {
                    let error = if kind == TimerKind::CallbackTimeout {
                        callback::timeout_error()
                    } else {
                        callback::heartbeat_error()
                    };
                    op.status = OperationStatus::TimedOut;
                    op.end_timestamp = Some(now);
                    let details = op.callback_details.get_or_insert_with(Box::default);
                    details.error = Some(error.clone());
                    events.push(op_event(
                        record,
                        EventType::CallbackTimedOut,
                        now,
                        &op,
                        EventDetails::with_error(Some(error)),
                    ));
                }
                TimerKind::WaitEnds => {
                    op.status = OperationStatus::Succeeded;
                    op.end_timestamp = Some(now);
                    let duration = op
                        .wait_details
                        .as_ref()
                        .and_then(|d| d.scheduled_end_timestamp)
                        .map(|end| ((end.as_millis() - op.start_timestamp.as_millis()) / 1000).max(0) as u64);
                    let details = EventDetails { duration, ..EventDetails::default() };
                    events.push(op_event(record, EventType::WaitSucceeded, now, &op, details));
                }
                TimerKind::RetryReady => op.status = OperationStatus::Ready,
            }
            let mut next = StoredOperation::new(stored.seq, op);
            next.meta = stored.meta.clone();
            ops.push(next);
        }
    }

    /// Begins an invocation: fires due timers, fences off any earlier invocation (recording
    /// it as lost), and returns the invocation input.
    pub async fn begin_invocation(&self, arn: &str) -> Result<DurableExecutionInvocationInput, ServiceError> {
        self.begin(arn, None).await
    }

    /// [`begin_invocation`](Self::begin_invocation) for a runner whose invocations can die
    /// without a word (a Lambda function killed at its timeout or out of memory): until the
    /// invocation ends, the execution is due at `lease_until` (in
    /// [`due_executions`](Self::due_executions)), so a sweep over due executions finds a
    /// dead invocation once its lease has passed, and the invocation it starts then fences
    /// the dead one off. Changes made from outside while the invocation runs (a callback
    /// completed) leave the lease alone; ending the invocation replaces it.
    pub async fn begin_invocation_leased(
        &self,
        arn: &str,
        lease_until: Timestamp,
    ) -> Result<DurableExecutionInvocationInput, ServiceError> {
        self.begin(arn, Some(lease_until)).await
    }

    async fn begin(
        &self,
        arn: &str,
        lease: Option<Timestamp>,
    ) -> Result<DurableExecutionInvocationInput, ServiceError> {
        let slot = self.slot(arn);
        let mut guard = slot.lock().await;
        for attempt in 0..3 {
            if guard.is_none() {
                *guard = Some(self.load(arn).await?);
            }
            let state = guard.as_mut().expect("loaded");
            if state.record.status.is_terminal() {
                return Err(ServiceError::NotRunning(format!("{arn} is {}", state.record.status)));
            }
            let now = self.clock.now();
            let mut record = state.record.clone();
            record.version += 1;
            let mut ops = Vec::new();
            let mut events = Vec::new();
            if let Some(started) = record.invocation_started {
                let details = EventDetails {
                    start_timestamp: Some(started),
                    end_timestamp: Some(now),
                    request_id: Some(format!("invocation-{}", record.invocation)),
                    ..EventDetails::with_error(Some(ErrorObject::new(
                        INVOCATION_LOST_ERROR_TYPE,
                        "the invocation ended without reporting an outcome (the process died or was stopped)",
                    )))
                };
                events.push(invocation_completed(&mut record, now, details));
            }
            if now.as_millis() >= record.start.plus_seconds(record.timeout_seconds as i64).as_millis() {
                self.time_out(state, record, events, now).await?;
                self.forget(arn, &mut guard);
                return Err(ServiceError::NotRunning(format!("{arn} timed out")));
            }
            Self::fire_timers(state, &mut record, now, &mut ops, &mut events);
            let updated: Vec<String> = ops
                .iter()
                .map(|o| o.operation.id.to_string())
                .chain(state.notify.drain(..).map(|i| i.to_string()))
                .collect();
            record.invocation += 1;
            record.invocation_started = Some(now);
            record.checkpoint_seq = 0;
            record.wake_at = lease;
            match self.commit(state, record, ops, events).await {
                Ok(()) => {}
                Err(ServiceError::Store(StoreError::Conflict(_))) if attempt < 2 => {
                    *guard = None;
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.dispatch_invokes(guard.as_mut().expect("loaded")).await?;
            let state = guard.as_ref().expect("loaded");
            let token = encode_token(&state.record.execution_id, state.record.invocation, 0);
            let initial = self.page(state, None);
            return Ok(DurableExecutionInvocationInput {
                durable_execution_arn: arn.to_owned(),
                checkpoint_token: token,
                initial_execution_state: initial,
                updated_operation_ids: Some(updated),
            });
        }
        unreachable!("the loop returns")
    }

    async fn time_out(
        &self,
        state: &mut ExecState,
        mut record: ExecutionRecord,
        mut events: Vec<Event>,
        now: Timestamp,
    ) -> Result<(), ServiceError> {
        let error = ErrorObject::new(
            "Execution.TimedOut",
            format!("the execution exceeded its timeout of {} s", record.timeout_seconds),
        );
        let exec = state.execution_op().cloned();
        let mut ops = Vec::new();
        if let Some(mut exec) = exec {
            let op = Arc::make_mut(&mut exec.operation);
            op.status = OperationStatus::TimedOut;
            op.end_timestamp = Some(now);
            let e = op_event(
                &mut record,
                EventType::ExecutionTimedOut,
                now,
                &exec.operation,
                EventDetails::with_error(Some(error.clone())),
            );
            events.push(e);
            ops.push(exec);
        }
        Self::finish_record(&mut record, ExecutionStatus::TimedOut, now);
        record.error = Some(error);
        self.report_to_parent(&record).await?;
        self.commit(state, record, ops, events).await?;
        Ok(())
    }

    fn finish_record(record: &mut ExecutionRecord, status: ExecutionStatus, now: Timestamp) {
        record.status = status;
        record.end = Some(now);
        record.expires_at = Some(now.plus_seconds(i64::from(record.retention_days) * 86_400));
        record.wake_at = None;
        record.invocation_started = None;
    }

    /// A page of operations in sequence order, starting after `marker`.
    fn page(&self, state: &ExecState, marker: Option<u64>) -> ExecutionState {
        let max_items = self.config.state_page_items.max(1);
        let max_bytes = 5 * 1024 * 1024;
        let mut operations = Vec::new();
        let mut bytes = 0;
        let mut last = None;
        let range = match marker {
            Some(m) => state.by_seq.range(m.saturating_add(1)..),
            None => state.by_seq.range(..),
        };
        let mut more = false;
        for (seq, op) in range {
            let size = op.approx_size();
            if !operations.is_empty() && (operations.len() >= max_items || bytes + size > max_bytes) {
                more = true;
                break;
            }
            bytes += size;
            operations.push(Operation::clone(op));
            last = Some(*seq);
        }
        ExecutionState { operations, next_marker: if more { last.map(|s| s.to_string()) } else { None } }
    }

    fn check_token(state: &ExecState, arn: &str, token: &str, strict_seq: bool) -> Result<(), ServiceError> {
        let (execution_id, invocation, seq) =
            decode_token(token).ok_or_else(|| ServiceError::InvalidToken("the token is malformed".to_owned()))?;
        if *execution_id != *state.record.execution_id {
            return Err(ServiceError::InvalidToken("the token belongs to another execution".to_owned()));
        }
        if state.record.status.is_terminal() {
            return Err(ServiceError::NotRunning(format!("{arn} is {}", state.record.status)));
        }
        if state.record.active_invocation() != Some(invocation) {
            return Err(ServiceError::InvalidToken(format!(
                "the token is for invocation {invocation}, which is no longer the execution's current invocation"
            )));
        }
        if strict_seq && seq != state.record.checkpoint_seq {
            return Err(ServiceError::InvalidToken(format!(
                "the token was already used (sequence {seq}, expected {})",
                state.record.checkpoint_seq
            )));
        }
        Ok(())
    }

    /// Applies a checkpoint batch (`CheckpointDurableExecution`).
    pub async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: &[OperationUpdate],
    ) -> Result<CheckpointDurableExecutionResponse, ServiceError> {
        let slot = self.slot(arn);
        let mut guard = slot.lock().await;
        for attempt in 0..3 {
            if guard.is_none() {
                *guard = Some(self.load(arn).await?);
            }
            let state = guard.as_mut().expect("loaded");
            Self::check_token(state, arn, token, true)?;
            let now = self.clock.now();
            let applied =
                apply_batch(state, updates, now, &self.config.limits).map_err(ServiceError::InvalidParameter)?;
            let mut record = applied.record;
            record.checkpoint_seq += 1;
            // Report back what the function cannot know from its own updates: operations
            // that carry service-made data (a wait's end, a retry's next attempt, a callback
            // id, an invoke's outcome), and what the service changed since the last call.
            // Steps and contexts the batch itself started or finished are not echoed.
            let changed: Vec<Arc<Operation>> =
                applied.touched.iter().filter(|o| reports_back(&o.operation)).map(|o| o.operation.clone()).collect();
            match self.commit(state, record, applied.touched, applied.events).await {
                Ok(()) => {}
                Err(ServiceError::Store(StoreError::Conflict(_))) if attempt < 2 => {
                    // Another writer (a callback, a stop) changed the execution: reload
                    // and validate the batch again against what is there now.
                    self.reload_after_conflict(arn, &mut guard).await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.dispatch_invokes(state).await?;
            let mut operations: Vec<Operation> = changed.iter().map(|o| Operation::clone(o)).collect();
            for id in state.notify.drain(..) {
                if !operations.iter().any(|o| o.id == id)
                    && let Some(o) = state.ops.get(&id)
                {
                    operations.push(Operation::clone(&o.operation));
                }
            }
            return Ok(CheckpointDurableExecutionResponse {
                checkpoint_token: Some(encode_token(
                    &state.record.execution_id,
                    state.record.invocation,
                    state.record.checkpoint_seq,
                )),
                new_execution_state: ExecutionState { operations, next_marker: None },
            });
        }
        unreachable!("the loop returns")
    }

    /// Pages the execution state (`GetDurableExecutionState`).
    pub async fn get_state(
        &self,
        arn: &str,
        token: &str,
        marker: Option<&str>,
    ) -> Result<ExecutionState, ServiceError> {
        let slot = self.slot(arn);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(self.load(arn).await?);
        }
        let state = guard.as_ref().expect("loaded");
        Self::check_token(state, arn, token, false)?;
        let marker = match marker.filter(|m| !m.is_empty()) {
            Some(m) => Some(m.parse::<u64>().map_err(|_| {
                ServiceError::InvalidParameter(ErrorObject::new(
                    "InvalidParameterValueException",
                    format!("bad marker {m:?}"),
                ))
            })?),
            None => None,
        };
        Ok(self.page(state, marker))
    }

    /// Records how an invocation ended and, for a final output, ends the execution.
    ///
    /// A result over [`Limits::max_execution_result`], or one the store refuses to hold,
    /// fails the execution with `PayloadTooLargeError`: an output that can never be
    /// recorded must end the execution, not leave it running with nothing to retry. An
    /// error longer than an operation payload is shortened.
    pub async fn end_invocation(
        &self,
        arn: &str,
        token: &str,
        end: InvocationEnd,
    ) -> Result<ExecutionRecord, ServiceError> {
        let mut end = self.within_limits(end);
        let slot = self.slot(arn);
        let mut guard = slot.lock().await;
        let mut attempt = 0;
        let mut refused = false;
        loop {
            if guard.is_none() {
                *guard = Some(self.load(arn).await?);
            }
            let state = guard.as_mut().expect("loaded");
            Self::check_token(state, arn, token, false)?;
            let now = self.clock.now();
            let mut record = state.record.clone();
            record.version += 1;
            let started = record.invocation_started.unwrap_or(now);
            let mut details = EventDetails {
                start_timestamp: Some(started),
                end_timestamp: Some(now),
                request_id: Some(format!("invocation-{}", record.invocation)),
                ..EventDetails::default()
            };
            if let InvocationEnd::Crashed { error, .. } = &end {
                details.error = EventDetails::with_error(Some(error.clone())).error;
            }
            let mut events = vec![invocation_completed(&mut record, now, details)];
            let mut ops = Vec::new();
            record.invocation_started = None;
            let mut finished = false;
            match &end {
                InvocationEnd::Crashed { retry_at, .. } => record.wake_at = Some(*retry_at),
                InvocationEnd::Output(out) => match out.status {
                    InvocationStatus::Pending => {
                        if !state.notify.is_empty() {
                            // Something the function waits on finished while it ran.
                            state.notify.clear();
                            record.wake_at = Some(now);
                        } else if state.has_pending_work() {
                            record.wake_at = state
                                .next_timer()
                                .map(|t| t.max(now))
                                .or(Some(now).filter(|_| !state.ready.is_empty()));
                        } else {
                            let error = ErrorObject::new(
                                "InvalidInvocationOutput",
                                "the invocation returned PENDING, but the execution waits on nothing",
                            );
                            Self::close(state, &mut record, &mut ops, &mut events, Err(error), now);
                            finished = true;
                        }
                    }
                    InvocationStatus::Succeeded => {
                        let result = match out.result.as_deref() {
                            Some("") | None => record.result.clone(),
                            Some(r) => Some(r.to_owned()),
                        };
                        Self::close(state, &mut record, &mut ops, &mut events, Ok(result), now);
                        finished = true;
                    }
                    InvocationStatus::Failed => {
                        let error = out.error.clone().or_else(|| record.error.clone()).unwrap_or_default();
                        Self::close(state, &mut record, &mut ops, &mut events, Err(error), now);
                        finished = true;
                    }
                },
            }
            // The parent hears of the end first: if this commit is lost, the child is
            // invoked again and reports again, which the parent ignores.
            let reported = if finished { self.report_to_parent(&record).await } else { Ok(()) };
            let committed = match reported {
                Ok(()) => self.commit(state, record, ops, events).await,
                Err(e) => Err(e),
            };
            match committed {
                Ok(()) => {}
                Err(ServiceError::Store(StoreError::Conflict(_))) if attempt < 2 => {
                    attempt += 1;
                    self.reload_after_conflict(arn, &mut guard).await?;
                    continue;
                }
                Err(ServiceError::Store(StoreError::TooLarge(m))) if finished && !refused => {
                    // The store cannot hold this end (its result, most likely): it never
                    // will, so the execution fails, which is small enough to record.
                    tracing::warn!(arn, "the execution's end is too large for the store: {m}");
                    refused = true;
                    end = InvocationEnd::too_large(ErrorObject::new(
                        crate::PAYLOAD_TOO_LARGE_ERROR_TYPE,
                        format!("the store cannot record how the execution ended (its result): {m}"),
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            }
            if !finished {
                self.dispatch_invokes(state).await?;
            }
            let record = state.record.clone();
            if finished {
                self.forget(arn, &mut guard);
            }
            return Ok(record);
        }
    }

    /// An invocation's end within the service's limits: a result over the execution's
    /// maximum becomes the execution's failure; errors are shortened to fit.
    fn within_limits(&self, end: InvocationEnd) -> InvocationEnd {
        let limits = &self.config.limits;
        match end {
            InvocationEnd::Output(mut out) => {
                if out.status == InvocationStatus::Succeeded
                    && let Some(result) = &out.result
                    && result.len() > limits.max_execution_result
                {
                    return InvocationEnd::too_large(crate::error::payload_too_large(
                        "the result of the durable function",
                        result.len(),
                        limits.max_execution_result,
                    ));
                }
                out.error = out.error.map(|e| fit_error(e, limits.max_operation_payload));
                InvocationEnd::Output(out)
            }
            InvocationEnd::Crashed { error, retry_at } => {
                InvocationEnd::Crashed { error: fit_error(error, limits.max_operation_payload), retry_at }
            }
        }
    }

    /// Ends the execution with a result or an error.
    fn close(
        state: &ExecState,
        record: &mut ExecutionRecord,
        ops: &mut Vec<StoredOperation>,
        events: &mut Vec<Event>,
        outcome: Result<Option<String>, ErrorObject>,
        now: Timestamp,
    ) {
        let mut exec = state.execution_op().cloned();
        let (status, op_status, event) = match &outcome {
            Ok(result) => (
                ExecutionStatus::Succeeded,
                OperationStatus::Succeeded,
                (EventType::ExecutionSucceeded, EventDetails::with_result(result.as_deref().map(Into::into))),
            ),
            Err(error) => (
                ExecutionStatus::Failed,
                OperationStatus::Failed,
                (EventType::ExecutionFailed, EventDetails::with_error(Some(error.clone()))),
            ),
        };
        match outcome {
            Ok(result) => {
                record.result = result;
                record.error = None;
            }
            Err(error) => {
                record.error = Some(error);
                record.result = None;
            }
        }
        if let Some(exec) = &mut exec {
            let op = Arc::make_mut(&mut exec.operation);
            op.status = op_status;
            op.end_timestamp = Some(now);
            let mut e = op_event(record, event.0, now, &exec.operation, event.1);
            e.name = Some(record.name.clone());
            events.push(e);
        }
        ops.extend(exec);
        Self::finish_record(record, status, now);
    }

    /// Applies a change computed from the execution's current state, atomically, retrying
    /// on a conflicting write. A change that completes something wakes the execution: a
    /// running invocation hears of it in its next checkpoint response, an idle execution
    /// becomes due now.
    pub(crate) async fn mutate(&self, arn: &str, f: &mut Mutation<'_>) -> Result<(), ServiceError> {
        let slot = self.slot(arn);
        let mut guard = slot.lock().await;
        for attempt in 0..3 {
            if guard.is_none() {
                *guard = Some(match self.load(arn).await {
                    Ok(s) => s,
                    Err(ServiceError::NotFound(_)) => {
                        return Err(ServiceError::InvalidParameter(ErrorObject::new(
                            "ResourceNotFoundException",
                            format!("no execution {arn}"),
                        )));
                    }
                    Err(e) => return Err(e),
                });
            }
            let state = guard.as_mut().expect("loaded");
            if state.record.status.is_terminal() {
                return Err(ServiceError::NotRunning(format!("{arn} is {}", state.record.status)));
            }
            let now = self.clock.now();
            let Some(mut change) = f(state, now)? else { return Ok(()) };
            let active = state.record.active_invocation().is_some();
            if !active {
                change.record.wake_at =
                    if change.wake { Some(now) } else { state.next_timer_with(&change.ops).map(|t| t.max(now)) };
            }
            match self.commit(state, change.record, change.ops, change.events).await {
                Ok(()) => {}
                Err(ServiceError::Store(StoreError::Conflict(_))) if attempt < 2 => {
                    *guard = None;
                    continue;
                }
                Err(e) => return Err(e),
            }
            if active && let Some(id) = change.notify {
                state.notify.push(id);
            }
            return Ok(());
        }
        unreachable!("the loop returns")
    }

    /// Creates the child executions of chained invokes whose START is committed but whose
    /// child does not exist yet, and records that they do.
    async fn dispatch_invokes(&self, state: &mut ExecState) -> Result<(), ServiceError> {
        if state.undispatched.is_empty() {
            return Ok(());
        }
        let mut done = Vec::new();
        for id in state.undispatched.clone() {
            let Some(stored) = state.ops.get(&id) else { continue };
            let (Some(child_arn), Some(function)) = (&stored.meta.child_arn, &stored.meta.invoke_function) else {
                continue;
            };
            let child_id = child_arn.rsplit('/').next().unwrap_or_default().to_owned();
            let req = StartExecution {
                function_name: invoke::function_of(function).to_owned(),
                name: Some(invoke::child_name(&child_id)),
                input: stored.meta.invoke_input.as_deref().map(str::to_owned),
                timeout_seconds: None,
                execution_id: Some(child_id),
                invoked_by: Some(InvokedBy { arn: state.record.arn.clone(), operation_id: id.clone() }),
            };
            match Box::pin(self.start_execution(req)).await {
                Ok(_) | Err(ServiceError::AlreadyStarted(_)) => {}
                Err(ServiceError::InvalidParameter(e)) => {
                    // The target cannot be started at all (an invalid function name): the
                    // invoke fails instead of waiting forever.
                    tracing::warn!(error = %e, "chained invoke target rejected");
                }
                Err(e) => return Err(e),
            }
            let mut next = stored.clone();
            next.meta.dispatched = true;
            next.meta.invoke_input = None;
            done.push(next);
        }
        if done.is_empty() {
            return Ok(());
        }
        let mut record = state.record.clone();
        record.version += 1;
        self.commit(state, record, done, Vec::new()).await
    }

    /// Reports a child execution's end to the chained invoke that started it. Idempotent:
    /// an operation already completed is left alone.
    async fn report_to_parent(&self, child: &ExecutionRecord) -> Result<(), ServiceError> {
        let Some(parent) = &child.invoked_by else { return Ok(()) };
        let op_id = parent.operation_id.clone();
        let outcome = (child.status, child.result.clone(), child.error.clone());
        let result = self
            .mutate(&parent.arn, &mut |state: &ExecState, now: Timestamp| {
                let Some(stored) = state.ops.get(&op_id) else { return Ok(None) };
                if stored.operation.op_type != OperationType::ChainedInvoke
                    || stored.operation.status != OperationStatus::Started
                {
                    return Ok(None);
                }
                let mut record = state.record.clone();
                record.version += 1;
                let mut next = stored.clone();
                let op = Arc::make_mut(&mut next.operation);
                op.end_timestamp = Some(now);
                let (status, result, error) = &outcome;
                let (op_status, event, details) = match status {
                    ExecutionStatus::Succeeded => {
                        let payload: Option<Arc<str>> = result.as_deref().map(Into::into);
                        (
                            OperationStatus::Succeeded,
                            EventType::ChainedInvokeSucceeded,
                            EventDetails::with_result(payload),
                        )
                    }
                    ExecutionStatus::TimedOut => (
                        OperationStatus::TimedOut,
                        EventType::ChainedInvokeTimedOut,
                        EventDetails::with_error(error.clone()),
                    ),
                    ExecutionStatus::Stopped => (
                        OperationStatus::Stopped,
                        EventType::ChainedInvokeStopped,
                        EventDetails::with_error(error.clone()),
                    ),
                    _ => (
                        OperationStatus::Failed,
                        EventType::ChainedInvokeFailed,
                        EventDetails::with_error(error.clone()),
                    ),
                };
                op.status = op_status;
                op.chained_invoke_details = Some(Box::new(crate::model::ChainedInvokeDetails {
                    result: if op_status == OperationStatus::Succeeded {
                        result.as_deref().map(Into::into)
                    } else {
                        None
                    },
                    error: if op_status == OperationStatus::Succeeded { None } else { error.clone() },
                }));
                let e = op_event(&mut record, event, now, op, details);
                Ok(Some(Change { record, ops: vec![next], events: vec![e], wake: true, notify: Some(op_id.clone()) }))
            })
            .await;
        match result {
            // A parent that ended meanwhile (stopped, timed out) no longer waits.
            Ok(()) | Err(ServiceError::NotRunning(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stops a running execution (`StopDurableExecution`).
    pub async fn stop_execution(&self, arn: &str, error: Option<ErrorObject>) -> Result<Timestamp, ServiceError> {
        let slot = self.slot(arn);
        let mut guard = slot.lock().await;
        for attempt in 0..3 {
            if guard.is_none() {
                *guard = Some(self.load(arn).await?);
            }
            let state = guard.as_mut().expect("loaded");
            if state.record.status.is_terminal() {
                return Err(ServiceError::NotRunning(format!("{arn} is {}", state.record.status)));
            }
            let now = self.clock.now();
            let mut record = state.record.clone();
            record.version += 1;
            let error =
                error.clone().unwrap_or_else(|| ErrorObject::new("Execution.Stopped", "the execution was stopped"));
            let mut ops = Vec::new();
            let mut events = Vec::new();
            if let Some(mut exec) = state.execution_op().cloned() {
                let op = Arc::make_mut(&mut exec.operation);
                op.status = OperationStatus::Stopped;
                op.end_timestamp = Some(now);
                let mut e = op_event(
                    &mut record,
                    EventType::ExecutionStopped,
                    now,
                    &exec.operation,
                    EventDetails::with_error(Some(error.clone())),
                );
                e.name = Some(record.name.clone());
                events.push(e);
                ops.push(exec);
            }
            Self::finish_record(&mut record, ExecutionStatus::Stopped, now);
            record.error = Some(error);
            self.report_to_parent(&record).await?;
            match self.commit(state, record, ops, events).await {
                Ok(()) => {}
                Err(ServiceError::Store(StoreError::Conflict(_))) if attempt < 2 => {
                    *guard = None;
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.forget(arn, &mut guard);
            return Ok(now);
        }
        unreachable!("the loop returns")
    }

    /// The execution (`GetDurableExecution`).
    pub async fn get_execution(&self, arn: &str) -> Result<GetDurableExecutionResponse, ServiceError> {
        let r = (*self.store).get_execution(arn).await?.ok_or_else(|| ServiceError::NotFound(arn.to_owned()))?;
        let input = self.input_of(arn).await?;
        Ok(self.describe(&r, input))
    }

    /// The record of an execution.
    pub async fn get_record(&self, arn: &str) -> Result<ExecutionRecord, ServiceError> {
        (*self.store).get_execution(arn).await?.ok_or_else(|| ServiceError::NotFound(arn.to_owned()))
    }

    fn describe(&self, r: &ExecutionRecord, input: Option<String>) -> GetDurableExecutionResponse {
        GetDurableExecutionResponse {
            durable_execution_arn: r.arn.to_string(),
            durable_execution_name: r.name.to_string(),
            function_arn: self.function_arn(&r.function_name),
            input_payload: input,
            result: if r.status == ExecutionStatus::Succeeded { r.result.clone() } else { None },
            error: if r.status.is_terminal() { r.error.clone() } else { None },
            start_timestamp: r.start,
            status: r.status,
            end_timestamp: r.end,
            version: Some("$LATEST".to_owned()),
            trace_header: None,
            execution_data_included: Some(true),
            durable_config: Some(crate::model::DurableConfig {
                execution_timeout: Some(r.timeout_seconds),
                retention_period_in_days: Some(r.retention_days),
                kms_key_arn: None,
            }),
            expected_execution_timeout_timestamp: i64::try_from(r.timeout_seconds)
                .ok()
                .and_then(|s| s.checked_mul(1000))
                .and_then(|ms| r.start.as_millis().checked_add(ms))
                .map(Timestamp::from_millis),
        }
    }

    /// The history (`GetDurableExecutionHistory`), one page.
    pub async fn history(
        &self,
        arn: &str,
        q: &HistoryQuery,
    ) -> Result<GetDurableExecutionHistoryResponse, ServiceError> {
        if (*self.store).get_execution(arn).await?.is_none() {
            return Err(ServiceError::NotFound(arn.to_owned()));
        }
        let limit = q.max_items.unwrap_or(1000).clamp(1, 1000);
        let after = match q.marker.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => m.parse::<u64>().map_err(|_| {
                ServiceError::InvalidParameter(ErrorObject::new(
                    "InvalidParameterValueException",
                    format!("bad marker {m:?}"),
                ))
            })?,
            None => 0,
        };
        let mut events = (*self.store).read_events(arn, after, limit + 1, q.reverse).await?;
        let more = events.len() > limit;
        events.truncate(limit);
        if !q.include_data {
            for e in &mut events {
                e.details.strip_data();
            }
        }
        let next_marker = if more { events.last().map(|e| e.event_id.to_string()) } else { None };
        Ok(GetDurableExecutionHistoryResponse { events, next_marker })
    }

    /// The whole history, every page.
    pub async fn full_history(&self, arn: &str) -> Result<Vec<Event>, ServiceError> {
        let mut all = Vec::new();
        let mut q = HistoryQuery { include_data: true, ..HistoryQuery::default() };
        loop {
            let page = self.history(arn, &q).await?;
            all.extend(page.events);
            match page.next_marker {
                Some(m) => q.marker = Some(m),
                None => return Ok(all),
            }
        }
    }

    /// Every operation of an execution, in creation order.
    pub async fn operations(&self, arn: &str) -> Result<Vec<Operation>, ServiceError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = (*self.store).read_operations(arn, after, 1000).await?;
            let Some(last) = page.last() else { return Ok(out) };
            after = Some(last.seq);
            out.extend(page.into_iter().map(|o| Arc::unwrap_or_clone(o.operation)));
        }
    }

    /// Executions of a function (`ListDurableExecutionsByFunction`), one page.
    pub async fn list_executions(&self, query: &ListQuery) -> Result<ListDurableExecutionsResponse, ServiceError> {
        let limit = if query.limit == 0 { 1000 } else { query.limit.min(1000) };
        let mut q = query.clone();
        q.limit = limit + 1;
        let mut records = (*self.store).list_executions(&q).await?;
        let more = records.len() > limit;
        records.truncate(limit);
        let next_marker = if more { records.last().map(|r| r.arn.to_string()) } else { None };
        Ok(ListDurableExecutionsResponse {
            durable_executions: records
                .iter()
                .map(|r| DurableExecutionSummary {
                    durable_execution_arn: r.arn.to_string(),
                    durable_execution_name: r.name.to_string(),
                    function_arn: self.function_arn(&r.function_name),
                    status: r.status,
                    start_timestamp: r.start,
                    end_timestamp: r.end,
                })
                .collect(),
            next_marker,
        })
    }

    /// Executions due for an invocation now.
    pub async fn due_executions(&self, limit: usize) -> Result<Vec<String>, ServiceError> {
        Ok((*self.store).due_executions(self.clock.now(), limit).await?.into_iter().map(|d| d.arn).collect())
    }

    /// The executions due at `at` (a wake-up, a retry or a lease at or before it), earliest
    /// first, with their wake-up times: a sweep's view ("due for at least a grace period")
    /// and a worker's next wake-up (`at` far ahead, `limit` 1).
    pub async fn due_at(&self, at: Timestamp, limit: usize) -> Result<Vec<DueExecution>, ServiceError> {
        Ok((*self.store).due_executions(at, limit).await?)
    }

    /// A [`Checkpointer`] that sends the engine's checkpoints to this service.
    pub fn checkpointer(self: &Arc<Self>) -> Rc<dyn Checkpointer> {
        Rc::new(ServiceCheckpointer { service: self.clone() })
    }
}

/// Computes a [`Change`] from an execution's current state and the time.
pub(crate) type Mutation<'a> = dyn FnMut(&ExecState, Timestamp) -> Result<Option<Change>, ServiceError> + Send + 'a;

/// A change to an execution made from outside an invocation (a callback, a child's end).
pub(crate) struct Change {
    pub(crate) record: ExecutionRecord,
    pub(crate) ops: Vec<StoredOperation>,
    pub(crate) events: Vec<Event>,
    /// The change completes something the execution waits on: wake it.
    pub(crate) wake: bool,
    /// The operation to report to a running invocation.
    pub(crate) notify: Option<Arc<str>>,
}

/// Whether a checkpoint response reports an operation the batch touched: only when the
/// service added something the function did not send.
fn reports_back(op: &Operation) -> bool {
    match op.op_type {
        OperationType::Step => op.status == OperationStatus::Pending || op.status == OperationStatus::Ready,
        OperationType::Context | OperationType::Execution => false,
        OperationType::Wait | OperationType::Callback | OperationType::ChainedInvoke => true,
    }
}

fn invocation_completed(record: &mut ExecutionRecord, now: Timestamp, details: EventDetails) -> Event {
    let e = Event {
        event_type: EventType::InvocationCompleted,
        event_id: record.next_event_id,
        event_timestamp: now,
        id: None,
        name: None,
        parent_id: None,
        sub_type: None,
        details,
    };
    record.next_event_id += 1;
    e
}

/// The engine's view of a [`CheckpointService`] in the same process.
pub struct ServiceCheckpointer {
    service: Arc<CheckpointService>,
}

#[async_trait(?Send)]
impl Checkpointer for ServiceCheckpointer {
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        self.service.checkpoint(arn, token, &updates).await.map_err(ServiceError::into_checkpoint_error)
    }

    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError> {
        self.service.get_state(arn, token, Some(marker)).await.map_err(ServiceError::into_checkpoint_error)
    }

    fn limits(&self) -> Limits {
        self.service.config.limits
    }
}

#[cfg(test)]
mod tests;
