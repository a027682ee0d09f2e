//! `wait`: a durable timer. The execution suspends and resumes when it is due.

use std::future::IntoFuture;
use std::time::Duration;

use futures::future::LocalBoxFuture;

use super::{DurableContext, Name};
use crate::engine::{Call, Lifecycle, Next, drive};
use crate::error::{Error, ErrorKind};
use crate::model::{
    ErrorObject, MAX_DELAY_SECONDS, Operation, OperationStatus, OperationType, OperationUpdate, SubType, WaitOptions,
};

/// A durable wait, ready to be awaited. Created by [`DurableContext::wait`].
#[must_use = "a wait does nothing until it is awaited"]
pub struct Wait {
    call: Call,
    duration: Duration,
    seconds: u32,
}

impl DurableContext {
    /// Waits for `duration` durably: the execution suspends (nothing runs, nothing is
    /// billed on Lambda) and resumes when the time is up, even across process restarts.
    ///
    /// The protocol counts whole seconds, from 1 to 31,622,400 (366 days). Any other
    /// duration (shorter than a second, longer than that, or with a fraction of a second)
    /// is a validation error when the wait is awaited, before anything is checkpointed:
    /// nothing is rounded behind your back.
    pub fn wait(&self, name: impl Into<Name>, duration: Duration) -> Wait {
        Wait { call: self.call("wait", OperationType::Wait, SubType::WAIT, name.into()), duration, seconds: 0 }
    }
}

impl Lifecycle for Wait {
    type Output = ();

    fn call(&self) -> &Call {
        &self.call
    }

    fn validate(&mut self) -> Result<(), Error> {
        let d = self.duration;
        if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > u64::from(MAX_DELAY_SECONDS) {
            return Err(Error::validation(format!(
                "wait {} lasts {d:?}; a wait lasts a whole number of seconds, from 1 to {MAX_DELAY_SECONDS} \
                 (Duration::from_secs)",
                self.call.label()
            )));
        }
        self.seconds = d.as_secs() as u32;
        Ok(())
    }

    fn resume(&mut self, recorded: Option<Operation>) -> Next<()> {
        match recorded.map(|op| op.status) {
            None => Next::Start { ack: true, attempt: 0 },
            Some(OperationStatus::Succeeded) => Next::Return(Ok(())),
            Some(
                status @ (OperationStatus::Cancelled
                | OperationStatus::Failed
                | OperationStatus::TimedOut
                | OperationStatus::Stopped),
            ) => Next::Return(Err(Error::from_object(
                ErrorKind::WaitCancelled,
                ErrorObject::new("WaitCancelledError", format!("the wait ended {status} before its time")),
            ))),
            Some(_) => Next::Suspend,
        }
    }

    fn start(&self, update: &mut OperationUpdate) {
        update.wait_options = Some(WaitOptions { wait_seconds: Some(self.seconds) });
    }

    fn started(&mut self, current: Option<&Operation>, _: u32) -> Next<()> {
        if current.is_some_and(|o| o.status == OperationStatus::Succeeded) {
            Next::Return(Ok(()))
        } else {
            Next::Suspend
        }
    }
}

impl IntoFuture for Wait {
    type Output = Result<(), Error>;
    type IntoFuture = LocalBoxFuture<'static, Result<(), Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(drive(self))
    }
}
