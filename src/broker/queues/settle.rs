//! Settling taken messages: ack, failure (re-publish with ReceiveCount + 1, or dead-letter),
//! forwarding as a new send, and the tail re-publish they share.
//!
//! Re-publishes are one store job each (delete old keys + put new ones), handed to the
//! writer while the target queue is locked; they need not be awaited, since losing one in
//! a crash leaves the old copy in place to be redelivered. The re-published messages
//! become ready only when the writer reports the job committed, because a take reads
//! bodies from the store.

use super::index::Entry;
use super::message;
use super::persist;
use super::queue::{body_len, Queue, Tally};
use super::Queues;
use crate::broker::ids;
use crate::broker::store::Op;
use crate::kubemq::QueueMessage;
use std::collections::HashMap;
use std::sync::Arc;

impl Queues {
    /// Acks messages: they leave the store.
    pub(crate) fn ack(&self, queue: &Queue, msgs: &[QueueMessage]) {
        if msgs.is_empty() {
            return;
        }
        let ops = msgs
            .iter()
            .map(|m| persist::delete(&queue.name, message::seq(m)))
            .collect();
        self.store.commit_detached(ops);
        queue.settled(Tally::of(msgs));
    }

    /// Failed deliveries (nack, reject, visibility expiry, disconnect): back to the tail
    /// with ReceiveCount + 1, or to the dead-letter queue when the limit is reached.
    pub(crate) fn fail(&self, queue: &Arc<Queue>, msgs: Vec<QueueMessage>) {
        if msgs.is_empty() {
            return;
        }
        queue.settled(Tally::of(&msgs));
        let (mut again, mut dead) = (Vec::new(), Vec::new());
        for mut msg in msgs {
            message::attrs(&mut msg).receive_count += 1;
            if message::over_limit(&msg) {
                dead.push(msg);
            } else {
                again.push(msg);
            }
        }
        queue.count_redeliveries(again.len());
        let deletes = again
            .iter()
            .map(|m| persist::delete(&queue.name, message::seq(m)))
            .collect();
        self.republish(queue, again, deletes, ids::now_ns());
        self.dead_letter(queue, dead);
    }

    /// Settles what a take rejected: expired messages (by sequence) are dropped,
    /// over-limit ones dead-lettered.
    pub(crate) fn dispose(&self, queue: &Queue, expired: &[u64], dead: Vec<QueueMessage>) {
        if !expired.is_empty() {
            let ops = expired
                .iter()
                .map(|seq| persist::delete(&queue.name, *seq))
                .collect();
            self.store.commit_detached(ops);
        }
        self.dead_letter(queue, dead);
    }

    /// Moves messages to their dead-letter queues (re-routed, ReceiveCount 0, policy
    /// cleared), or discards those without one.
    pub(crate) fn dead_letter(&self, from: &Queue, msgs: Vec<QueueMessage>) {
        if msgs.is_empty() {
            return;
        }
        from.count_dead_lettered(msgs.len());
        let now = ids::now_ns();
        let mut discards = Vec::new();
        let mut moves: HashMap<String, (Vec<QueueMessage>, Vec<Op>)> = HashMap::new();
        for mut msg in msgs {
            let delete = persist::delete(&from.name, message::seq(&msg));
            match message::dead_letter_queue(&msg).map(str::to_owned) {
                None => discards.push(delete),
                Some(dlq) => {
                    message::dead_letter_copy(&mut msg, &from.name, now);
                    let entry = moves.entry(dlq).or_default();
                    entry.0.push(msg);
                    entry.1.push(delete);
                }
            }
        }
        if !discards.is_empty() {
            self.store.commit_detached(discards);
        }
        for (dlq, (msgs, deletes)) in moves {
            let target = self.queue(&dlq);
            self.count_in(&target, &msgs, now);
            self.republish(&target, msgs, deletes, now);
        }
    }

    /// Forwards messages as brand-new sends (ReQueue, Resend, SendModified): attributes
    /// reset, policy re-applied. `deletes` (the originals) go in the same store jobs.
    pub(crate) fn forward(&self, msgs: Vec<QueueMessage>, mut deletes: Vec<Op>) {
        let now = ids::now_ns();
        let mut by_channel: HashMap<String, Vec<QueueMessage>> = HashMap::new();
        let mut delayed = Vec::new();
        for mut msg in msgs {
            message::prepare_send(&mut msg, &self.limits, now);
            if message::attrs(&mut msg).delayed_to > 0 {
                delayed.push(msg);
            } else {
                by_channel.entry(msg.channel.clone()).or_default().push(msg);
            }
        }
        if !delayed.is_empty() {
            self.delay_detached(delayed, std::mem::take(&mut deletes));
        }
        for (channel, msgs) in by_channel {
            let target = self.queue(&channel);
            self.count_in(&target, &msgs, now);
            self.republish(&target, msgs, std::mem::take(&mut deletes), now);
        }
        if !deletes.is_empty() {
            self.store.commit_detached(deletes);
        }
    }

    pub(crate) fn count_in(&self, target: &Queue, msgs: &[QueueMessage], now: i64) {
        let bytes = msgs.iter().map(body_len).sum();
        let mut st = target.lock();
        target.count_in(&mut st, msgs.len(), bytes, now);
    }

    /// Appends messages at the tail of `target` with new sequences, visible once stored.
    /// The store job (`ops` + puts + high-water mark) is queued while `target` is locked.
    pub(crate) fn republish(
        &self,
        target: &Arc<Queue>,
        mut msgs: Vec<QueueMessage>,
        mut ops: Vec<Op>,
        now: i64,
    ) {
        if msgs.is_empty() {
            if !ops.is_empty() {
                self.store.commit_detached(ops);
            }
            return;
        }
        for msg in &mut msgs {
            message::attrs(msg).timestamp = now;
        }
        let mut st = target.lock();
        if st.deleted {
            drop(st);
            self.store.commit_detached(ops);
            return;
        }
        let mut entries = Vec::with_capacity(msgs.len());
        for msg in &mut msgs {
            let seq = st.next_seq;
            st.next_seq += 1;
            // Encoded after the new sequence is set, so the stored copy carries it.
            message::attrs(msg).sequence = seq;
            ops.push(persist::put(&target.name, seq, persist::encode(msg)));
            entries.push((seq, Entry::of(msg)));
        }
        ops.push(persist::put_hwm(&target.name, st.next_seq - 1));
        st.storing.add(Tally::of(&msgs));
        let queue = target.clone();
        let then = Box::new(move |result| queue.stored(entries, result));
        self.store.commit_then(ops, then);
    }
}
