//! One queue's in-memory state: ready messages by sequence, counters, and the signal that
//! wakes waiting consumers.

use super::message;
use crate::broker::metrics as m;
use crate::kubemq::QueueMessage;
use metrics::{Counter, Gauge};
use parking_lot::{Mutex, MutexGuard};
use std::collections::BTreeMap;
use tokio::sync::Notify;

/// Running totals, for channel listings and QueuesInfo.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub sent: i64,
    pub sent_bytes: i64,
    pub delivered: i64,
    pub delivered_bytes: i64,
    pub expired: i64,
    /// Unix ms of the last send or delivery.
    pub last_activity_ms: i64,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Next sequence to hand out; never goes back, also across restarts.
    pub next_seq: u64,
    /// Messages a consumer may take, oldest sequence first.
    pub ready: BTreeMap<u64, QueueMessage>,
    /// Body bytes of `ready`.
    pub ready_bytes: i64,
    /// Taken by a consumer and not settled yet.
    pub in_flight: usize,
    /// Waiting in the delay schedule for this queue.
    pub delayed: usize,
    /// Consumers currently waiting in a receive, get or stream.
    pub consumers: usize,
    /// Set when the queue is deleted: late returns are dropped instead of resurrecting it.
    pub deleted: bool,
    pub stats: Stats,
}

/// Cached metric handles, so the hot path does no registry lookups.
struct Metrics {
    messages_in: Counter,
    messages_out: Counter,
    depth: Gauge,
    in_flight: Gauge,
    delayed: Gauge,
    redeliveries: Counter,
    dead_lettered: Counter,
    expired: Counter,
}

impl Metrics {
    fn new(name: &str) -> Self {
        let channel = crate::metrics::channel_label(name);
        let counter = |n: &'static str| metrics::counter!(n, "channel" => channel.clone());
        let gauge = |n: &'static str| metrics::gauge!(n, "channel" => channel.clone());
        let flow = |n: &'static str| metrics::counter!(n, "pattern" => "queues", "channel" => channel.clone());
        Self {
            messages_in: flow(m::MESSAGES_IN),
            messages_out: flow(m::MESSAGES_OUT),
            depth: gauge(m::QUEUE_DEPTH),
            in_flight: gauge(m::QUEUE_IN_FLIGHT),
            delayed: gauge(m::QUEUE_DELAYED),
            redeliveries: counter(m::REDELIVERIES),
            dead_lettered: counter(m::DEAD_LETTERED),
            expired: counter(m::EXPIRED),
        }
    }
}

/// What a take removed besides deliverable messages; the caller settles these in the store.
#[derive(Default)]
pub(crate) struct Rejects {
    pub expired: Vec<QueueMessage>,
    pub dead: Vec<QueueMessage>,
}

pub(crate) struct Queue {
    pub name: String,
    /// Guards everything mutable. Held only for in-memory work and for handing jobs to
    /// the store writer (never across an await), so that a queue's store jobs reach the
    /// writer in the order its sequences were handed out.
    state: Mutex<State>,
    /// Wakes consumers when messages become ready. Waiters enable their `Notified` before
    /// looking at `state`, and producers notify after unlocking, so no wakeup is lost.
    ready_signal: Notify,
    metrics: Metrics,
}

impl Queue {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            state: Mutex::new(State {
                next_seq: 1,
                ..Default::default()
            }),
            ready_signal: Notify::new(),
            metrics: Metrics::new(name),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    pub fn signal(&self) -> &Notify {
        &self.ready_signal
    }

    /// Wakes every waiting consumer.
    pub fn wake(&self) {
        self.ready_signal.notify_waiters();
    }

    /// Makes messages (already stored) ready, keeping their sequences.
    pub fn insert_ready(&self, st: &mut State, msgs: impl IntoIterator<Item = QueueMessage>) {
        for msg in msgs {
            st.ready_bytes += body_len(&msg);
            st.ready.insert(message::seq(&msg), msg);
        }
    }

    /// Moves up to `max` deliverable messages into `out`, oldest first, counting them in
    /// flight. Expired and over-limit messages met on the way are removed into `rejects`.
    pub fn take(
        &self,
        max: usize,
        now: i64,
        retention_ns: i64,
        out: &mut Vec<QueueMessage>,
        rejects: &mut Rejects,
    ) {
        let mut st = self.lock();
        let mut taken = 0;
        while taken < max {
            let Some((_, msg)) = st.ready.pop_first() else {
                break;
            };
            st.ready_bytes -= body_len(&msg);
            if message::expired(&msg, now, retention_ns) {
                rejects.expired.push(msg);
            } else if message::over_limit(&msg) {
                rejects.dead.push(msg);
            } else {
                st.stats.delivered += 1;
                st.stats.delivered_bytes += body_len(&msg);
                out.push(msg);
                taken += 1;
            }
        }
        st.in_flight += taken;
        st.stats.expired += rejects.expired.len() as i64;
        if taken > 0 {
            st.stats.last_activity_ms = now / 1_000_000;
            self.metrics.messages_out.increment(taken as u64);
        }
        if !rejects.expired.is_empty() {
            self.metrics.expired.increment(rejects.expired.len() as u64);
        }
        self.publish_gauges(&st);
    }

    /// Puts un-settled messages back with their sequences (peek end, closed transaction).
    pub fn release(&self, msgs: Vec<QueueMessage>) {
        if msgs.is_empty() {
            return;
        }
        let mut st = self.lock();
        st.in_flight = st.in_flight.saturating_sub(msgs.len());
        if !st.deleted {
            self.insert_ready(&mut st, msgs);
        }
        self.publish_gauges(&st);
        drop(st);
        self.wake();
    }

    /// Forgets `n` messages that left the in-flight set through a settlement.
    pub fn settled(&self, n: usize) {
        let mut st = self.lock();
        st.in_flight = st.in_flight.saturating_sub(n);
        self.publish_gauges(&st);
    }

    /// Counts `n` accepted messages of `bytes` body bytes.
    pub fn count_in(&self, st: &mut State, n: usize, bytes: i64, now: i64) {
        st.stats.sent += n as i64;
        st.stats.sent_bytes += bytes;
        st.stats.last_activity_ms = now / 1_000_000;
        self.metrics.messages_in.increment(n as u64);
    }

    pub fn count_redeliveries(&self, n: usize) {
        self.metrics.redeliveries.increment(n as u64);
    }

    pub fn count_dead_lettered(&self, n: usize) {
        self.metrics.dead_lettered.increment(n as u64);
    }

    pub fn publish_gauges(&self, st: &State) {
        self.metrics.depth.set(st.ready.len() as f64);
        self.metrics.in_flight.set(st.in_flight as f64);
        self.metrics.delayed.set(st.delayed as f64);
    }
}

pub(crate) fn body_len(msg: &QueueMessage) -> i64 {
    msg.body.len() as i64
}
