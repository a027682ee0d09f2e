//! AWS Lambda: the entry point of a function binary built with `cargo lambda` (feature
//! `lambda`).
//!
//! ```no_run
//! use durable_core::{DurableContext, Error, handler};
//!
//! async fn process_order(ctx: DurableContext, order_id: String) -> Result<String, Error> {
//!     ctx.step("charge", async |_| Ok(format!("paid {order_id}"))).await
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), durable_runtime::lambda::lambda_runtime::Error> {
//!     durable_runtime::lambda::run(handler(process_order)).await
//! }
//! ```
//!
//! (With the facade crate and `#[durable]`: `durable::lambda::run(handler(process_order))`.)
//!
//! The binary tells the modes apart by the event it receives:
//!
//! - **managed**: AWS Lambda's durable invocation input (`DurableExecutionArn`,
//!   `CheckpointToken`, `InitialExecutionState`), sent to a function created with
//!   `DurableConfig`. The service keeps the journal; the invocation checkpoints through
//!   `CheckpointDurableExecution` / `GetDurableExecutionState` ([`ManagedCheckpointer`]) and
//!   returns `{"Status":"SUCCEEDED"|"FAILED"|"PENDING",...}`. A transient checkpoint failure
//!   ends the invocation with a Lambda error (type [`RETRY_ERROR_TYPE`]), so the service
//!   invokes it again.
//! - **self-hosted**: an object with a `durable` field ([`SelfHostedEvent`]: start, resume,
//!   callback, sweep, get, history), or an SQS batch whose record bodies are such events,
//!   sent to a plain function whose environment names a DynamoDB table (`DURABLE_TABLE`) and
//!   an SQS queue (`DURABLE_QUEUE_URL`). The journal is the DynamoDB store, written through
//!   the self-hosted checkpoint service; waits wake through delayed SQS messages and a
//!   sweeper ([`selfhosted`] has the details).
//! - anything else is refused with an error (type [`UNRECOGNISED_EVENT_ERROR_TYPE`]) that
//!   says what was expected.
//!
//! One binary may host several durable functions, registered by their Lambda function
//! name ([`Functions::register`]): deploy it once per function (chained invokes name their
//! target function). [`run`] is the common case, one function per binary.
//!
//! Logs: [`run`] installs a `tracing` subscriber writing to stdout, as Lambda collects
//! them: JSON lines when the function's log format is JSON (`AWS_LAMBDA_LOG_FORMAT`),
//! plain lines otherwise; the level comes from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`,
//! else `INFO`.

mod convert;
mod event;
mod managed;
#[cfg(feature = "lambda-selfhosted")]
pub mod selfhosted;

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use durable_core::Handler;
use durable_core::checkpoint::Checkpointer;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
#[cfg(feature = "lambda-selfhosted")]
use tokio::sync::OnceCell;

/// The pinned SQS crate (self-hosted mode's wake-ups).
#[cfg(feature = "lambda-selfhosted")]
pub use aws_sdk_sqs;
pub use event::{
    CallbackAction, DurableEvent, INVALID_EVENT_ERROR_TYPE, INVALID_INPUT_ERROR_TYPE, NOT_CONFIGURED_ERROR_TYPE,
    SelfHostedEvent, SqsMessage, UNKNOWN_FUNCTION_ERROR_TYPE, UNRECOGNISED_EVENT_ERROR_TYPE,
};
pub use managed::{ManagedCheckpointer, RETRY_ERROR_TYPE, invoke_managed};
#[cfg(feature = "lambda-selfhosted")]
pub use selfhosted::SelfHosted;
/// The pinned AWS crates, so a binary that configures its own client uses the same
/// versions.
pub use {aws_config, aws_sdk_lambda, lambda_runtime};

/// What self-hosted mode knows about the Lambda invocation it serves.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The Lambda function's name (which handler runs; which function executions belong to).
    pub function_name: &'a str,
    /// The invoked function's ARN (region and account of new executions' ARNs).
    pub function_arn: Option<&'a str>,
    /// When Lambda kills the invocation.
    pub deadline: Option<SystemTime>,
}

impl Invocation<'_> {
    /// Time left before the deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

/// The durable functions a Lambda binary hosts.
///
/// ```no_run
/// # use durable_core::{DurableContext, Error, handler};
/// # async fn process_order(ctx: DurableContext, id: String) -> Result<String, Error> { Ok(id) }
/// # async fn refund(ctx: DurableContext, id: String) -> Result<String, Error> { Ok(id) }
/// # async fn demo() -> Result<(), durable_runtime::lambda::lambda_runtime::Error> {
/// durable_runtime::lambda::Functions::new()
///     .register("process-order", handler(process_order)) // the Lambda function's name
///     .register("refund", handler(refund))
///     .run()
///     .await
/// # }
/// ```
#[derive(Default)]
pub struct Functions {
    default: Option<Box<dyn Handler>>,
    named: Vec<(String, Box<dyn Handler>)>,
    lambda_client: Option<aws_sdk_lambda::Client>,
    checkpointer: Option<Rc<dyn Checkpointer>>,
    #[cfg(feature = "lambda-selfhosted")]
    self_hosted: OnceCell<Option<Rc<SelfHosted>>>,
}

impl Functions {
    /// No functions yet.
    pub fn new() -> Self {
        Functions::default()
    }

    /// The handler for invocations of any function not registered by name.
    #[must_use]
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.default = Some(Box::new(handler));
        self
    }

    /// The handler for invocations of the Lambda function called `function_name`.
    ///
    /// # Panics
    ///
    /// If a handler is registered under that name already.
    #[must_use]
    pub fn register(mut self, function_name: impl Into<String>, handler: impl Handler) -> Self {
        let name = function_name.into();
        assert!(!self.named.iter().any(|(n, _)| *n == name), "two handlers are registered for function {name}");
        self.named.push((name, Box::new(handler)));
        self
    }

    /// Checkpoints (managed mode) through this client instead of one configured from the
    /// environment.
    #[must_use]
    pub fn lambda_client(mut self, client: aws_sdk_lambda::Client) -> Self {
        self.lambda_client = Some(client);
        self
    }

    /// Checkpoints (managed mode) through `checkpointer` instead of the Lambda API: the
    /// unit tests hand the entry point a test runner's service.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn checkpointer(mut self, checkpointer: Rc<dyn Checkpointer>) -> Self {
        self.checkpointer = Some(checkpointer);
        self
    }

    /// Serves self-hosted events with `self_hosted` instead of configuring it from the
    /// environment (`DURABLE_TABLE`, `DURABLE_QUEUE_URL`) on the first one.
    #[cfg(feature = "lambda-selfhosted")]
    #[must_use]
    pub fn self_hosted(self, self_hosted: SelfHosted) -> Self {
        let _ = self.self_hosted.set(Some(Rc::new(self_hosted)));
        self
    }

    /// The handler for the function called `function_name`: registered under that name,
    /// else the default one, else the only one registered.
    pub fn handler_for(&self, function_name: &str) -> Result<&dyn Handler, Diagnostic> {
        if let Some((_, h)) = self.named.iter().find(|(n, _)| n == function_name) {
            return Ok(&**h);
        }
        if let Some(h) = &self.default {
            return Ok(&**h);
        }
        if let [(_, h)] = self.named.as_slice() {
            return Ok(&**h);
        }
        let names: Vec<&str> = self.named.iter().map(|(n, _)| n.as_str()).collect();
        Err(Diagnostic {
            error_type: UNKNOWN_FUNCTION_ERROR_TYPE.to_owned(),
            error_message: format!(
                "this binary hosts no durable function for the Lambda function {function_name:?} (registered: {})",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ),
        })
    }

    /// Handles one event for the Lambda function `function_name` (no deadline): the
    /// response to send, or the function error.
    pub async fn handle(&self, event: Value, function_name: &str) -> Result<Value, Diagnostic> {
        self.handle_invocation(event, &Invocation { function_name, function_arn: None, deadline: None }).await
    }

    /// Handles one event of the Lambda invocation `inv`: the response to send, or the
    /// function error.
    pub async fn handle_invocation(&self, event: Value, inv: &Invocation<'_>) -> Result<Value, Diagnostic> {
        let function_name = inv.function_name;
        match DurableEvent::parse(event)? {
            #[cfg(feature = "lambda-selfhosted")]
            DurableEvent::SelfHosted(event) => self.self_hosted_mode().await?.handle(self, inv, event).await,
            #[cfg(feature = "lambda-selfhosted")]
            DurableEvent::Sqs(messages) => {
                let mode = self.self_hosted_mode().await?;
                Ok(selfhosted::handle_sqs(&mode, self, inv, messages).await)
            }
            #[cfg(not(feature = "lambda-selfhosted"))]
            DurableEvent::SelfHosted(_) | DurableEvent::Sqs(_) => Err(Diagnostic {
                error_type: NOT_CONFIGURED_ERROR_TYPE.to_owned(),
                error_message: "this binary was built without self-hosted mode (the `lambda-selfhosted` feature): it \
                                serves only AWS's durable invocations"
                    .to_owned(),
            }),
            DurableEvent::Managed(input) => {
                let handler = self.handler_for(function_name)?;
                let checkpointer = match &self.checkpointer {
                    Some(c) => c.clone(),
                    None => Rc::new(ManagedCheckpointer::new(self.client().await)) as Rc<dyn Checkpointer>,
                };
                let output = invoke_managed(handler, *input, checkpointer).await?;
                serde_json::to_value(output).map_err(|e| Diagnostic {
                    error_type: RETRY_ERROR_TYPE.to_owned(),
                    error_message: format!("cannot serialise the invocation output: {e}"),
                })
            }
        }
    }

    /// Self-hosted mode, configured from the environment on first use.
    #[cfg(feature = "lambda-selfhosted")]
    async fn self_hosted_mode(&self) -> Result<Rc<SelfHosted>, Diagnostic> {
        let mode = self.self_hosted.get_or_init(|| async { SelfHosted::from_env().await.map(Rc::new) }).await;
        mode.clone().ok_or_else(|| Diagnostic {
            error_type: selfhosted::NOT_CONFIGURED_ERROR_TYPE.to_owned(),
            error_message: format!(
                "a self-hosted event needs a DynamoDB table: set {} (and {} for wake-ups) in the function's \
                 environment",
                selfhosted::TABLE_VAR,
                selfhosted::QUEUE_VAR
            ),
        })
    }

    /// The Lambda client, configured from the environment on first use (region,
    /// credentials, `AWS_ENDPOINT_URL_LAMBDA`).
    async fn client(&self) -> aws_sdk_lambda::Client {
        if let Some(c) = &self.lambda_client {
            return c.clone();
        }
        managed::client_from_env().await
    }

    /// Sets up logging ([`init_tracing`]) and serves invocations from the Lambda runtime
    /// API until the process is stopped.
    pub async fn run(mut self) -> Result<(), lambda_runtime::Error> {
        init_tracing();
        if self.lambda_client.is_none() && self.checkpointer.is_none() {
            // Once per process (a cold start), not per invocation.
            self.lambda_client = Some(self.client().await);
        }
        let this = Rc::new(self);
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            let this = this.clone();
            async move {
                let context = &event.context;
                let deadline = std::time::UNIX_EPOCH + std::time::Duration::from_millis(context.deadline);
                // A deadline that passed already is none at all (`cargo lambda watch` sends
                // such a one); Lambda's is always ahead.
                let deadline = (deadline > std::time::SystemTime::now()).then_some(deadline);
                let inv = Invocation {
                    function_name: &context.env_config.function_name,
                    function_arn: Some(&context.invoked_function_arn),
                    deadline,
                };
                this.handle_invocation(event.payload, &inv).await
            }
        }))
        .await
    }
}

/// Serves invocations of one durable function: the whole `main` of a Lambda binary.
///
/// ```no_run
/// # use durable_core::{DurableContext, Error, handler};
/// # async fn process_order(ctx: DurableContext, id: String) -> Result<String, Error> { Ok(id) }
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), durable_runtime::lambda::lambda_runtime::Error> {
///     durable_runtime::lambda::run(handler(process_order)).await
/// }
/// ```
pub async fn run(handler: impl Handler) -> Result<(), lambda_runtime::Error> {
    Functions::new().handler(handler).run().await
}

/// Installs the `tracing` subscriber Lambda expects, unless one is installed already:
/// stdout, JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, the level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG` (full directives), else `INFO`. No timestamps:
/// Lambda stamps every line.
pub fn init_tracing() {
    use lambda_runtime::tracing::subscriber::{EnvFilter, fmt};

    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let filter = match std::env::var("AWS_LAMBDA_LOG_LEVEL") {
        Ok(level) => EnvFilter::new(level.to_lowercase()),
        Err(_) => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = fmt().with_env_filter(filter).with_target(false).without_time().with_writer(std::io::stdout);
    // An error means the application installed its own subscriber first: keep it.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// An AWS SDK error and its sources, on one line (the SDK's own `Display` says only
/// "service error").
pub(crate) fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests;
