//! Starting executions: a new execution is one store write (its record, its EXECUTION
//! operation and `ExecutionStarted`), due at once. A name makes a start idempotent.

use super::CheckpointService;
use super::error::ServiceError;
use super::events::execution_started;
use crate::model::{ExecutionDetails, ExecutionStatus, Operation, OperationStatus, OperationType};
use crate::store::{ExecutionRecord, InvokedBy, NewExecution, StoreError, StoredOperation};

/// The longest execution timeout AWS allows, in seconds (366 days).
pub(super) const MAX_TIMEOUT_SECONDS: u64 = 31_622_400;

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

/// Whether `name` may name a function or an execution: 1 to 64 of `[A-Za-z0-9_-]`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl CheckpointService {
    /// Starts an execution (or returns the existing one for an idempotent name).
    pub async fn start_execution(&self, req: StartExecution) -> Result<Started, ServiceError> {
        if !valid_name(&req.function_name) {
            return Err(ServiceError::invalid(format!(
                "function name {:?} must be 1 to 64 characters of [A-Za-z0-9_-]",
                req.function_name
            )));
        }
        if let Some(name) = &req.name
            && !valid_name(name)
        {
            return Err(ServiceError::invalid(format!(
                "execution name {name:?} must be 1 to 64 characters of [A-Za-z0-9_-]"
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
        let timeout = req.timeout_seconds.unwrap_or(self.config.default_timeout_seconds).clamp(1, MAX_TIMEOUT_SECONDS);
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

    /// The answer to a start whose name an execution already has: that execution, if it
    /// was started with the same input.
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
}
