//! Messages taken by one consumer and not settled yet. Dropping a lease returns its
//! messages to the queue with their sequences (a consumer that went away).

use super::message;
use super::queue::Queue;
use crate::kubemq::QueueMessage;
use std::sync::Arc;

pub(crate) struct Lease {
    pub queue: Arc<Queue>,
    /// Stored form (ReceiveCount not yet incremented), in delivery order.
    pub msgs: Vec<QueueMessage>,
}

impl Lease {
    pub fn new(queue: Arc<Queue>) -> Self {
        Self {
            queue,
            msgs: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Takes every message out, leaving the lease empty.
    pub fn take_all(&mut self) -> Vec<QueueMessage> {
        std::mem::take(&mut self.msgs)
    }

    /// Takes the message with sequence `seq`, if held.
    pub fn take_seq(&mut self, seq: u64) -> Option<QueueMessage> {
        let pos = self.msgs.iter().position(|m| message::seq(m) == seq)?;
        Some(self.msgs.swap_remove(pos))
    }

    /// Sequences still held, in no particular order.
    pub fn sequences(&self) -> Vec<i64> {
        self.msgs
            .iter()
            .map(|m| i64::try_from(message::seq(m)).unwrap_or(i64::MAX))
            .collect()
    }

    /// What the consumer sees: copies with ReceiveCount + 1.
    pub fn delivered_copies(&self) -> Vec<QueueMessage> {
        self.msgs.iter().cloned().map(message::delivered).collect()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let msgs = self.take_all();
        self.queue.release(msgs);
    }
}
