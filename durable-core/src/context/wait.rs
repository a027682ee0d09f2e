//! `wait`: a durable timer. The execution suspends and resumes when it is due.

use std::future::IntoFuture;
use std::time::Duration;

use futures::future::LocalBoxFuture;

use super::step::MAX_DELAY_SECONDS;
use super::{DurableContext, Name, OpIdent};
use crate::engine::{Expect, park};
use crate::error::{Error, ErrorKind};
use crate::model::{
    ErrorObject, OperationAction, OperationStatus, OperationType, OperationUpdate, SubType, WaitOptions,
};

/// A durable wait, ready to be awaited. Created by [`DurableContext::wait`].
#[must_use = "a wait does nothing until it is awaited"]
pub struct Wait {
    ctx: DurableContext,
    op: OpIdent,
    name: Name,
    duration: Duration,
}

impl DurableContext {
    /// Waits for `duration` durably: the execution suspends (nothing runs, nothing is
    /// billed on Lambda) and resumes when the time is up, even across process restarts.
    ///
    /// The protocol counts whole seconds from 1 to 31,622,400 (366 days); a fractional
    /// duration is rounded up, and a zero or longer duration is a validation error before
    /// anything is checkpointed.
    pub fn wait(&self, name: impl Into<Name>, duration: Duration) -> Wait {
        Wait { ctx: self.clone(), op: self.next_op(), name: name.into(), duration }
    }
}

impl Wait {
    fn seconds(&self) -> Result<u32, Error> {
        let d = self.duration;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if secs == 0 || secs > MAX_DELAY_SECONDS {
            return Err(Error::validation(format!(
                "wait {} lasts {d:?}; a wait lasts 1 to {MAX_DELAY_SECONDS} seconds",
                self.name.as_deref().unwrap_or("(unnamed)")
            )));
        }
        Ok(secs as u32)
    }

    async fn run(self) -> Result<(), Error> {
        let engine = self.ctx.engine.clone();
        self.name.validate().map_err(Error::validation)?;
        let seconds = self.seconds()?;
        let expect = Expect {
            op_type: OperationType::Wait,
            sub_type: SubType::WAIT,
            name: self.name.as_deref(),
            parent_id: self.ctx.scope.parent_id.as_deref(),
        };
        let Ok(recorded) = engine.visit(&self.op.id, &expect, &|| self.op.site.describe("wait")) else {
            return park().await;
        };
        match recorded.map(|op| op.status) {
            Some(OperationStatus::Succeeded) => return Ok(()),
            Some(
                status @ (OperationStatus::Cancelled
                | OperationStatus::Failed
                | OperationStatus::TimedOut
                | OperationStatus::Stopped),
            ) => {
                return Err(Error::from_object(
                    ErrorKind::WaitCancelled,
                    ErrorObject::new("WaitCancelledError", format!("the wait ended {status} before its time")),
                ));
            }
            Some(_) => {}
            None => {
                let mut u = OperationUpdate::new(self.op.id.clone(), OperationType::Wait, OperationAction::Start)
                    .placed(self.ctx.scope.parent_id.clone(), self.name.shared(), SubType::new(SubType::WAIT));
                u.wait_options = Some(WaitOptions { wait_seconds: Some(seconds) });
                engine.enqueue_sync(u).await;
                if engine.with_operation(&self.op.id, |op| op.is_some_and(|o| o.status == OperationStatus::Succeeded)) {
                    return Ok(());
                }
            }
        }
        match engine.blocked().await {}
    }
}

impl IntoFuture for Wait {
    type Output = Result<(), Error>;
    type IntoFuture = LocalBoxFuture<'static, Result<(), Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
