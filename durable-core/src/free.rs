//! Freeing large values off the path that waits for an answer.
//!
//! Freeing the state of a 100,000-step execution takes tens of milliseconds (hundreds of
//! thousands of allocations). When an execution finishes, the service and the embedded
//! store each let go of theirs; doing that on the thread that answers the caller would add
//! those milliseconds to the last checkpoint of every long execution.

/// Drops `value` on a short-lived thread of its own when `large`; here otherwise (and when
/// no thread can be started).
pub(crate) fn free<T: Send + 'static>(value: T, large: bool) {
    if !large {
        return;
    }
    // On failure the closure, and `value` with it, is dropped here.
    let spawned = std::thread::Builder::new().name("durable-free".into()).spawn(move || drop(value));
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "could not start a thread to free a finished execution's state");
    }
}

/// What counts as large: this many operations or more.
pub(crate) const LARGE_OPERATIONS: usize = 10_000;
