//! Group commit, led by the writers themselves, for any store whose writes cost one sync
//! each: concurrent writers share one transaction and one sync.
//!
//! A write is queued; if no write is being led, its caller becomes the leader: it yields
//! once to the runtime (so tasks that are ready to write right now queue behind it), then
//! hands every queued write (up to the group limits) to the [`GroupWriter`] as one group,
//! and leads groups until the queue is empty. The writer answers each write of a group:
//! a refused write (a conflict, a duplicate) at once, the accepted ones when the group is
//! durable. A lone write waits for nobody and crosses no thread: the leader does the I/O
//! on its own thread, which on small virtual machines saves two cross-CPU wake-ups per
//! commit compared with a dedicated writer thread (see the embedded store's `writer.rs`,
//! which has the same shape with its own copy of this loop).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// Writes groups of writes, each group as one durable unit (one transaction, one sync).
pub(crate) trait GroupWriter: Send {
    /// One write, prepared (serialised) by its caller.
    type Write: Send;

    /// Roughly how many bytes a write adds to a group, for [`GroupLimits::max_bytes`].
    fn size(write: &Self::Write) -> usize;

    /// Writes a group and answers every write in it, each exactly once.
    fn write_group(&mut self, group: Vec<Queued<Self::Write>>);
}

/// How large a group may grow. A single write larger than the limits still goes alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupLimits {
    /// At most this many writes.
    pub(crate) max_writes: usize,
    /// Stop adding writes once the group holds this many bytes.
    pub(crate) max_bytes: usize,
}

/// A queued write and the way to answer its caller.
pub(crate) struct Queued<W> {
    pub(crate) write: W,
    pub(crate) answer: Answer,
}

/// Answers one write's caller.
pub(crate) struct Answer(oneshot::Sender<StoreResult<()>>);

impl Answer {
    /// Sends the write's result (a caller that went away is not an error).
    pub(crate) fn send(self, result: StoreResult<()>) {
        let _ = self.0.send(result);
    }
}

struct Queue<W> {
    writes: VecDeque<(Queued<W>, usize)>,
    leading: bool,
}

/// The queue of writes and the writer its leaders use.
pub(crate) struct GroupCommit<G: GroupWriter> {
    queue: Mutex<Queue<G::Write>>,
    writer: Mutex<G>,
    limits: GroupLimits,
}

impl<G: GroupWriter> GroupCommit<G> {
    /// Group commit over `writer`.
    pub(crate) fn new(writer: G, limits: GroupLimits) -> Self {
        GroupCommit {
            queue: Mutex::new(Queue { writes: VecDeque::new(), leading: false }),
            writer: Mutex::new(writer),
            limits: GroupLimits { max_writes: limits.max_writes.max(1), max_bytes: limits.max_bytes.max(1) },
        }
    }

    /// Writes `write` in the next group (leading it if no one is) and returns its answer.
    pub(crate) async fn submit(&self, write: G::Write) -> StoreResult<()> {
        let (tx, rx) = oneshot::channel();
        let size = G::size(&write);
        let lead = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.writes.push_back((Queued { write, answer: Answer(tx) }, size));
            !std::mem::replace(&mut q.leading, true)
        };
        if lead {
            // First let the tasks that are ready to write now queue behind this one (a lone
            // writer gets control back at once), then write their group.
            let mut guard = LeadOnDrop(Some(self));
            tokio::task::yield_now().await;
            guard.0 = None;
            self.lead();
        }
        rx.await.map_err(|_| StoreError::backend("the store dropped a write before answering it", false))?
    }

    /// Runs `f` on the writer between two groups.
    #[cfg(test)]
    pub(crate) fn with_writer<R>(&self, f: impl FnOnce(&mut G) -> R) -> R {
        f(&mut self.writer.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes groups until the queue is empty, then gives up the lead.
    fn lead(&self) {
        let _release = ReleaseOnPanic(self);
        loop {
            let group = {
                let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if q.writes.is_empty() {
                    q.leading = false;
                    return;
                }
                let mut bytes = 0;
                let mut group = Vec::new();
                while let Some((_, size)) = q.writes.front() {
                    if !group.is_empty() && (group.len() >= self.limits.max_writes || bytes >= self.limits.max_bytes) {
                        break;
                    }
                    bytes += size;
                    group.push(q.writes.pop_front().expect("front exists").0);
                }
                group
            };
            self.writer.lock().unwrap_or_else(PoisonError::into_inner).write_group(group);
        }
    }
}

/// Leads on drop if its owner could not (its future was dropped mid-yield): queued writes
/// are never stranded without a leader.
struct LeadOnDrop<'a, G: GroupWriter>(Option<&'a GroupCommit<G>>);

impl<G: GroupWriter> Drop for LeadOnDrop<'_, G> {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.lead();
        }
    }
}

/// If the writer panics, fails the writes still queued (their callers get an error instead
/// of waiting forever) and gives up the lead, so the next write leads again.
struct ReleaseOnPanic<'a, G: GroupWriter>(&'a GroupCommit<G>);

impl<G: GroupWriter> Drop for ReleaseOnPanic<'_, G> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut q = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
            for (w, _) in q.writes.drain(..) {
                w.answer.send(Err(StoreError::backend("the store's writer panicked", false)));
            }
            q.leading = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Records the groups; refuses odd writes.
    #[derive(Default)]
    struct Recorder {
        groups: Vec<Vec<u32>>,
    }

    impl GroupWriter for Recorder {
        type Write = u32;
        fn size(_: &u32) -> usize {
            1
        }
        fn write_group(&mut self, group: Vec<Queued<u32>>) {
            assert!(group.iter().all(|q| q.write != 99), "a poisoned write");
            self.groups.push(group.iter().map(|q| q.write).collect());
            for q in group {
                let odd = q.write % 2 == 1;
                q.answer.send(if odd { Err(StoreError::Conflict(q.write.to_string())) } else { Ok(()) });
            }
        }
    }

    #[tokio::test]
    async fn concurrent_writes_share_groups_and_get_their_own_answers() {
        let c = GroupCommit::new(Recorder::default(), GroupLimits { max_writes: 4, max_bytes: 100 });
        let results = futures::future::join_all((0..10).map(|i| c.submit(i))).await;
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_ok(), i % 2 == 0, "{i}: {r:?}");
        }
        let groups = c.with_writer(|w| w.groups.clone());
        assert_eq!(groups.concat(), (0..10).collect::<Vec<_>>(), "every write once, in order");
        assert!(groups.len() < 10 && groups.iter().all(|g| g.len() <= 4), "{groups:?}");
    }

    #[tokio::test]
    async fn a_panicking_writer_fails_its_writes_and_releases_the_lead() {
        let c = Arc::new(GroupCommit::new(Recorder::default(), GroupLimits { max_writes: 1, max_bytes: 1 }));
        let c2 = Arc::clone(&c);
        let r = tokio::spawn(async move { c2.submit(99).await }).await;
        assert!(r.is_err(), "the leader's task panicked");
        assert!(c.submit(2).await.is_ok(), "the next write leads again");
    }
}
