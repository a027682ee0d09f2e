//! Checkpoint tokens: `<execution id>.<invocation>.<sequence>`. Tokens fence, they do not
//! authenticate: the invocation number fences off older invocations (a runner that gave
//! up on one and began another), and the sequence number refuses a token used twice (a
//! checkpoint sent again after its answer was lost would otherwise be applied twice).

use super::error::ServiceError;
use super::state::ExecState;

/// The token of checkpoint `seq` of invocation `invocation`.
pub(super) fn encode(execution_id: &str, invocation: u64, seq: u64) -> String {
    format!("{execution_id}.{invocation}.{seq}")
}

/// The execution id, invocation and sequence of a well-formed token.
fn decode(token: &str) -> Option<(&str, u64, u64)> {
    let mut parts = token.rsplitn(3, '.');
    let seq = parts.next()?.parse().ok()?;
    let invocation = parts.next()?.parse().ok()?;
    Some((parts.next()?, invocation, seq))
}

/// Whether `token` lets its holder act for the execution's current invocation. `latest`
/// also wants the token not used yet: a checkpoint consumes its token, reading the state
/// and ending the invocation do not.
pub(super) fn check(state: &ExecState, arn: &str, token: &str, latest: bool) -> Result<(), ServiceError> {
    let (execution_id, invocation, seq) =
        decode(token).ok_or_else(|| ServiceError::InvalidToken("the token is malformed".to_owned()))?;
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
    if latest && seq != state.record.checkpoint_seq {
        return Err(ServiceError::InvalidToken(format!(
            "the token was already used (sequence {seq}, expected {})",
            state.record.checkpoint_seq
        )));
    }
    Ok(())
}
