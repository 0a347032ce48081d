//! Sending: SendQueueMessage, SendQueueMessagesBatch and each QueuesUpstream request.
//! Valid messages that fit their queue's limits (`capacity`) are committed to the store
//! before the result is returned, and become visible to consumers only once committed.

use super::capacity;
use super::index::Entry;
use super::message;
use super::persist;
use super::queue::{body_len, Queue, Tally};
use super::Queues;
use crate::broker::errors::KubeMqError;
use crate::broker::ids;
use crate::kubemq::{QueueMessage, SendQueueMessageResult};
use std::collections::HashMap;

/// Valid messages of one batch, grouped by destination, with their positions.
#[derive(Default)]
struct Plan {
    groups: Vec<(String, Items)>,
    /// Group index by channel; consulted only when the channel changes between messages.
    index: HashMap<String, usize>,
    delayed: Items,
}

/// Messages of a batch with their positions in it.
pub(crate) type Items = Vec<(usize, QueueMessage)>;

/// Positions of a batch that failed, with the error text each reports.
pub(crate) type Failures = Vec<(usize, String)>;

/// What [`Queues::reserve`] did under the queue's lock.
struct Reserved<'a> {
    /// Given sequences and counted as being stored.
    accepted: Items,
    /// Refused by the queue's limits.
    refused: Failures,
    /// The store job of `accepted`; `None` when nothing was accepted.
    pending: Option<persist::Pending<'a>>,
}

impl Queues {
    /// Validates and stores `msgs`; results are positional.
    pub(crate) async fn send_many(&self, msgs: Vec<QueueMessage>) -> Vec<SendQueueMessageResult> {
        let now = ids::now_ns();
        let mut results = Vec::with_capacity(msgs.len());
        let mut plan = Plan::default();
        for (i, mut msg) in msgs.into_iter().enumerate() {
            message::ensure_id(&mut msg);
            match message::validate(&msg, &self.limits) {
                Err(e) => results.push(error_result(msg.message_id, e.to_string())),
                Ok(()) => {
                    message::prepare_send(&mut msg, &self.limits, now);
                    results.push(ok_result(&msg));
                    plan.add(i, msg);
                }
            }
        }
        for (i, text) in self.execute(plan).await {
            if let Some(r) = results.get_mut(i) {
                let id = std::mem::take(&mut r.message_id);
                *r = error_result(id, text);
            }
        }
        results
    }

    /// Commits every group; returns the positions that were refused or failed.
    async fn execute(&self, plan: Plan) -> Failures {
        let pending = plan
            .groups
            .into_iter()
            .map(|(channel, items)| async move { self.append(&channel, items).await });
        let mut failed: Failures = futures::future::join_all(pending)
            .await
            .into_iter()
            .flatten()
            .collect();
        if !plan.delayed.is_empty() {
            failed.extend(self.send_delayed(plan.delayed).await);
        }
        failed
    }

    /// Stores messages at the tail of `channel`, as far as its limits allow, and makes
    /// them ready once committed.
    async fn append(&self, channel: &str, mut items: Items) -> Failures {
        let mut values: Vec<Vec<u8>> = items.iter().map(|(_, m)| persist::encode(m)).collect();
        let (queue, reserved) = loop {
            let queue = self.queue(channel);
            match self.reserve(&queue, items, values) {
                Ok(reserved) => break (queue, reserved),
                // Deleted meanwhile: the name now belongs to a fresh queue.
                Err(back) => (items, values) = back,
            }
        };
        let Reserved {
            accepted,
            mut refused,
            pending,
        } = reserved;
        let Some(pending) = pending else {
            return refused;
        };
        let result = pending.await;
        let (positions, msgs): (Vec<usize>, Vec<QueueMessage>) = accepted.into_iter().unzip();
        let tally = Tally::of(&msgs);
        let mut st = queue.lock();
        st.storing.sub(tally);
        match result {
            Ok(()) => {
                queue.count_in(&mut st, tally.count, tally.bytes, ids::now_ns());
                if !st.deleted {
                    let entries = msgs.iter().map(|m| (message::seq(m), Entry::of(m)));
                    queue.insert_ready(&mut st, entries);
                }
            }
            Err(e) => {
                tracing::error!("queue send failed: {e}");
                let text = KubeMqError::SendToQueueFailed.to_string();
                refused.extend(positions.into_iter().map(|i| (i, text.clone())));
            }
        }
        queue.publish_gauges(&st);
        drop(st);
        queue.wake();
        refused
    }

    /// Under the queue's lock: admits what fits its limits, hands out sequences, counts
    /// the admitted as being stored and queues their store job. Gives everything back if
    /// the queue was deleted.
    fn reserve<'a>(
        &'a self,
        queue: &Queue,
        items: Items,
        values: Vec<Vec<u8>>,
    ) -> Result<Reserved<'a>, (Items, Vec<Vec<u8>>)> {
        let mut st = queue.lock();
        if st.deleted {
            return Err((items, values));
        }
        let mut out = Reserved {
            accepted: Vec::with_capacity(items.len()),
            refused: Vec::new(),
            pending: None,
        };
        let mut ops = Vec::with_capacity(items.len() + 1);
        for ((i, mut msg), value) in items.into_iter().zip(values) {
            let bytes = body_len(&msg);
            if let Err(full) = capacity::admit(&queue.name, st.held(), bytes, &self.limits) {
                out.refused.push((i, full.to_string()));
                continue;
            }
            st.storing.add(Tally { count: 1, bytes });
            let seq = st.next_seq;
            st.next_seq += 1;
            message::attrs(&mut msg).sequence = seq;
            ops.push(persist::put(&queue.name, seq, value));
            out.accepted.push((i, msg));
        }
        if !out.accepted.is_empty() {
            ops.push(persist::put_hwm(&queue.name, st.next_seq - 1));
            out.pending = Some(persist::begin_commit(&self.store, ops));
        }
        Ok(out)
    }
}

impl Plan {
    fn add(&mut self, i: usize, msg: QueueMessage) {
        let delayed = msg.attributes.as_ref().is_some_and(|a| a.delayed_to > 0);
        if delayed {
            self.delayed.push((i, msg));
            return;
        }
        if let Some((channel, items)) = self.groups.last_mut() {
            if *channel == msg.channel {
                items.push((i, msg));
                return;
            }
        }
        let next = self.groups.len();
        let at = *self.index.entry(msg.channel.clone()).or_insert(next);
        if at == next {
            self.groups.push((msg.channel.clone(), Vec::new()));
        }
        if let Some((_, items)) = self.groups.get_mut(at) {
            items.push((i, msg));
        }
    }
}

fn ok_result(msg: &QueueMessage) -> SendQueueMessageResult {
    let a = msg.attributes.clone().unwrap_or_default();
    SendQueueMessageResult {
        message_id: msg.message_id.clone(),
        sent_at: a.timestamp,
        expiration_at: a.expiration_at,
        delayed_to: a.delayed_to,
        ..Default::default()
    }
}

fn error_result(message_id: String, error: String) -> SendQueueMessageResult {
    SendQueueMessageResult {
        message_id,
        is_error: true,
        error,
        ..Default::default()
    }
}
