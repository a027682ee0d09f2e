//! Managed mode: AWS Lambda's own durable executions. The service keeps the journal; the
//! function checkpoints through `CheckpointDurableExecution` and pages its state with
//! `GetDurableExecutionState` (aws-sdk-lambda).

use std::rc::Rc;

use async_trait::async_trait;
use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use durable_core::Handler;
use durable_core::checkpoint::{CheckpointError, Checkpointer, Limits};
use durable_core::engine::{InvocationOutcome, run_invocation};
use durable_core::model::{
    CheckpointDurableExecutionResponse, DurableExecutionInvocationInput, DurableExecutionInvocationOutput, ErrorObject,
    ExecutionState, OperationUpdate,
};
use lambda_runtime::Diagnostic;

use super::convert::{state_from_sdk, update_to_sdk};
use super::describe;

/// The page size asked of `GetDurableExecutionState` (the API's maximum, as AWS's SDKs ask).
const STATE_PAGE_ITEMS: i32 = 1000;

/// The error type of a Lambda error that asks the service to retry the invocation.
pub const RETRY_ERROR_TYPE: &str = "Durable.InvocationRetry";

/// The error codes AWS's SDKs never retry even though the service sends them as 5xx: the
/// customer must fix the KMS key.
const NON_RETRYABLE_CODES: [&str; 4] =
    ["KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException"];

/// The prefix of the message of a stale-token `InvalidParameterValueException`.
const INVALID_TOKEN_PREFIX: &str = "Invalid checkpoint token";

/// A [`Checkpointer`] over AWS Lambda's checkpoint API (managed mode).
///
/// Each call carries a fresh `ClientToken`, so the SDK's own retries of a request whose
/// response was lost are answered from the service's idempotency cache instead of being
/// rejected for a consumed token.
#[derive(Debug, Clone)]
pub struct ManagedCheckpointer {
    client: aws_sdk_lambda::Client,
}

impl ManagedCheckpointer {
    /// Checkpoints through `client` (its endpoint, region and credentials: for the local
    /// emulator, set `AWS_ENDPOINT_URL_LAMBDA`).
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        ManagedCheckpointer { client }
    }

    /// Checkpoints through a client configured from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL_LAMBDA`), as Lambda's runtime sets it.
    pub async fn from_env() -> Self {
        ManagedCheckpointer::new(client_from_env().await)
    }
}

/// A Lambda client configured from the environment.
pub(crate) async fn client_from_env() -> aws_sdk_lambda::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_lambda::Client::new(&config)
}

#[async_trait(?Send)]
impl Checkpointer for ManagedCheckpointer {
    async fn checkpoint(
        &self,
        arn: &str,
        token: &str,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointDurableExecutionResponse, CheckpointError> {
        let updates = updates
            .into_iter()
            .map(update_to_sdk)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| CheckpointError::Rejected(ErrorObject::new("InvalidOperationUpdate", m)))?;
        let out = self
            .client
            .checkpoint_durable_execution()
            .durable_execution_arn(arn)
            .checkpoint_token(token)
            .set_updates(Some(updates))
            .client_token(uuid::Uuid::new_v4().simple().to_string())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let new_execution_state = match out.new_execution_state {
            Some(s) => state_from_sdk(s.operations.unwrap_or_default(), s.next_marker).map_err(|m| malformed(&m))?,
            None => ExecutionState::default(),
        };
        Ok(CheckpointDurableExecutionResponse { checkpoint_token: out.checkpoint_token, new_execution_state })
    }

    async fn get_state(&self, arn: &str, token: &str, marker: &str) -> Result<ExecutionState, CheckpointError> {
        let out = self
            .client
            .get_durable_execution_state()
            .durable_execution_arn(arn)
            .checkpoint_token(token)
            .marker(marker)
            .max_items(STATE_PAGE_ITEMS)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        state_from_sdk(out.operations, out.next_marker).map_err(|m| malformed(&m))
    }

    fn limits(&self) -> Limits {
        Limits::AWS
    }
}

/// A response durable cannot read (an enum value newer than this SDK): retrying the
/// invocation is all that can help, perhaps on a newer deployment.
fn malformed(message: &str) -> CheckpointError {
    CheckpointError::Retryable(format!("unreadable response from the Lambda API: {message}"))
}

/// AWS's rules (the Python SDK's `_classify_error_category`, REFERENCE-AWS.md 2.2): KMS
/// errors and 4xx answers fail the execution (`Rejected`), except throttling (429) and a
/// stale checkpoint token; those, 5xx answers and everything that got no answer (network,
/// timeouts) end the invocation with an error so that the service retries it
/// (`Retryable`).
///
/// A stale token (`InvalidParameterValueException: Invalid checkpoint token...`) is
/// retryable rather than [`CheckpointError::InvalidToken`]: the next invocation gets a
/// fresh token and replays what this one had acknowledged, whereas ending this one
/// `PENDING` could leave an execution that waits on nothing. A checkpoint response
/// *without* a token, AWS's way of revoking it, still ends the invocation `PENDING` (the
/// engine's rule).
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>) -> CheckpointError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or("");
            let message = ctx.err().message().unwrap_or("");
            classify_answer(status, code, message)
        }
        SdkError::ConstructionFailure(_) => {
            CheckpointError::Rejected(ErrorObject::new("InvalidRequest", describe(err)))
        }
        _ => CheckpointError::Retryable(describe(err)),
    }
}

/// [`classify`] for an answer with a status, an error code and a message.
pub(crate) fn classify_answer(status: u16, code: &str, message: &str) -> CheckpointError {
    let text = if message.is_empty() { format!("{code} (HTTP {status})") } else { format!("{code}: {message}") };
    let stale_token = code == "InvalidParameterValueException" && message.starts_with(INVALID_TOKEN_PREFIX);
    if NON_RETRYABLE_CODES.contains(&code) || ((400..500).contains(&status) && status != 429 && !stale_token) {
        let error_type = if code.is_empty() { format!("HTTP{status}") } else { code.to_owned() };
        return CheckpointError::Rejected(ErrorObject::new(error_type, text));
    }
    CheckpointError::Retryable(text)
}

/// Runs one managed invocation of `handler` and turns its outcome into the function's
/// response: the `SUCCEEDED` / `FAILED` / `PENDING` output, or an error (a Lambda function
/// error) when a checkpoint failed transiently, so that the service retries the invocation.
pub async fn invoke_managed(
    handler: &dyn Handler,
    input: DurableExecutionInvocationInput,
    checkpointer: Rc<dyn Checkpointer>,
) -> Result<DurableExecutionInvocationOutput, Diagnostic> {
    let arn = input.durable_execution_arn.clone();
    match run_invocation(handler, input, checkpointer).await {
        InvocationOutcome::Output(output) => {
            tracing::debug!(execution_arn = %arn, status = %output.status, "durable invocation ended");
            Ok(output)
        }
        InvocationOutcome::Revoked(message) => {
            tracing::warn!(execution_arn = %arn, "checkpoint token revoked, ending the invocation PENDING: {message}");
            Ok(DurableExecutionInvocationOutput::pending())
        }
        InvocationOutcome::Retry(message) => {
            tracing::warn!(execution_arn = %arn, "checkpoint failed, the invocation will be retried: {message}");
            Err(Diagnostic { error_type: RETRY_ERROR_TYPE.to_owned(), error_message: message })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: &CheckpointError) -> &'static str {
        match e {
            CheckpointError::Retryable(_) => "retry",
            CheckpointError::InvalidToken(_) => "token",
            CheckpointError::Rejected(_) => "reject",
        }
    }

    #[test]
    fn errors_are_classified_as_aws_sdks_do() {
        let table = [
            (500, "ServiceException", "boom", "retry"),
            (503, "", "", "retry"),
            (429, "TooManyRequestsException", "slow down", "retry"),
            (400, "InvalidParameterValueException", "Invalid checkpoint token: seq 3", "retry"),
            (400, "InvalidParameterValueException", "Invalid Checkpoint Token", "reject"),
            (400, "InvalidParameterValueException", "STEP output payload size must be less than", "reject"),
            (404, "ResourceNotFoundException", "no such execution", "reject"),
            (403, "AccessDeniedException", "not allowed", "reject"),
            (502, "KMSDisabledException", "key disabled", "reject"),
            (400, "KMSNotFoundException", "", "reject"),
        ];
        for (status, code, message, want) in table {
            let got = classify_answer(status, code, message);
            assert_eq!(kind(&got), want, "{status} {code} {message}: {got}");
        }
        let CheckpointError::Rejected(e) = classify_answer(404, "ResourceNotFoundException", "gone") else {
            panic!("rejected")
        };
        assert_eq!(e, ErrorObject::new("ResourceNotFoundException", "ResourceNotFoundException: gone"));
        let CheckpointError::Rejected(e) = classify_answer(413, "", "") else { panic!("rejected") };
        assert_eq!(e.error_type.as_deref(), Some("HTTP413"));
    }
}
