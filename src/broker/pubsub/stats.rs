//! Live per-channel statistics (messages and bytes in and out, responses, last
//! activity) for the channel-management `list-channels` answer.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The four pub/sub channel types, as named by the channel-management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Events,
    EventsStore,
    Commands,
    Queries,
}

impl Kind {
    /// The `channel_type` tag value and the `pattern` metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::EventsStore => "events_store",
            Kind::Commands => "commands",
            Kind::Queries => "queries",
        }
    }

    pub fn all() -> [Kind; 4] {
        [
            Kind::Events,
            Kind::EventsStore,
            Kind::Commands,
            Kind::Queries,
        ]
    }

    fn index(self) -> usize {
        match self {
            Kind::Events => 0,
            Kind::EventsStore => 1,
            Kind::Commands => 2,
            Kind::Queries => 3,
        }
    }
}

/// Counters of one channel; updated lock-free from the message paths.
#[derive(Debug, Default)]
pub struct Counters {
    pub in_messages: AtomicI64,
    pub in_volume: AtomicI64,
    pub out_messages: AtomicI64,
    pub out_volume: AtomicI64,
    pub responses: AtomicI64,
    /// Unix milliseconds of the last message in or out.
    pub last_activity: AtomicI64,
    /// Created with `create-channel`: kept until deleted, however idle.
    pub pinned: std::sync::atomic::AtomicBool,
}

/// A copy of [`Counters`] at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub in_messages: i64,
    pub in_volume: i64,
    pub out_messages: i64,
    pub out_volume: i64,
    pub responses: i64,
    pub last_activity: i64,
}

fn now_ms() -> i64 {
    super::super::ids::now_ns() / 1_000_000
}

fn len(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl Counters {
    /// Counts one message published to the channel.
    pub fn incoming(&self, bytes: usize) {
        self.in_messages.fetch_add(1, Ordering::Relaxed);
        self.in_volume.fetch_add(len(bytes), Ordering::Relaxed);
        self.touch();
    }

    /// Counts `n` deliveries of a message of `bytes` bytes.
    pub fn outgoing(&self, n: usize, bytes: usize) {
        if n == 0 {
            return;
        }
        self.out_messages.fetch_add(len(n), Ordering::Relaxed);
        self.out_volume
            .fetch_add(len(n).saturating_mul(len(bytes)), Ordering::Relaxed);
        self.touch();
    }

    /// Counts one response to a command or query.
    pub fn response(&self) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// Records activity now.
    pub fn touch(&self) {
        self.last_activity.store(now_ms(), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let get = |a: &AtomicI64| a.load(Ordering::Relaxed);
        Snapshot {
            in_messages: get(&self.in_messages),
            in_volume: get(&self.in_volume),
            out_messages: get(&self.out_messages),
            out_volume: get(&self.out_volume),
            responses: get(&self.responses),
            last_activity: get(&self.last_activity),
        }
    }
}

/// Every known channel of every pub/sub type: created explicitly or by use.
#[derive(Default)]
pub struct Book {
    /// One map per [`Kind`]; read-locked on every message, write-locked only when a
    /// channel appears or is deleted.
    kinds: [RwLock<HashMap<String, Arc<Counters>>>; 4],
}

impl Book {
    /// The counters of `name`, registering the channel on first use. A plain-events
    /// channel made for one request (a streamed answer's) gets counters that are not
    /// kept: listing thousands of them helps nobody, and keeping them for the idle window
    /// would cost memory in proportion to the request rate.
    pub fn channel(&self, kind: Kind, name: &str) -> Arc<Counters> {
        if kind == Kind::Events && crate::metrics::is_per_id_channel(name) {
            return Arc::default();
        }
        let map = &self.kinds[kind.index()];
        if let Some(c) = map.read().get(name) {
            return c.clone();
        }
        map.write().entry(name.to_owned()).or_default().clone()
    }

    /// Registers a channel that stays until it is deleted (`create-channel`).
    pub fn pin(&self, kind: Kind, name: &str) {
        let counters = self.channel(kind, name);
        counters.pinned.store(true, Ordering::Relaxed);
        counters.touch();
    }

    /// Forgets the unpinned channels of `kind` idle since `idle_before` (Unix ms) for
    /// which `in_use` says no; returns how many went. Channels appear by use, so without
    /// this every per-request channel (a streamed answer's, say) would stay forever.
    pub fn sweep(&self, kind: Kind, idle_before: i64, in_use: impl Fn(&str) -> bool) -> usize {
        let map = &self.kinds[kind.index()];
        let idle = |c: &Counters| {
            !c.pinned.load(Ordering::Relaxed)
                && c.last_activity.load(Ordering::Relaxed) < idle_before
        };
        let candidates: Vec<String> = map
            .read()
            .iter()
            .filter(|(name, c)| idle(c) && !in_use(name))
            .map(|(name, _)| name.clone())
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        let mut map = map.write();
        let before = map.len();
        for name in candidates {
            // Checked again under the write lock: a message may have arrived meanwhile.
            if map.get(&name).is_some_and(|c| idle(c)) {
                map.remove(&name);
            }
        }
        before - map.len()
    }

    /// How many channels of `kind` are known.
    pub fn len(&self, kind: Kind) -> usize {
        self.kinds[kind.index()].read().len()
    }

    /// Forgets a channel; returns whether it was known.
    pub fn remove(&self, kind: Kind, name: &str) -> bool {
        self.kinds[kind.index()].write().remove(name).is_some()
    }

    /// Whether the channel is known.
    pub fn contains(&self, kind: Kind, name: &str) -> bool {
        self.kinds[kind.index()].read().contains_key(name)
    }

    /// Known channels of `kind` accepted by `filter`, sorted by name.
    pub fn list(&self, kind: Kind, filter: impl Fn(&str) -> bool) -> Vec<(String, Snapshot)> {
        let mut out: Vec<_> = self.kinds[kind.index()]
            .read()
            .iter()
            .filter(|(name, _)| filter(name))
            .map(|(name, c)| (name.clone(), c.snapshot()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
