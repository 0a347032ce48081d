//! Sending: SendQueueMessage, SendQueueMessagesBatch and each QueuesUpstream request.
//! Valid messages are committed to the store before the result is returned, and become
//! visible to consumers only once committed.

use super::message;
use super::persist;
use super::queue::{body_len, Queue};
use super::Queues;
use crate::broker::errors::KubeMqError;
use crate::broker::ids;
use crate::broker::store::StoreError;
use crate::kubemq::{QueueMessage, SendQueueMessageResult};
use std::collections::HashMap;

/// Valid messages of one batch, grouped by destination, with their positions.
#[derive(Default)]
struct Plan {
    groups: Vec<(String, Vec<(usize, QueueMessage)>)>,
    /// Group index by channel; consulted only when the channel changes between messages.
    index: HashMap<String, usize>,
    delayed: Vec<(usize, QueueMessage)>,
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
                Err(e) => results.push(error_result(msg.message_id, e)),
                Ok(()) => {
                    message::prepare_send(&mut msg, &self.limits, now);
                    results.push(ok_result(&msg));
                    plan.add(i, msg);
                }
            }
        }
        let failed = self.execute(plan).await;
        for i in failed {
            if let Some(r) = results.get_mut(i) {
                let id = std::mem::take(&mut r.message_id);
                *r = error_result(id, KubeMqError::SendToQueueFailed);
            }
        }
        results
    }

    /// Commits every group; returns the positions whose commit failed.
    async fn execute(&self, plan: Plan) -> Vec<usize> {
        let mut failed = Vec::new();
        let mut pending = Vec::with_capacity(plan.groups.len());
        for (channel, items) in plan.groups {
            let (positions, msgs): (Vec<usize>, Vec<QueueMessage>) = items.into_iter().unzip();
            pending.push(async move {
                let result = self.append(&channel, msgs).await;
                (positions, result)
            });
        }
        for (positions, result) in futures::future::join_all(pending).await {
            if let Err(e) = result {
                tracing::error!("queue send failed: {e}");
                failed.extend(positions);
            }
        }
        if !plan.delayed.is_empty() {
            let (positions, msgs): (Vec<usize>, Vec<QueueMessage>) =
                plan.delayed.into_iter().unzip();
            if let Err(e) = self.send_delayed(msgs).await {
                tracing::error!("delayed queue send failed: {e}");
                failed.extend(positions);
            }
        }
        failed
    }

    /// Stores messages at the tail of `channel` and makes them ready once committed.
    async fn append(&self, channel: &str, mut msgs: Vec<QueueMessage>) -> Result<(), StoreError> {
        let mut values: Vec<Vec<u8>> = msgs.iter().map(persist::encode).collect();
        let (queue, pending) = loop {
            let queue = self.queue(channel);
            match self.reserve(&queue, &mut msgs, values) {
                Ok(pending) => break (queue, pending),
                // Deleted meanwhile: the name now belongs to a fresh queue.
                Err(back) => values = back,
            }
        };
        pending.await?;
        let now = ids::now_ns();
        let bytes = msgs.iter().map(body_len).sum();
        let mut st = queue.lock();
        queue.count_in(&mut st, msgs.len(), bytes, now);
        if !st.deleted {
            queue.insert_ready(&mut st, msgs);
        }
        queue.publish_gauges(&st);
        drop(st);
        queue.wake();
        Ok(())
    }

    /// Hands out sequences and queues the store job, under the queue's lock. Gives the
    /// values back if the queue was deleted.
    fn reserve<'a>(
        &'a self,
        queue: &Queue,
        msgs: &mut [QueueMessage],
        values: Vec<Vec<u8>>,
    ) -> Result<persist::Pending<'a>, Vec<Vec<u8>>> {
        let mut st = queue.lock();
        if st.deleted {
            return Err(values);
        }
        let mut ops = Vec::with_capacity(msgs.len() + 1);
        for (msg, value) in msgs.iter_mut().zip(values) {
            let seq = st.next_seq;
            st.next_seq += 1;
            message::attrs(msg).sequence = seq;
            ops.push(persist::put(&queue.name, seq, value));
        }
        ops.push(persist::put_hwm(&queue.name, st.next_seq - 1));
        Ok(persist::begin_commit(&self.store, ops))
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

fn error_result(message_id: String, e: KubeMqError) -> SendQueueMessageResult {
    SendQueueMessageResult {
        message_id,
        is_error: true,
        error: e.to_string(),
        ..Default::default()
    }
}
