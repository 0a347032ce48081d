//! One queue's in-memory state: the ready index by sequence, counters, and the signal that
//! wakes waiting consumers.

use super::index::{Entry, Ready};
use super::message;
use crate::broker::metrics as m;
use crate::broker::store::StoreError;
use crate::kubemq::QueueMessage;
use metrics::{Counter, Gauge};
use parking_lot::{Mutex, MutexGuard};
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

/// A number of messages and their body bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub count: usize,
    pub bytes: i64,
}

impl Tally {
    pub fn of(msgs: &[QueueMessage]) -> Self {
        Self {
            count: msgs.len(),
            bytes: msgs.iter().map(body_len).sum(),
        }
    }

    pub fn add(&mut self, other: Tally) {
        self.count += other.count;
        self.bytes += other.bytes;
    }

    pub fn sub(&mut self, other: Tally) {
        self.count = self.count.saturating_sub(other.count);
        self.bytes = (self.bytes - other.bytes).max(0);
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Next sequence to hand out; never goes back, also across restarts.
    pub next_seq: u64,
    /// Messages a consumer may take, oldest sequence first; their bodies are in the store.
    pub ready: Ready,
    /// Accepted or re-published, with the store write not acknowledged yet. Kept out of
    /// `ready` until then, because a take reads bodies from the store; counted against
    /// the limits so concurrent sends cannot overshoot them.
    pub storing: Tally,
    /// Taken by a consumer and not settled yet.
    pub in_flight: Tally,
    /// Waiting in the delay schedule for this queue.
    pub delayed: Tally,
    /// Consumers currently waiting in a receive, get or stream.
    pub consumers: usize,
    /// Set when the queue is deleted: late returns are dropped instead of resurrecting it.
    pub deleted: bool,
    pub stats: Stats,
}

impl State {
    /// Everything the queue holds, as its depth and byte limits count it.
    pub fn held(&self) -> Tally {
        let mut all = Tally {
            count: self.ready.len(),
            bytes: self.ready.bytes(),
        };
        for t in [self.storing, self.in_flight, self.delayed] {
            all.add(t);
        }
        all
    }
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
    /// The gauges' label is shared with other queues (one per batch job, say): each moves
    /// the gauges by the change of its own values, so they hold the sum over the family.
    shared: Option<parking_lot::Mutex<[f64; 3]>>,
}

impl Metrics {
    fn new(name: &str) -> Self {
        let channel = crate::metrics::channel_label(name);
        let shared = crate::metrics::is_shared_label(&channel).then(Default::default);
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
            shared,
        }
    }

    fn publish(&self, values: [f64; 3]) {
        let gauges = [&self.depth, &self.in_flight, &self.delayed];
        match &self.shared {
            None => {
                for (g, v) in gauges.into_iter().zip(values) {
                    g.set(v);
                }
            }
            Some(last) => {
                let mut last = last.lock();
                for ((g, v), old) in gauges.into_iter().zip(values).zip(last.iter_mut()) {
                    g.increment(v - *old);
                    *old = v;
                }
            }
        }
    }
}

/// What a take removed from the ready index, by sequence. The caller reads the bodies of
/// `deliver` and `dead` from the store and settles `expired` and `dead` there.
#[derive(Default)]
pub(crate) struct Taken {
    /// Counted in flight, oldest first.
    pub deliver: Vec<(u64, Entry)>,
    pub expired: Vec<u64>,
    /// Over MaxReceiveCount: to be dead-lettered or discarded.
    pub dead: Vec<(u64, Entry)>,
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

    /// Makes messages ready, keeping their sequences. Only for messages whose store write
    /// has been acknowledged: a take reads the body back from the store.
    pub fn insert_ready(&self, st: &mut State, entries: impl IntoIterator<Item = (u64, Entry)>) {
        for (seq, entry) in entries {
            st.ready.insert(seq, entry);
        }
    }

    /// Removes up to `max` deliverable messages from the ready index, oldest first,
    /// counting them in flight. Expired and over-limit messages met on the way are
    /// removed too and reported apart.
    pub fn take(&self, max: usize, now: i64, retention_ns: i64) -> Taken {
        let mut taken = Taken::default();
        let mut st = self.lock();
        let mut out = Tally::default();
        while out.count < max {
            let Some((seq, entry)) = st.ready.pop_first() else {
                break;
            };
            if entry.expired(now, retention_ns) {
                taken.expired.push(seq);
            } else if entry.over_limit() {
                taken.dead.push((seq, entry));
            } else {
                out.add(Tally {
                    count: 1,
                    bytes: entry.bytes(),
                });
                taken.deliver.push((seq, entry));
            }
        }
        st.in_flight.add(out);
        st.stats.delivered += out.count as i64;
        st.stats.delivered_bytes += out.bytes;
        st.stats.expired += taken.expired.len() as i64;
        if out.count > 0 {
            st.stats.last_activity_ms = now / 1_000_000;
            self.metrics.messages_out.increment(out.count as u64);
        }
        if !taken.expired.is_empty() {
            self.metrics.expired.increment(taken.expired.len() as u64);
        }
        self.publish_gauges(&st);
        taken
    }

    /// Puts un-settled messages back with their sequences (peek end, closed transaction).
    pub fn release(&self, msgs: Vec<QueueMessage>) {
        if msgs.is_empty() {
            return;
        }
        let mut st = self.lock();
        st.in_flight.sub(Tally::of(&msgs));
        if !st.deleted {
            let entries = msgs.iter().map(|m| (message::seq(m), Entry::of(m)));
            self.insert_ready(&mut st, entries);
        }
        self.publish_gauges(&st);
        drop(st);
        self.wake();
    }

    /// Puts taken entries back unread, after the store could not give their bodies.
    pub fn untake(&self, deliver: Vec<(u64, Entry)>, dead: Vec<(u64, Entry)>) {
        let mut st = self.lock();
        st.in_flight.sub(entries_tally(&deliver));
        if !st.deleted {
            self.insert_ready(&mut st, deliver.into_iter().chain(dead));
        }
        self.publish_gauges(&st);
        drop(st);
        self.wake();
    }

    /// Makes re-published messages ready once their store write is acknowledged. Called
    /// by the store writer; on a failed write they stay stored under their old sequences
    /// (the write was one transaction) and come back at the next start.
    pub fn stored(&self, entries: Vec<(u64, Entry)>, result: Result<(), StoreError>) {
        let mut st = self.lock();
        st.storing.sub(entries_tally(&entries));
        match result {
            Ok(()) if !st.deleted => self.insert_ready(&mut st, entries),
            Ok(()) => {}
            Err(e) => tracing::error!(
                queue = %self.name,
                "re-published messages were not stored and return at the next start: {e}"
            ),
        }
        self.publish_gauges(&st);
        drop(st);
        self.wake();
    }

    /// Forgets messages that left the in-flight set through a settlement.
    pub fn settled(&self, gone: Tally) {
        let mut st = self.lock();
        st.in_flight.sub(gone);
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
        self.metrics.publish([
            st.ready.len() as f64,
            st.in_flight.count as f64,
            st.delayed.count as f64,
        ]);
    }

    /// Takes this queue's part out of its gauges, when it is forgotten or deleted.
    pub fn unpublish_gauges(&self) {
        self.metrics.publish([0.0; 3]);
    }

    /// Holds nothing and nobody waits on it: forgetting it loses nothing.
    pub fn is_empty_and_unused(st: &State) -> bool {
        st.ready.len() == 0
            && st.in_flight.count == 0
            && st.delayed.count == 0
            && st.storing.count == 0
            && st.consumers == 0
    }
}

pub(crate) fn body_len(msg: &QueueMessage) -> i64 {
    msg.body.len() as i64
}

pub(crate) fn entries_tally(entries: &[(u64, Entry)]) -> Tally {
    Tally {
        count: entries.len(),
        bytes: entries.iter().map(|(_, e)| e.bytes()).sum(),
    }
}
