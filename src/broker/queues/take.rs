//! A take: the ready index picks the messages under the queue's lock, then one read
//! transaction fetches their bodies from the store, outside it.

use super::lease::Lease;
use super::persist;
use super::queue::{entries_tally, Queue, Taken};
use super::Queues;
use crate::broker::ids;
use crate::kubemq::QueueMessage;
use std::sync::Arc;

impl Queues {
    /// Takes what is ready now (up to `max`) into `lease`; returns how many expired.
    pub(crate) fn take_now(&self, queue: &Arc<Queue>, max: usize, lease: &mut Lease) -> usize {
        let Taken {
            deliver,
            expired,
            dead,
        } = queue.take(max, ids::now_ns(), self.retention_ns);
        if deliver.is_empty() && dead.is_empty() {
            if !expired.is_empty() {
                self.dispose(queue, &expired, Vec::new());
            }
            return expired.len();
        }
        let seqs: Vec<u64> = deliver.iter().chain(&dead).map(|(seq, _)| *seq).collect();
        let mut loaded = match persist::load(&self.store, &queue.name, &seqs) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(queue = %queue.name, "cannot read queued messages: {e}");
                queue.untake(deliver, dead);
                self.dispose(queue, &expired, Vec::new());
                return expired.len();
            }
        };
        let dead_msgs = found(loaded.split_off(deliver.len()));
        let mut lost = Vec::new();
        for (slot, entry) in loaded.into_iter().zip(deliver) {
            match slot {
                Some(msg) => lease.msgs.push(msg),
                None => lost.push(entry),
            }
        }
        if !lost.is_empty() {
            // Only a queue deleted between the take and the read loses its records.
            queue.settled(entries_tally(&lost));
        }
        self.dispose(queue, &expired, dead_msgs);
        expired.len()
    }
}

/// The messages that were still stored.
fn found(slots: Vec<Option<QueueMessage>>) -> Vec<QueueMessage> {
    slots.into_iter().flatten().collect()
}
