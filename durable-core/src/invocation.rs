//! One invocation of an execution, as every runner drives it: begin it at the service, run
//! the function, turn how it came out into how it ends, and record the end.
//!
//! The local worker, the test runner and self-hosted Lambda mode all call [`invoke`]; what
//! differs between them is a [`Host`] (which functions it runs, and how it runs one: in
//! process to the end, or until a Lambda deadline) and [`InvokeOptions`] (a lease for runners
//! whose processes can die silently, the delay before a failed checkpoint is retried).
//!
//! Architecture invariant: every invocation a runner starts is ended through the service,
//! unless another invocation fenced it off. A runner never writes the store around the
//! service.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::checkpoint::Checkpointer;
use crate::engine::{InvocationOutcome, Stopped, run_invocation};
use crate::handler::Handler;
use crate::model::{DurableExecutionInvocationInput, DurableExecutionInvocationOutput, ErrorObject};
use crate::service::{CheckpointService, InvocationEnd, ServiceError};
use crate::store::{ExecutionRecord, StoreError};

/// The error recorded on `InvocationCompleted` when an invocation stopped at its deadline
/// (the execution is due again at once).
pub const DEADLINE_ERROR_TYPE: &str = "Durable.DeadlineReached";
/// The error recorded on `InvocationCompleted` when a checkpoint failed and the invocation
/// is retried after [`InvokeOptions::retry_delay`].
pub const RETRY_ERROR_TYPE: &str = "Invocation.Retry";
/// The error a chained invoke of a function no runner hosts fails with, as Lambda's
/// `ResourceNotFoundException`.
pub const FUNCTION_NOT_FOUND_ERROR_TYPE: &str = "ResourceNotFoundException";

/// What a runner supplies to [`invoke`]: which functions it runs, and how it runs one.
#[async_trait(?Send)]
pub trait Host {
    /// Whether this runner runs the function of `execution`.
    fn hosts(&self, execution: &ExecutionRecord) -> bool;

    /// Runs one invocation of `execution` from `input`, checkpointing through
    /// `checkpointer`, to its end, or until the runner stops it ([`Stopped`], e.g. at a
    /// Lambda deadline).
    async fn run(
        &self,
        execution: &ExecutionRecord,
        input: DurableExecutionInvocationInput,
        checkpointer: Rc<dyn Checkpointer>,
    ) -> Result<InvocationOutcome, Stopped>;
}

/// A [`Host`] of in-process handlers, looked up by the execution (its function name, or
/// anything else the closure reads), run to the end.
pub struct Handlers<F>(pub F);

#[async_trait(?Send)]
impl<'h, F> Host for Handlers<F>
where
    F: Fn(&ExecutionRecord) -> Option<&'h dyn Handler>,
{
    fn hosts(&self, execution: &ExecutionRecord) -> bool {
        (self.0)(execution).is_some()
    }

    async fn run(
        &self,
        execution: &ExecutionRecord,
        input: DurableExecutionInvocationInput,
        checkpointer: Rc<dyn Checkpointer>,
    ) -> Result<InvocationOutcome, Stopped> {
        let handler = (self.0)(execution).expect("hosts() said yes");
        Ok(run_invocation(handler, input, checkpointer).await)
    }
}

/// How a runner invokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvokeOptions {
    /// For runners whose invocations can die without a word (a Lambda function killed at
    /// its timeout): the execution is due again this long after the invocation began,
    /// unless it ended ([`CheckpointService::begin_invocation_leased`]).
    pub lease: Option<Duration>,
    /// After a checkpoint failed (a store error), the execution is due again after this.
    pub retry_delay: Duration,
}

impl Default for InvokeOptions {
    fn default() -> Self {
        InvokeOptions { lease: None, retry_delay: Duration::from_secs(1) }
    }
}

/// How an invocation came out.
#[derive(Debug, Clone, PartialEq)]
pub enum Ran {
    /// The function returned: its output (succeeded, failed or pending).
    Output(DurableExecutionInvocationOutput),
    /// A checkpoint failed transiently; the execution is due again after the retry delay.
    Retry(String),
    /// Another invocation fenced this one off: it ended without effect.
    Revoked(String),
    /// The runner stopped it (a deadline); the execution is due again at once.
    Stopped,
    /// No runner hosts the function of this chained invoke: it failed, as Lambda's
    /// `ResourceNotFoundException` would, instead of waiting forever.
    NotHosted,
}

/// One invocation, run and ended.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// How it came out.
    pub ran: Ran,
    /// The execution after the end was recorded; `None` when a newer invocation fenced
    /// this one off (or the execution ended meanwhile) and owns the execution now.
    pub ended: Option<ExecutionRecord>,
}

/// Why an invocation could not run.
#[derive(Debug)]
pub enum InvokeError {
    /// The execution's function is not hosted here and the execution is not a chained
    /// invoke (which fails instead): nothing was changed.
    NotHosted(String),
    /// The service refused or failed: beginning the invocation (`NotRunning` when the
    /// execution ended meanwhile, `Store(Conflict)` when another invocation began first),
    /// or recording its end.
    Service(ServiceError),
    /// The invocation ran, but its end could not be recorded (the service's error: the
    /// store failed): until it is ([`Unended::record`]), the execution is neither due nor
    /// finished.
    Unended(Box<Unended>, ServiceError),
}

/// An invocation that ran but whose end is not recorded yet.
#[derive(Debug)]
pub struct Unended {
    /// The execution.
    pub arn: String,
    /// How the invocation came out.
    pub ran: Ran,
    token: String,
    end: InvocationEnd,
}

impl Unended {
    /// Tries again to record the end: `Ok` once it is (with the execution's record, or
    /// `None` when a newer invocation fenced this one off meanwhile).
    ///
    /// # Errors
    ///
    /// The service's error when it still cannot.
    pub async fn record(&self, service: &CheckpointService) -> Result<Option<ExecutionRecord>, ServiceError> {
        end(service, &self.arn, &self.token, &self.end).await
    }
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::NotHosted(function) => write!(f, "no handler is registered for function {function}"),
            InvokeError::Service(e) => e.fmt(f),
            InvokeError::Unended(_, e) => write!(f, "the end of the invocation could not be recorded: {e}"),
        }
    }
}

impl std::error::Error for InvokeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InvokeError::NotHosted(_) => None,
            InvokeError::Service(e) | InvokeError::Unended(_, e) => Some(e),
        }
    }
}

impl From<ServiceError> for InvokeError {
    fn from(e: ServiceError) -> Self {
        InvokeError::Service(e)
    }
}

/// Recording an invocation's end is tried this often when outside writers (callbacks,
/// child executions) keep changing the execution; the service retries a few times itself.
const END_ATTEMPTS: u32 = 5;

/// Runs one invocation of `execution` (its record as last read) on `host`: begins it
/// (firing due timers, fencing off an earlier invocation), runs it, and records how it
/// ended.
///
/// # Errors
///
/// [`InvokeError::NotHosted`] when `host` does not run the function and the execution is
/// not a chained invoke; [`InvokeError::Service`] when the invocation cannot begin, or its
/// end cannot be recorded for another reason than a newer invocation owning the execution.
pub async fn invoke(
    service: &Arc<CheckpointService>,
    host: &dyn Host,
    execution: &ExecutionRecord,
    options: InvokeOptions,
) -> Result<Invoked, InvokeError> {
    let arn = &*execution.arn;
    let hosted = host.hosts(execution);
    if !hosted && execution.invoked_by.is_none() {
        return Err(InvokeError::NotHosted(execution.function_name.to_string()));
    }
    let input = match options.lease {
        Some(lease) => service.begin_invocation_leased(arn, service.clock().now().plus(lease)).await?,
        None => service.begin_invocation(arn).await?,
    };
    let token = input.checkpoint_token.clone();
    let ran = if hosted {
        match host.run(execution, input, service.checkpointer()).await {
            Ok(InvocationOutcome::Output(o)) => Ran::Output(o),
            Ok(InvocationOutcome::Retry(m)) => Ran::Retry(m),
            Ok(InvocationOutcome::Revoked(m)) => Ran::Revoked(m),
            Err(Stopped) => Ran::Stopped,
        }
    } else {
        Ran::NotHosted
    };
    let now = service.clock().now();
    let end = match &ran {
        Ran::Output(o) => InvocationEnd::Output(o.clone()),
        Ran::NotHosted => InvocationEnd::Output(DurableExecutionInvocationOutput::failed(Some(ErrorObject::new(
            FUNCTION_NOT_FOUND_ERROR_TYPE,
            format!("Function not found: {}", execution.function_name),
        )))),
        Ran::Retry(m) => {
            tracing::warn!(execution_arn = arn, "a checkpoint failed; the invocation is retried: {m}");
            InvocationEnd::Crashed {
                error: ErrorObject::new(RETRY_ERROR_TYPE, m.clone()),
                retry_at: now.plus(options.retry_delay),
            }
        }
        Ran::Stopped => {
            tracing::info!(execution_arn = arn, "the invocation stopped before its deadline; the next one goes on");
            InvocationEnd::Crashed {
                error: ErrorObject::new(
                    DEADLINE_ERROR_TYPE,
                    "the invocation stopped before its deadline; the next one goes on",
                ),
                retry_at: now,
            }
        }
        Ran::Revoked(m) => {
            tracing::warn!(execution_arn = arn, reason = %m, "invocation revoked: a newer invocation owns the execution");
            return Ok(Invoked { ran, ended: None });
        }
    };
    match self::end(service, arn, &token, &end).await {
        Ok(ended) => Ok(Invoked { ran, ended }),
        Err(error) => Err(InvokeError::Unended(Box::new(Unended { arn: arn.to_owned(), ran, token, end }), error)),
    }
}

/// Records an invocation's end: the execution's record, or `None` when a newer invocation
/// fenced this one off (or the execution ended meanwhile).
async fn end(
    service: &CheckpointService,
    arn: &str,
    token: &str,
    end: &InvocationEnd,
) -> Result<Option<ExecutionRecord>, ServiceError> {
    let mut attempt = 1;
    loop {
        match service.end_invocation(arn, token, end.clone()).await {
            Ok(record) => return Ok(Some(record)),
            Err(ServiceError::InvalidToken(_) | ServiceError::NotRunning(_)) => return Ok(None),
            Err(ServiceError::Store(StoreError::Conflict(_))) if attempt < END_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}
