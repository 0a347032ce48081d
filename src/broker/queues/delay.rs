//! Delayed messages: held in one schedule per broker (and one store log), released to
//! their queue's tail with a new sequence when due, by a single task that sleeps until the
//! earliest due time.

use super::capacity;
use super::message;
use super::persist::{self, DELAY_LOG};
use super::queue::{body_len, Tally};
use super::send::{Failures, Items};
use super::Queues;
use crate::broker::errors::KubeMqError;
use crate::broker::ids;
use crate::broker::store::Op;
use crate::kubemq::QueueMessage;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub(crate) struct Schedule {
    /// Next id in the delay log; ids only need to be unique among stored delayed messages.
    next_id: u64,
    /// Delayed messages by (due time in Unix ns, delay-log id).
    due: BTreeMap<(i64, u64), QueueMessage>,
}

#[derive(Default)]
pub(crate) struct Delays {
    /// Held while ids are handed out and their store jobs queued, and while releasing.
    schedule: Mutex<Schedule>,
    /// Wakes the release task when an earlier due time was scheduled.
    changed: Notify,
}

/// Longest nap of the release task, so a wall-clock jump is noticed.
const MAX_NAP: Duration = Duration::from_secs(1);

impl Delays {
    /// Adds a message found in the store at start-up.
    pub fn restore(&self, id: u64, msg: QueueMessage) {
        let mut s = self.schedule.lock();
        s.next_id = s.next_id.max(id + 1);
        let due = msg.attributes.as_ref().map_or(0, |a| a.delayed_to);
        s.due.insert((due, id), msg);
    }

    fn reserve(&self, s: &mut Schedule, msgs: &[QueueMessage]) -> Vec<(i64, u64)> {
        msgs.iter()
            .map(|m| {
                s.next_id = s.next_id.max(1);
                let id = s.next_id;
                s.next_id += 1;
                (m.attributes.as_ref().map_or(0, |a| a.delayed_to), id)
            })
            .collect()
    }

    fn insert(&self, keys: Vec<(i64, u64)>, msgs: Vec<QueueMessage>) {
        let mut s = self.schedule.lock();
        let earliest = s.due.keys().next().copied();
        for (key, msg) in keys.into_iter().zip(msgs) {
            s.due.insert(key, msg);
        }
        if s.due.keys().next().copied() != earliest {
            self.changed.notify_one();
        }
    }

    /// How long until the earliest message is due.
    fn nap(&self) -> Duration {
        let s = self.schedule.lock();
        let Some((due, _)) = s.due.keys().next() else {
            return MAX_NAP;
        };
        let wait = due.saturating_sub(ids::now_ns()).max(0);
        Duration::from_nanos(u64::try_from(wait).unwrap_or(0)).min(MAX_NAP)
    }

    /// Removes every message due at `now`, in (due, id) order.
    fn take_due(&self, now: i64) -> Vec<(u64, QueueMessage)> {
        let mut s = self.schedule.lock();
        let later = s.due.split_off(&(now + 1, 0));
        let due = std::mem::replace(&mut s.due, later);
        due.into_iter().map(|((_, id), m)| (id, m)).collect()
    }

    /// Removes every delayed message of `channel`; returns their log ids.
    pub fn purge(&self, channel: &str) -> Vec<u64> {
        let mut s = self.schedule.lock();
        let mut ids = Vec::new();
        s.due.retain(|(_, id), m| {
            let keep = m.channel != channel;
            if !keep {
                ids.push(*id);
            }
            keep
        });
        ids
    }
}

impl Queues {
    /// Stores delayed messages that fit their queues' limits (awaited: they are being
    /// acknowledged to a sender), then schedules them. Returns the refused or failed
    /// positions with their error texts.
    pub(crate) async fn send_delayed(&self, items: Items) -> Failures {
        let (items, mut failed) = self.admit_delayed(items);
        if items.is_empty() {
            return failed;
        }
        let (positions, msgs): (Vec<usize>, Vec<QueueMessage>) = items.into_iter().unzip();
        let values: Vec<Vec<u8>> = msgs.iter().map(persist::encode).collect();
        let (keys, pending) = {
            let mut s = self.delays.schedule.lock();
            let keys = self.delays.reserve(&mut s, &msgs);
            let ops = keys
                .iter()
                .zip(values)
                .map(|((_, id), v)| persist::put(DELAY_LOG, *id, v))
                .collect();
            (keys, persist::begin_commit(&self.store, ops))
        };
        if let Err(e) = pending.await {
            tracing::error!("delayed queue send failed: {e}");
            self.count_delayed(&msgs, -1);
            let text = KubeMqError::SendToQueueFailed.to_string();
            failed.extend(positions.into_iter().map(|i| (i, text.clone())));
            return failed;
        }
        self.count_sent(&msgs);
        self.delays.insert(keys, msgs);
        failed
    }

    /// Counts each delayed message in its queue if it fits the queue's limits (so that
    /// concurrent sends cannot overshoot them); splits off the refused ones.
    fn admit_delayed(&self, items: Items) -> (Items, Failures) {
        let (mut admitted, mut refused) = (Vec::with_capacity(items.len()), Vec::new());
        for (i, msg) in items {
            let q = self.queue(&msg.channel);
            let mut st = q.lock();
            let bytes = body_len(&msg);
            match capacity::admit(&q.name, st.held(), bytes, &self.limits) {
                Ok(()) => {
                    st.delayed.add(Tally { count: 1, bytes });
                    q.publish_gauges(&st);
                    admitted.push((i, msg));
                }
                Err(full) => refused.push((i, full.to_string())),
            }
        }
        (admitted, refused)
    }

    /// Schedules forwarded messages; `ops` (deletes of the originals) join the store job.
    pub(crate) fn delay_detached(&self, msgs: Vec<QueueMessage>, mut ops: Vec<Op>) {
        let values: Vec<Vec<u8>> = msgs.iter().map(persist::encode).collect();
        let keys = {
            let mut s = self.delays.schedule.lock();
            let keys = self.delays.reserve(&mut s, &msgs);
            for ((_, id), v) in keys.iter().zip(values) {
                ops.push(persist::put(DELAY_LOG, *id, v));
            }
            self.store.commit_detached(ops);
            keys
        };
        self.count_delayed(&msgs, 1);
        self.count_sent(&msgs);
        self.delays.insert(keys, msgs);
    }

    /// Counts delayed messages as accepted by their queues.
    fn count_sent(&self, msgs: &[QueueMessage]) {
        let now = ids::now_ns();
        let mut per: HashMap<&str, (usize, i64)> = HashMap::new();
        for m in msgs {
            let entry = per.entry(m.channel.as_str()).or_default();
            entry.0 += 1;
            entry.1 += body_len(m);
        }
        for (channel, (n, bytes)) in per {
            let q = self.queue(channel);
            let mut st = q.lock();
            q.count_in(&mut st, n, bytes, now);
        }
    }

    /// Moves the per-queue delayed counters by `sign` per message.
    pub(crate) fn count_delayed(&self, msgs: &[QueueMessage], sign: isize) {
        let mut per: HashMap<&str, Tally> = HashMap::new();
        for m in msgs {
            per.entry(m.channel.as_str()).or_default().add(Tally {
                count: 1,
                bytes: body_len(m),
            });
        }
        for (channel, tally) in per {
            let q = self.queue(channel);
            let mut st = q.lock();
            if sign > 0 {
                st.delayed.add(tally);
            } else {
                st.delayed.sub(tally);
            }
            q.publish_gauges(&st);
        }
    }

    /// Releases every due message to its queue's tail with DelaySeconds 0 and fresh
    /// attributes; each move is one store job (delete from the delay log + put).
    fn release_due(&self) {
        let now = ids::now_ns();
        let due = self.delays.take_due(now);
        if due.is_empty() {
            return;
        }
        let msgs: Vec<QueueMessage> = due.iter().map(|(_, m)| m.clone()).collect();
        self.count_delayed(&msgs, -1);
        let mut by_channel: HashMap<String, (Vec<QueueMessage>, Vec<Op>)> = HashMap::new();
        for (id, mut msg) in due {
            message::prepare_release(&mut msg, &self.limits, now);
            let entry = by_channel.entry(msg.channel.clone()).or_default();
            entry.1.push(persist::delete(DELAY_LOG, id));
            entry.0.push(msg);
        }
        for (channel, (msgs, deletes)) in by_channel {
            let target = self.queue(&channel);
            self.republish(&target, msgs, deletes, now);
        }
    }
}

/// Starts the release task. It holds the queues only weakly, so it never keeps a stopped
/// broker (and its store) alive, and it ends at shutdown.
pub(crate) fn spawn(queues: &Arc<Queues>, shutdown: CancellationToken) {
    let weak = Arc::downgrade(queues);
    let delays = queues.delays.clone();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: delayed queue messages will not be released");
        return;
    };
    // Not awaited: it ends on its own at shutdown and owns nothing that needs flushing.
    runtime.spawn(run(weak, delays, shutdown));
}

async fn run(weak: Weak<Queues>, delays: Arc<Delays>, shutdown: CancellationToken) {
    loop {
        let nap = delays.nap();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = delays.changed.notified() => continue,
            () = tokio::time::sleep(nap) => {}
        }
        let Some(queues) = weak.upgrade() else {
            return;
        };
        queues.release_due();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubemq::QueueMessageAttributes;

    fn delayed(channel: &str, due: i64) -> QueueMessage {
        QueueMessage {
            channel: channel.into(),
            attributes: Some(QueueMessageAttributes {
                delayed_to: due,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn due_messages_leave_in_due_then_id_order() {
        let d = Delays::default();
        d.restore(5, delayed("a", 30));
        d.restore(2, delayed("b", 10));
        d.restore(3, delayed("a", 10));
        d.restore(9, delayed("a", 99));
        let due: Vec<u64> = d.take_due(30).into_iter().map(|(id, _)| id).collect();
        assert_eq!(due, [2, 3, 5]);
        assert_eq!(d.purge("a"), [9]);
        assert!(d.take_due(i64::MAX - 1).is_empty());
        let mut s = d.schedule.lock();
        assert_eq!(d.reserve(&mut s, &[delayed("a", 1)]), [(1, 10)]);
    }
}
