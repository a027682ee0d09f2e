//! Stack room for code that nests without bound.
//!
//! A child context's code runs inside its parent's future: polling (and dropping) an
//! execution whose child contexts nest `n` deep goes `n` frames deep. A workflow that
//! recurses through child contexts would overflow the thread's stack (at about 800 levels
//! in a debug build on a 2 MiB thread), and every replay would crash the same way.
//! [`Deep`] polls and drops its future on a fresh stack segment whenever the current one
//! runs low, so nesting is bounded by memory, not by the thread's stack.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Room left on the stack below which a new segment is taken: more than the frames of
/// one level of nesting (a few KiB in a debug build) plus what the code inside needs.
const RED_ZONE: usize = 256 * 1024;
/// The size of each new segment.
const SEGMENT: usize = 2 * 1024 * 1024;

/// A future polled and dropped with stack room (see the module docs).
pub(crate) struct Deep<F>(Option<F>);

impl<F> Deep<F> {
    pub(crate) fn new(inner: F) -> Self {
        Deep(Some(inner))
    }
}

impl<F: Future + Unpin> Future for Deep<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.0.as_mut().expect("polled after drop");
        stacker::maybe_grow(RED_ZONE, SEGMENT, || Pin::new(inner).poll(cx))
    }
}

impl<F> Drop for Deep<F> {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            stacker::maybe_grow(RED_ZONE, SEGMENT, || drop(inner));
        }
    }
}
