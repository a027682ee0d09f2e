//! Stores: what the self-hosted checkpoint service persists through.
//!
//! A store keeps, per execution, one [`ExecutionRecord`], the execution's operations (each
//! with a sequence number that orders them) and its history events. Every change goes
//! through [`Store::commit`]: one atomic, conditional write of the new record, the changed
//! operations and the new events, applied only if the record's version is still the one
//! the writer read. That condition is the fencing that keeps two invocations racing on one
//! execution from both winning.
//!
//! Implementations: [`MemoryStore`] (tests), [`EmbeddedStore`] (a crash-safe journal on
//! local disk, the default on a developer's machine) and `DynamoStore` (feature
//! `dynamodb`). The conformance suite in `store::conformance` (feature `conformance`) runs
//! against each of them.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;
mod memory;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoOptions, DynamoStore};
#[cfg(feature = "embedded")]
pub use embedded::{EmbeddedOptions, EmbeddedStats, EmbeddedStore, SalvageReport, VerifyReport};
pub use memory::MemoryStore;

use crate::model::{ErrorObject, Event, ExecutionStatus, Operation, Timestamp};

/// Everything about an execution except its operations and events. It is rewritten by
/// every commit, so it carries no payload but the final result or error: the input lives
/// on the EXECUTION operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution's ARN (the primary key).
    pub arn: Arc<str>,
    /// The execution id: the last segment of the ARN and the id of its EXECUTION operation.
    pub execution_id: Arc<str>,
    /// The function (durable handler) the execution runs.
    pub function_name: Arc<str>,
    /// The execution name (unique per function; the id when none was given).
    pub name: Arc<str>,
    /// The status.
    pub status: ExecutionStatus,
    /// The result payload (JSON text), once succeeded; or a result delivered early by an
    /// EXECUTION update.
    pub result: Option<String>,
    /// The error, once failed; or an error delivered early by an EXECUTION update.
    pub error: Option<ErrorObject>,
    /// When the execution started.
    pub start: Timestamp,
    /// When it ended.
    pub end: Option<Timestamp>,
    /// The execution timeout in seconds.
    pub timeout_seconds: u64,
    /// Days to keep a finished execution.
    pub retention_days: u32,
    /// When a finished execution may be deleted.
    pub expires_at: Option<Timestamp>,
    /// Bumped by every commit; commits are conditional on it.
    pub version: u64,
    /// The id the next history event gets.
    pub next_event_id: u64,
    /// The sequence number the next new operation gets.
    pub next_op_seq: u64,
    /// The number of the current or last invocation (0 before the first).
    pub invocation: u64,
    /// When the current invocation started, while one is in progress.
    pub invocation_started: Option<Timestamp>,
    /// Checkpoints made by the current invocation (the token sequence).
    pub checkpoint_seq: u64,
    /// When the execution next needs an invocation (a timer, a retry, a completed
    /// callback); `None` while an invocation runs or while it waits on something that
    /// has no time (a callback without timeout). Stores index it for [`Store::due_executions`].
    pub wake_at: Option<Timestamp>,
    /// The chained invoke that started this execution, if one did: its result goes back to
    /// that operation when this execution ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<InvokedBy>,
}

/// The parent side of a chained invoke: the invoking execution and its CHAINED_INVOKE
/// operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokedBy {
    /// The invoking execution.
    pub arn: Arc<str>,
    /// Its CHAINED_INVOKE operation.
    pub operation_id: Arc<str>,
}

impl ExecutionRecord {
    /// The invocation currently in progress, if any.
    pub fn active_invocation(&self) -> Option<u64> {
        self.invocation_started.map(|_| self.invocation)
    }
}

/// An operation as stored: the record plus its sequence number in the execution.
///
/// The operation is shared (`Arc`): the service's cache, the store's own state and commits
/// in flight all hold the same record without copying its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOperation {
    /// Orders operations in the execution (the order they were created).
    pub seq: u64,
    /// The operation.
    pub operation: Arc<Operation>,
    /// What the service keeps about the operation beyond the protocol's fields.
    #[serde(default, skip_serializing_if = "OperationMeta::is_empty")]
    pub meta: OperationMeta,
}

impl StoredOperation {
    /// An operation at a sequence number.
    pub fn new(seq: u64, operation: Operation) -> Self {
        StoredOperation { seq, operation: Arc::new(operation), meta: OperationMeta::default() }
    }
}

/// Service-side facts about an operation that the protocol's `Operation` has no field for:
/// callback deadlines and the child execution of a chained invoke. Stores persist it with
/// the operation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OperationMeta {
    /// When a callback times out (`Callback.Timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_at: Option<Timestamp>,
    /// When a callback's heartbeat times out (`Callback.Heartbeat`); each heartbeat moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<Timestamp>,
    /// The heartbeat timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u32>,
    /// The execution a chained invoke started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_arn: Option<Arc<str>>,
    /// Whether that execution was created (a chained invoke is dispatched after its START
    /// is committed; a crash in between is repaired at the next invocation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dispatched: bool,
    /// The function a chained invoke calls, kept until it is dispatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_function: Option<Arc<str>>,
    /// The input of a chained invoke, kept until it is dispatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_input: Option<Arc<str>>,
}

impl OperationMeta {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == OperationMeta::default()
    }
}

/// A new execution: its record, its EXECUTION operation and its first events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExecution {
    /// The record (version 1).
    pub record: ExecutionRecord,
    /// The initial operations (the EXECUTION operation).
    pub operations: Vec<StoredOperation>,
    /// The initial events (`ExecutionStarted`).
    pub events: Vec<Event>,
}

/// One atomic, conditional change of an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The version the writer read; the commit applies only if it is still current.
    pub expected_version: u64,
    /// The new record; its `version` must be `expected_version + 1`.
    pub record: ExecutionRecord,
    /// Operations to create or replace.
    pub operations: Vec<StoredOperation>,
    /// Events to append; their ids continue the execution's sequence.
    pub events: Vec<Event>,
}

impl Commit {
    /// The approximate size in bytes, for stores with transaction limits.
    pub fn approx_size(&self) -> usize {
        self.operations.iter().map(|o| o.operation.approx_size()).sum::<usize>()
            + self.events.iter().map(|_| 300).sum::<usize>()
            + 1000
    }
}

/// An execution whose `wake_at` has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueExecution {
    /// The execution.
    pub arn: String,
    /// When it became due.
    pub wake_at: Timestamp,
}

/// Which executions [`Store::list_executions`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Only this function's executions.
    pub function_name: Option<String>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<ExecutionStatus>,
    /// Start after this ARN (the previous page's last), in the store's order.
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// What stores can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// No such execution.
    NotFound(String),
    /// An execution with this ARN, or this name for this function, exists already.
    AlreadyExists(String),
    /// The record's version is not the one the writer read: another writer won.
    Conflict(String),
    /// A payload or a commit exceeds what the store can hold. Not retryable.
    TooLarge(String),
    /// Stored data cannot be read back (a corrupted record). Not retryable.
    Corrupt(String),
    /// The request was invalid for this store. Not retryable.
    Invalid(String),
    /// The backend failed; `retryable` says whether trying again may help (throttling,
    /// timeouts, 5xx) or not.
    Backend {
        /// What failed.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
        /// The underlying error.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Backend { retryable: true, .. })
    }

    /// A backend error.
    pub fn backend(message: impl Into<String>, retryable: bool) -> Self {
        StoreError::Backend { message: message.into(), retryable, source: None }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound(m) => write!(f, "not found: {m}"),
            StoreError::AlreadyExists(m) => write!(f, "already exists: {m}"),
            StoreError::Conflict(m) => write!(f, "conflicting write: {m}"),
            StoreError::TooLarge(m) => write!(f, "too large: {m}"),
            StoreError::Corrupt(m) => write!(f, "corrupted data: {m}"),
            StoreError::Invalid(m) => write!(f, "invalid request: {m}"),
            StoreError::Backend { message, retryable, .. } => {
                write!(f, "store backend error ({}): {message}", if *retryable { "retryable" } else { "permanent" })
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Backend { source: Some(s), .. } => Some(s.as_ref()),
            _ => None,
        }
    }
}

/// `Result<T, StoreError>`.
pub type StoreResult<T> = Result<T, StoreError>;

/// A durable journal of executions. See the [module documentation](self).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an execution. Fails with [`StoreError::AlreadyExists`] if the ARN or the
    /// (function, name) pair exists, without changing anything.
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()>;

    /// Reads an execution's record.
    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>>;

    /// Finds an execution by function and name.
    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>>;

    /// Applies a commit atomically if the record's version is `expected_version`; fails
    /// with [`StoreError::Conflict`] otherwise, changing nothing. A reader never sees part
    /// of a commit.
    async fn commit(&self, commit: Commit) -> StoreResult<()>;

    /// Operations in sequence order, those with `seq > after` (all when `None`), at most `limit`.
    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>>;

    /// Events in id order: ascending from id `after + 1`, or, if `reverse`, descending
    /// from id `after - 1` (`after == 0` means from the newest); at most `limit`.
    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>>;

    /// Running executions whose `wake_at` is at or before `now`, earliest first.
    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>>;

    /// Executions matching a query, in ARN order.
    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>>;

    /// The largest payload (result, input or error) one operation may carry.
    fn max_payload_bytes(&self) -> usize {
        usize::MAX
    }
}

#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn create_execution(&self, new: NewExecution) -> StoreResult<()> {
        (**self).create_execution(new).await
    }
    async fn get_execution(&self, arn: &str) -> StoreResult<Option<ExecutionRecord>> {
        (**self).get_execution(arn).await
    }
    async fn find_execution(&self, function_name: &str, name: &str) -> StoreResult<Option<ExecutionRecord>> {
        (**self).find_execution(function_name, name).await
    }
    async fn commit(&self, commit: Commit) -> StoreResult<()> {
        (**self).commit(commit).await
    }
    async fn read_operations(&self, arn: &str, after: Option<u64>, limit: usize) -> StoreResult<Vec<StoredOperation>> {
        (**self).read_operations(arn, after, limit).await
    }
    async fn read_events(&self, arn: &str, after: u64, limit: usize, reverse: bool) -> StoreResult<Vec<Event>> {
        (**self).read_events(arn, after, limit, reverse).await
    }
    async fn due_executions(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<DueExecution>> {
        (**self).due_executions(now, limit).await
    }
    async fn list_executions(&self, query: &ListQuery) -> StoreResult<Vec<ExecutionRecord>> {
        (**self).list_executions(query).await
    }
    fn max_payload_bytes(&self) -> usize {
        (**self).max_payload_bytes()
    }
}
