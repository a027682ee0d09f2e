//! The checkpoint queue: updates waiting to be sent, batch cutting, and acknowledgement
//! bookkeeping. One batch is in flight at a time, as AWS's SDKs do.

use std::collections::VecDeque;

use std::task::Waker;

use crate::checkpoint::Limits;
use crate::model::{OperationAction, OperationType, OperationUpdate};

pub(crate) struct Queue {
    token: String,
    pending: VecDeque<OperationUpdate>,
    pending_bytes: usize,
    /// Updates ever pushed.
    enqueued: u64,
    /// Updates acknowledged (a prefix of the pushed ones).
    acked: u64,
    /// Updates in the batch in flight.
    in_flight: u64,
    waiters: Vec<(u64, Waker)>,
    limits: Limits,
}

impl Queue {
    pub(crate) fn new(token: String, limits: Limits) -> Queue {
        Queue {
            token,
            pending: VecDeque::new(),
            pending_bytes: 0,
            enqueued: 0,
            acked: 0,
            in_flight: 0,
            waiters: Vec::new(),
            limits,
        }
    }

    /// Queues an update; returns the count to wait for to know it is acknowledged.
    pub(crate) fn push(&mut self, update: OperationUpdate) -> u64 {
        self.pending_bytes += update.approx_size();
        self.pending.push_back(update);
        self.enqueued += 1;
        self.enqueued
    }

    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.in_flight == 0
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(crate) fn wait_for(&mut self, target: u64, waker: Waker) {
        if let Some(slot) = self.waiters.iter_mut().find(|(t, w)| *t == target && w.will_wake(&waker)) {
            slot.1 = waker;
        } else {
            self.waiters.push((target, waker));
        }
    }

    /// Whether someone waits for an update that is still queued (flush now: waiting
    /// callers never pay an idle delay), or the queue already fills a batch.
    pub(crate) fn wants_flush(&self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let first_pending = self.acked + self.in_flight;
        self.waiters.iter().any(|(t, _)| *t > first_pending)
            || self.pending.len() >= self.limits.max_batch_updates
            || self.pending_bytes >= self.limits.max_batch_bytes
    }

    /// Cuts the next batch: at most the batch limits (but at least one update), and never
    /// two updates for one id except a STEP/CONTEXT START followed by its completion.
    pub(crate) fn take_batch(&mut self) -> Vec<OperationUpdate> {
        debug_assert_eq!(self.in_flight, 0);
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = self.pending.front() {
            let size = next.approx_size();
            if !batch.is_empty()
                && (batch.len() >= self.limits.max_batch_updates || bytes + size > self.limits.max_batch_bytes)
            {
                break;
            }
            // Batches are small: a scan of what is already in it is cheaper than a map.
            if let Some(prev) = batch.iter().rev().find(|u: &&OperationUpdate| u.id == next.id).map(|u| u.action) {
                let start_then_finish = prev == OperationAction::Start
                    && next.action != OperationAction::Start
                    && matches!(next.op_type, OperationType::Step | OperationType::Context);
                if !start_then_finish {
                    break;
                }
            }
            let update = self.pending.pop_front().expect("front exists");
            if update.op_type == OperationType::Execution {
                // An EXECUTION update must be the last of its batch.
                bytes += size;
                batch.push(update);
                break;
            }
            bytes += size;
            batch.push(update);
        }
        self.pending_bytes = self.pending_bytes.saturating_sub(bytes);
        self.in_flight = batch.len() as u64;
        batch
    }

    /// Records the acknowledgement of the batch in flight and wakes its waiters.
    pub(crate) fn ack(&mut self, new_token: Option<String>) {
        self.acked += self.in_flight;
        self.in_flight = 0;
        if let Some(t) = new_token {
            self.token = t;
        }
        let acked = self.acked;
        self.waiters.retain(|(t, w)| {
            if *t <= acked {
                w.wake_by_ref();
                false
            } else {
                true
            }
        });
    }

    /// Wakes every waiter (used when the invocation aborts, so nothing sleeps forever
    /// holding resources the driver wants to drop).
    pub(crate) fn wake_all(&mut self) {
        for (_, w) in self.waiters.drain(..) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn upd(id: &str, t: OperationType, a: OperationAction) -> OperationUpdate {
        OperationUpdate::new(id, t, a)
    }

    #[test]
    fn batches_respect_limits_and_id_rules() {
        let limits = Limits { max_batch_updates: 3, ..Limits::AWS };
        let mut q = Queue::new("t".into(), limits);
        q.push(upd("a", OperationType::Step, OperationAction::Start));
        q.push(upd("a", OperationType::Step, OperationAction::Succeed));
        q.push(upd("b", OperationType::Wait, OperationAction::Start));
        q.push(upd("c", OperationType::Step, OperationAction::Start));
        let b1 = q.take_batch();
        assert_eq!(b1.len(), 3);
        q.ack(Some("t2".into()));
        assert_eq!(q.token(), "t2");
        assert_eq!(q.acked(), 3);
        let b2 = q.take_batch();
        assert_eq!(b2.len(), 1);
        q.ack(None);
        assert!(q.is_idle());

        q.push(upd("w", OperationType::Wait, OperationAction::Start));
        q.push(upd("w", OperationType::Wait, OperationAction::Cancel));
        assert_eq!(q.take_batch().len(), 1, "a WAIT START and CANCEL go in separate batches");
    }

    #[test]
    fn batches_meet_aws_limits_on_the_wire() {
        let mut q = Queue::new("t".into(), Limits::AWS);
        for i in 0..600 {
            q.push(upd(&format!("s{i}"), OperationType::Step, OperationAction::Start));
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let b = q.take_batch();
            q.ack(None);
            (!b.is_empty()).then_some(b.len())
        })
        .collect();
        assert_eq!(sizes, [250, 250, 100]);

        // Payloads of JSON text full of quotes grow on the wire: 200 KiB of `{"a":"b"}`
        // items serialise to about 300 KiB, so at most two fit in 750 KiB.
        let item = r#"{"a":"b"},"#;
        let payload: Arc<str> = format!("[{}0]", item.repeat(200 * 1024 / item.len())).into();
        for i in 0..5 {
            let mut u = upd(&format!("p{i}"), OperationType::Step, OperationAction::Succeed);
            u.payload = Some(payload.clone());
            q.push(u);
        }
        let mut sent = 0;
        while !q.is_idle() {
            let batch = q.take_batch();
            let wire = serde_json::to_string(&batch).unwrap().len();
            assert!(wire <= Limits::AWS.max_batch_bytes, "a batch of {} is {wire} bytes", batch.len());
            sent += batch.len();
            q.ack(None);
        }
        assert_eq!(sent, 5);
    }

    #[test]
    fn execution_update_ends_a_batch() {
        let mut q = Queue::new("t".into(), Limits::AWS);
        q.push(upd("x", OperationType::Execution, OperationAction::Succeed));
        q.push(upd("y", OperationType::Step, OperationAction::Start));
        assert_eq!(q.take_batch().len(), 1);
    }
}
