//! The writer thread: group commit.
//!
//! It takes the first queued write, then every write already queued behind it (up to the
//! group limits), checks each against the state plus the group's earlier members, answers
//! the refused ones at once, appends the accepted ones with one write and one `fdatasync`,
//! and only then applies them to the in-memory state and acknowledges them. A lone write
//! waits for nobody.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::oneshot;

use super::Stats;
use super::format::{Body, push_frame};
use super::journal::Journal;
use super::state::{Pending, State};
use crate::clock::Clock;
use crate::store::{Commit, NewExecution, StoreError, StoreResult};

/// What the writer thread is asked to do.
pub(super) enum Request {
    /// Create an execution or commit to one.
    Write(Box<Write>),
    /// Compact the journal now.
    Compact(oneshot::Sender<StoreResult<()>>),
}

/// One write, serialised by the caller.
pub(super) struct Write {
    pub(super) op: WriteOp,
    pub(super) body: Body,
    pub(super) reply: oneshot::Sender<StoreResult<()>>,
}

pub(super) enum WriteOp {
    Create(NewExecution),
    Commit(Commit),
}

/// How large a group may grow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_writes: usize,
    pub(super) max_bytes: usize,
}

pub(super) struct Writer {
    pub(super) journal: Journal,
    pub(super) state: Arc<RwLock<State>>,
    pub(super) limits: Limits,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) stats: Arc<Stats>,
}

impl Writer {
    /// Serves requests until every sender is gone (the store was dropped).
    pub(super) fn run(mut self, requests: &Receiver<Request>) {
        let mut next = None;
        loop {
            let first = match next.take() {
                Some(r) => r,
                None => match requests.recv() {
                    Ok(r) => r,
                    Err(_) => return,
                },
            };
            match first {
                Request::Compact(reply) => {
                    let result = self.journal.compact(&self.state, self.clock.now());
                    let _ = reply.send(result);
                }
                Request::Write(w) => {
                    let mut bytes = w.body.len();
                    let mut group = vec![*w];
                    while group.len() < self.limits.max_writes && bytes < self.limits.max_bytes {
                        match requests.try_recv() {
                            Ok(Request::Write(w)) => {
                                bytes += w.body.len();
                                group.push(*w);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group);
                    self.compact_if_due();
                }
            }
        }
    }

    fn compact_if_due(&mut self) {
        let live = self.state.read().unwrap_or_else(PoisonError::into_inner).live_bytes();
        if self.journal.should_compact(live)
            && let Err(e) = self.journal.compact(&self.state, self.clock.now())
        {
            tracing::warn!(error = %e, "the embedded store could not compact its journal");
        }
    }

    fn commit_group(&mut self, group: Vec<Write>) {
        if let Some(why) = self.journal.poisoned() {
            for w in group {
                let _ = w.reply.send(Err(self.journal.poisoned_error(why)));
            }
            return;
        }

        let verdicts: Vec<StoreResult<()>> = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            let mut pending = Pending::default();
            group
                .iter()
                .map(|w| match &w.op {
                    WriteOp::Create(new) => state.check_create(new, &mut pending),
                    WriteOp::Commit(commit) => state.check_commit(commit, &mut pending),
                })
                .collect()
        };
        let mut accepted = Vec::with_capacity(group.len());
        for (w, verdict) in group.into_iter().zip(verdicts) {
            match verdict {
                Ok(()) => accepted.push(w),
                Err(e) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = w.reply.send(Err(e));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }

        if let Err(why) = self.journal.roll_if_full() {
            fail_all(accepted, &why);
            return;
        }
        let g = self.journal.take_group();
        let n = accepted.len();
        let mut frames = Vec::with_capacity(accepted.iter().map(|w| w.body.len() + 40).sum());
        let mut writes = Vec::with_capacity(n);
        for (i, w) in accepted.into_iter().enumerate() {
            push_frame(&mut frames, g, i + 1 == n, &w.body);
            writes.push((w.op, w.reply));
        }
        if let Err(why) = self.journal.write_group(&frames) {
            fail_all(writes.into_iter().map(|(_, reply)| reply), &why);
            return;
        }
        drop(frames);

        let (mut creates, mut commits) = (0, 0);
        let mut replies = Vec::with_capacity(n);
        {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            for (op, reply) in writes {
                match op {
                    WriteOp::Create(new) => {
                        creates += 1;
                        state.apply_create(new);
                    }
                    WriteOp::Commit(commit) => {
                        commits += 1;
                        state.apply_commit(commit);
                    }
                }
                replies.push(reply);
            }
        }
        self.stats.creates.fetch_add(creates, Ordering::Relaxed);
        self.stats.commits.fetch_add(commits, Ordering::Relaxed);
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.stats.largest_group.fetch_max(n as u64, Ordering::Relaxed);
        for reply in replies {
            let _ = reply.send(Ok(()));
        }
    }
}

/// Something that can take a write's answer.
trait Reply {
    fn fail(self, why: &str);
}

impl Reply for Write {
    fn fail(self, why: &str) {
        self.reply.fail(why);
    }
}

impl Reply for oneshot::Sender<StoreResult<()>> {
    fn fail(self, why: &str) {
        let _ = self.send(Err(StoreError::backend(why, false)));
    }
}

fn fail_all<R: Reply>(writes: impl IntoIterator<Item = R>, why: &str) {
    for w in writes {
        w.fail(why);
    }
}
