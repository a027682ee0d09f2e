//! Simulated process crashes, for the requirements whose handler ends the Lambda process
//! mid-step (`process.exit`): 1-17, 1-18, 3-12.
//!
//! A handler calls [`exit_process`]; the driver lets the invocation run on briefly, as a
//! process keeps running until the exit takes effect (so checkpoints already in flight
//! land), then drops it without an outcome and reports the invocation to the service as
//! crashed with `Runtime.ExitError`, which is what Lambda records.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static REQUESTED: Cell<bool> = const { Cell::new(false) };
    static CRASHES: Cell<u32> = const { Cell::new(0) };
}

/// Ends the "process": the invocation stops here and never returns.
pub async fn exit_process<T>() -> T {
    REQUESTED.set(true);
    std::future::pending().await
}

/// How many simulated crashes this execution has had so far: a handler that must crash only
/// once (as one keeping a marker in a database would) checks it.
pub fn crashes_so_far() -> u32 {
    CRASHES.get()
}

/// Forgets earlier crashes; called before each requirement runs.
pub fn reset() {
    REQUESTED.set(false);
    CRASHES.set(0);
}

/// How an invocation future ended.
pub enum Ended<T> {
    /// It finished with this output.
    Finished(T),
    /// The handler exited the process.
    Crashed,
}

/// Polls after a crash request before the invocation is dropped: enough for checkpoints
/// already on their way to the in-memory service to land.
const POLLS_AFTER_EXIT: u32 = 64;

/// Runs `inner` until it finishes or the handler exits the process.
pub struct CrashAware<F> {
    inner: Pin<Box<F>>,
    polls_left: u32,
}

impl<F: Future> CrashAware<F> {
    /// Wraps an invocation.
    pub fn new(inner: F) -> Self {
        REQUESTED.set(false);
        CrashAware { inner: Box::pin(inner), polls_left: POLLS_AFTER_EXIT }
    }
}

impl<F: Future> Future for CrashAware<F> {
    type Output = Ended<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(out) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(Ended::Finished(out));
        }
        if !REQUESTED.get() {
            return Poll::Pending;
        }
        if self.polls_left == 0 {
            REQUESTED.set(false);
            CRASHES.set(CRASHES.get() + 1);
            return Poll::Ready(Ended::Crashed);
        }
        self.polls_left -= 1;
        // The exiting body never wakes anyone: keep polling until the budget is spent.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_ends_the_future_after_in_flight_work_lands() {
        reset();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let landed = std::rc::Rc::new(Cell::new(false));
        let flag = landed.clone();
        let ended = rt.block_on(CrashAware::new(async move {
            let io = async {
                tokio::task::yield_now().await;
                flag.set(true);
            };
            futures::join!(io, exit_process::<()>());
        }));
        assert!(matches!(ended, Ended::Crashed));
        assert!(landed.get(), "work in flight when the process exits still lands");
        assert_eq!(crashes_so_far(), 1);
        let ended = rt.block_on(CrashAware::new(async { 7 }));
        assert!(matches!(ended, Ended::Finished(7)));
        reset();
        assert_eq!(crashes_so_far(), 0);
    }
}
