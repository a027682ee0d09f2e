//! `patched`: versioning code that executions in flight are still replaying.

use std::future::Future;

use super::{DurableContext, Name};
use crate::engine::{Call, Lifecycle, Next, Outcome, drive};
use crate::error::Error;
use crate::model::{Operation, OperationType};

/// The sub-type of the STEP operation that marks a patch as taken.
pub const PATCH_SUB_TYPE: &str = "Patch";

impl DurableContext {
    /// Whether this execution takes the code path of change `change_id`.
    ///
    /// Changing the operations a durable function calls breaks executions in flight:
    /// their replay finds a different history than the code calls. `patched` lets old and
    /// new executions each keep their own path:
    ///
    /// - an execution that reaches this call for the first time, past its recorded
    ///   history, records a marker (a STEP operation, sub-type `Patch`, named
    ///   `change_id`) and gets `true`: it takes the new path, now and on every replay;
    /// - an execution that recorded the marker gets `true` on replay;
    /// - an execution that is still replaying history recorded before the change (the old
    ///   code ran here, so no marker) gets `false`, records nothing, and keeps the old
    ///   path.
    ///
    /// Once no execution started before the change is left, delete the old branch; the
    /// `patched` call can stay (it costs one small record per execution) or go (a recorded
    /// marker nobody visits is ignored).
    ///
    /// ```
    /// use durable_core::{DurableContext, Error};
    ///
    /// async fn ship(ctx: DurableContext, order: String) -> Result<String, Error> {
    ///     if ctx.patched("use-new-carrier").await? {
    ///         ctx.step("book carrier v2", async |_| Ok(format!("v2:{order}"))).await
    ///     } else {
    ///         ctx.step("book carrier", async |_| Ok(format!("v1:{order}"))).await
    ///     }
    /// }
    /// ```
    pub fn patched(&self, change_id: &str) -> impl Future<Output = Result<bool, Error>> + 'static {
        let call = self.call("patched", OperationType::Step, PATCH_SUB_TYPE, Name::from(change_id));
        async move {
            let engine = call.engine().clone();
            if !engine.is_recorded(&call.id) && engine.is_replaying(call.parent_id()) {
                // History recorded before this call existed: the old path. Not visited,
                // so the context keeps replaying the old operations.
                return Ok(false);
            }
            drive(Patch { call }).await
        }
    }
}

/// A patch marker's lifecycle: recorded (START and SUCCEED, sent with the next batch) the
/// first time an execution takes the new path.
struct Patch {
    call: Call,
}

impl Lifecycle for Patch {
    type Output = bool;

    fn call(&self) -> &Call {
        &self.call
    }

    fn validate(&mut self) -> Result<(), Error> {
        crate::model::validate_name(self.call.label()).map_err(|e| Error::validation(format!("patch id: {e}")))
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<bool> {
        match recorded {
            None => Next::Start { ack: false, attempt: 0 },
            Some(_) => Next::Return(Ok(true)),
        }
    }

    async fn work(&mut self, _: u32) -> Outcome<bool> {
        Outcome::Succeed { value: true, payload: Some("true".to_owned()), replay_children: false, ack: false }
    }
}
