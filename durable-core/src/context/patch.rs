//! `patched`: versioning code that executions in flight are still replaying.

use std::future::Future;

use super::DurableContext;
use crate::engine::{Expect, park};
use crate::error::Error;
use crate::model::{OperationAction, OperationType, OperationUpdate, SubType};

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
    ///         ctx.step("book carrier v2", async |_| Ok::<_, Error>(format!("v2:{order}"))).await
    ///     } else {
    ///         ctx.step("book carrier", async |_| Ok::<_, Error>(format!("v1:{order}"))).await
    ///     }
    /// }
    /// ```
    pub fn patched(&self, change_id: &str) -> impl Future<Output = Result<bool, Error>> + 'static {
        let ctx = self.clone();
        let op = self.next_op();
        let change_id: std::sync::Arc<str> = change_id.into();
        async move {
            let engine = ctx.engine.clone();
            crate::model::validate_name(&change_id).map_err(|e| Error::validation(format!("patch id: {e}")))?;
            let parent = ctx.scope.parent_id.clone();
            if !engine.is_recorded(&op.id) && engine.is_replaying(parent.as_deref()) {
                // History recorded before this call existed: the old path. Not visited,
                // so the context keeps replaying the old operations.
                return Ok(false);
            }
            let expect = Expect {
                op_type: OperationType::Step,
                sub_type: PATCH_SUB_TYPE,
                name: Some(&change_id),
                parent_id: parent.as_deref(),
            };
            let Ok(recorded) = engine.visit(&op.id, &expect, &|| op.site.describe("patched")) else {
                return park().await;
            };
            if recorded.is_none() {
                for action in [OperationAction::Start, OperationAction::Succeed] {
                    let mut u = OperationUpdate::new(op.id.clone(), OperationType::Step, action).placed(
                        parent.clone(),
                        Some(change_id.clone()),
                        SubType::new(PATCH_SUB_TYPE),
                    );
                    if action == OperationAction::Succeed {
                        u.payload = Some("true".into());
                    }
                    engine.enqueue(u);
                }
            }
            Ok(true)
        }
    }
}
