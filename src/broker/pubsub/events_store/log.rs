//! One events-store channel: gap-free 1-based sequences, store timestamps, a tail cache,
//! and the redb records that let it be rebuilt after a restart.

use crate::broker::ids::now_ns;
use crate::broker::store::{self, Op, Store, StoreError, Table};
use crate::kubemq::{Event, EventReceive};
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use prost::Message;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Name under which channel records (`first retained sequence`) live in `Table::Meta`.
const CHANNEL_RECORDS: &str = "pubsub.es.channel";
/// Most messages kept in memory per channel; older ones are read back from the store.
const CACHE_MESSAGES: usize = 4096;
/// Most body bytes kept in memory per channel.
const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Sequences per store page: keys of one page share all but the last key byte.
const PAGE: u64 = 256;

/// The `Table::Meta` key holding a channel's first retained sequence.
pub fn channel_record_key(name: &str) -> Vec<u8> {
    let mut k = store::prefix(CHANNEL_RECORDS);
    k.extend_from_slice(&store::prefix(name));
    k
}

/// Every channel record: (channel, first retained sequence).
pub fn channel_records(store: &Store) -> Result<Vec<(String, u64)>, StoreError> {
    let base = store::prefix(CHANNEL_RECORDS);
    let rows = store.scan(Table::Meta, &base)?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| {
            let name = read_name(k.get(base.len()..)?)?;
            let first = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
            Some((name, first))
        })
        .collect())
}

/// Reads a `u16 length | bytes` name.
pub fn read_name(k: &[u8]) -> Option<String> {
    let len = usize::from(u16::from_be_bytes(k.get(..2)?.try_into().ok()?));
    Some(std::str::from_utf8(k.get(2..2 + len)?).ok()?.to_owned())
}

fn page_prefix(name: &str, seq: u64) -> Vec<u8> {
    let mut p = store::prefix(name);
    p.extend_from_slice(&seq.to_be_bytes()[..7]);
    p
}

fn page_end(seq: u64) -> u64 {
    (seq / PAGE) * PAGE + PAGE - 1
}

struct State {
    /// Lowest retained sequence.
    first: u64,
    /// Highest assigned sequence (`first - 1` when empty).
    last: u64,
    /// Timestamps of `first..=last`, non-decreasing, for time-based starts and retention.
    times: VecDeque<i64>,
    /// The newest messages, ending at `last`.
    cache: VecDeque<Arc<EventReceive>>,
    cache_bytes: usize,
    /// Whether the channel record exists in the store.
    persisted: bool,
    /// Set by [`Log::purge`]; an append that finds it set goes to the channel's new log.
    deleted: bool,
}

impl State {
    fn cache_first(&self) -> u64 {
        self.last + 1 - self.cache.len() as u64
    }

    fn push_cache(&mut self, msg: Arc<EventReceive>) {
        self.cache_bytes += msg.body.len();
        self.cache.push_back(msg);
        while self.cache.len() > CACHE_MESSAGES
            || (self.cache_bytes > CACHE_BYTES && self.cache.len() > 1)
        {
            if let Some(old) = self.cache.pop_front() {
                self.cache_bytes -= old.body.len();
            }
        }
    }
}

/// A channel's figures for listing.
pub struct Info {
    pub messages: u64,
    pub last_timestamp: i64,
    pub active: bool,
}

/// One channel's log.
pub struct Log {
    pub name: String,
    /// Sequence assignment, cache and trimming; held only for in-memory work and for
    /// queueing the store write, so writes reach the store in sequence order.
    state: Mutex<State>,
    /// Highest sequence whose write has completed; readers never pass it, so what a
    /// subscriber sees is durable and gap-free.
    committed: watch::Sender<u64>,
    store: Store,
    /// Cancelled when the channel is deleted or the broker shuts down: its consumers
    /// stop and their streams end.
    pub closed: CancellationToken,
    /// Live subscriptions on this channel (for `isActive`).
    pub members: AtomicUsize,
}

impl Log {
    /// A new, empty channel whose first message will get sequence `first`.
    pub fn new(name: &str, first: u64, store: Store, closed: CancellationToken) -> Self {
        Self::with_state(name, first, VecDeque::new(), false, store, closed)
    }

    fn with_state(
        name: &str,
        first: u64,
        times: VecDeque<i64>,
        persisted: bool,
        store: Store,
        closed: CancellationToken,
    ) -> Self {
        let last = first - 1 + times.len() as u64;
        Self {
            name: name.to_owned(),
            state: Mutex::new(State {
                first,
                last,
                times,
                cache: VecDeque::new(),
                cache_bytes: 0,
                persisted,
                deleted: false,
            }),
            committed: watch::Sender::new(last),
            store,
            closed,
            members: AtomicUsize::new(0),
        }
    }

    /// Rebuilds a channel from its stored messages, starting at `first`.
    pub fn recover(
        name: &str,
        first: u64,
        store: Store,
        closed: CancellationToken,
    ) -> Result<Self, StoreError> {
        let first = first.max(1);
        let mut times = VecDeque::new();
        let mut page = first / PAGE;
        loop {
            let rows = store.scan(Table::Events, &page_prefix(name, page * PAGE))?;
            if rows.is_empty() {
                break;
            }
            for (k, v) in rows {
                let Some((_, seq)) = store::split_key(&k) else {
                    continue;
                };
                let expected = first + times.len() as u64;
                if seq < expected {
                    continue;
                }
                let ts = EventReceive::decode(v.as_slice()).map_or(0, |m| m.timestamp);
                // A write that failed before a crash leaves a hole; keep sequences aligned.
                let prev = times.back().copied().unwrap_or(ts);
                for _ in expected..seq {
                    times.push_back(prev);
                }
                times.push_back(ts);
            }
            page += 1;
        }
        Ok(Self::with_state(name, first, times, true, store, closed))
    }

    /// Assigns the next sequence to `event`, caches it and queues its write. The returned
    /// future resolves once the write is durable (per the fsync policy). Hands the event
    /// back if the channel was deleted meanwhile.
    pub fn append(
        self: &Arc<Self>,
        event: Event,
    ) -> Result<(u64, BoxFuture<'static, Result<(), StoreError>>), Event> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(event);
        }
        let seq = st.last + 1;
        let timestamp = now_ns().max(st.times.back().copied().unwrap_or(0));
        let msg = EventReceive {
            event_id: event.event_id,
            channel: event.channel,
            metadata: event.metadata,
            body: event.body,
            timestamp,
            sequence: seq,
            tags: event.tags,
        };
        let mut ops = vec![Op::Put {
            table: Table::Events,
            key: store::key(&self.name, seq),
            value: msg.encode_to_vec(),
        }];
        if !st.persisted {
            ops.push(channel_record(&self.name, st.first));
            st.persisted = true;
        }
        st.last = seq;
        st.times.push_back(timestamp);
        st.push_cache(Arc::new(msg));
        let write = self.queue_write(ops);
        drop(st);
        let log = self.clone();
        let fut = async move {
            let result = write.await;
            log.committed.send_if_modified(|c| {
                let newer = seq > *c;
                if newer {
                    *c = seq;
                }
                newer
            });
            result
        };
        Ok((seq, fut.boxed()))
    }

    /// Queues `ops` now and returns the wait for their commit. Callers hold the state
    /// lock and `Store::commit` queues before returning, so jobs (and hence commits) follow
    /// sequence order and a crash cannot leave a later sequence stored without an earlier
    /// one, nor a write after the channel's purge.
    fn queue_write(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<(), StoreError>> {
        self.store.commit(ops).boxed()
    }

    /// Watches the highest readable sequence.
    pub fn watch_committed(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Up to one page of messages from `from` (raised to the first retained sequence) to
    /// `upto`, and the sequence to continue from.
    pub async fn read(&self, from: u64, upto: u64) -> (Vec<Arc<EventReceive>>, u64) {
        let from = {
            let st = self.state.lock();
            let from = from.max(st.first);
            let upto = upto.min(st.last);
            if from > upto {
                return (Vec::new(), from);
            }
            let cache_first = st.cache_first();
            if from >= cache_first {
                let start = (from - cache_first) as usize;
                let end = ((upto - cache_first) as usize).min(start + PAGE as usize - 1);
                let msgs: Vec<_> = st.cache.range(start..=end).cloned().collect();
                return (msgs, cache_first + end as u64 + 1);
            }
            from
        };
        let end = upto.min(page_end(from));
        (self.read_store(from, end).await, end + 1)
    }

    async fn read_store(&self, from: u64, end: u64) -> Vec<Arc<EventReceive>> {
        let store = self.store.clone();
        let prefix = page_prefix(&self.name, from);
        let rows = tokio::task::spawn_blocking(move || store.scan(Table::Events, &prefix)).await;
        let rows = match rows {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                tracing::error!(channel = %self.name, "events store read failed: {e}");
                return Vec::new();
            }
            Err(e) => {
                tracing::error!(channel = %self.name, "events store read task failed: {e}");
                return Vec::new();
            }
        };
        rows.into_iter()
            .filter_map(|(k, v)| {
                let (_, seq) = store::split_key(&k)?;
                if !(from..=end).contains(&seq) {
                    return None;
                }
                EventReceive::decode(v.as_slice()).ok().map(Arc::new)
            })
            .collect()
    }

    /// The sequence a subscription starting now would get first, per start position.
    pub fn start_new_only(&self) -> u64 {
        self.state.lock().last + 1
    }

    pub fn start_first(&self) -> u64 {
        self.state.lock().first
    }

    pub fn start_last(&self) -> u64 {
        let st = self.state.lock();
        if st.last >= st.first {
            st.last
        } else {
            st.last + 1
        }
    }

    /// `seq`, kept within what is retained or next.
    pub fn start_at_sequence(&self, seq: u64) -> u64 {
        let st = self.state.lock();
        seq.clamp(st.first, st.last + 1)
    }

    /// The first message stored at or after `ns` (Unix ns).
    pub fn start_at_time(&self, ns: i64) -> u64 {
        let st = self.state.lock();
        st.first + st.times.partition_point(|t| *t < ns) as u64
    }

    /// Drops messages stored before `cutoff_ns`, in memory and in the store.
    pub fn trim(&self, cutoff_ns: i64) {
        let mut st = self.state.lock();
        let n = st.times.partition_point(|t| *t < cutoff_ns);
        if n == 0 {
            return;
        }
        let old_first = st.first;
        let new_first = old_first + n as u64;
        st.times.drain(..n);
        while st.cache.front().is_some_and(|m| m.sequence < new_first) {
            if let Some(old) = st.cache.pop_front() {
                st.cache_bytes -= old.body.len();
            }
        }
        st.first = new_first;
        st.persisted = true;
        let mut ops = delete_range(&self.name, old_first, new_first);
        ops.push(channel_record(&self.name, new_first));
        self.store.commit_detached(ops);
    }

    /// Marks the channel deleted and queues the removal of its messages and record, plus
    /// `extra`; later appends are refused, earlier ones are purged with it.
    pub fn purge(&self, extra: Op) -> BoxFuture<'static, Result<(), StoreError>> {
        let mut st = self.state.lock();
        st.deleted = true;
        let ops = vec![
            Op::DeletePrefix {
                table: Table::Events,
                prefix: store::prefix(&self.name),
            },
            Op::Delete {
                table: Table::Meta,
                key: channel_record_key(&self.name),
            },
            extra,
        ];
        self.queue_write(ops)
    }

    pub fn info(&self) -> Info {
        let st = self.state.lock();
        Info {
            messages: st.times.len() as u64,
            last_timestamp: st.times.back().copied().unwrap_or(0),
            active: self.members.load(Ordering::Relaxed) > 0,
        }
    }

    /// Records the channel in the store even before its first message.
    pub fn persist_record(&self) {
        let mut st = self.state.lock();
        if !st.persisted {
            st.persisted = true;
            self.store
                .commit_detached(vec![channel_record(&self.name, st.first)]);
        }
    }
}

fn channel_record(name: &str, first: u64) -> Op {
    Op::Put {
        table: Table::Meta,
        key: channel_record_key(name),
        value: first.to_be_bytes().to_vec(),
    }
}

/// Deletes of sequences `from..to`: whole pages by prefix, partial pages key by key.
fn delete_range(name: &str, from: u64, to: u64) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut seq = from;
    while seq < to {
        let end = page_end(seq);
        if seq % PAGE == 0 && end < to {
            ops.push(Op::DeletePrefix {
                table: Table::Events,
                prefix: page_prefix(name, seq),
            });
            seq = end + 1;
        } else {
            ops.push(Op::Delete {
                table: Table::Events,
                key: store::key(name, seq),
            });
            seq += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_group_keys_by_high_bytes() {
        assert!(store::key("c", 255).starts_with(&page_prefix("c", 0)));
        assert!(!store::key("c", 256).starts_with(&page_prefix("c", 0)));
        assert!(store::key("c", 300).starts_with(&page_prefix("c", 256)));
        assert_eq!(page_end(0), 255);
        assert_eq!(page_end(256), 511);
    }

    #[test]
    fn delete_range_uses_prefixes_for_whole_pages() {
        let ops = delete_range("c", 250, 600);
        let prefixes = ops
            .iter()
            .filter(|o| matches!(o, Op::DeletePrefix { .. }))
            .count();
        assert_eq!(prefixes, 1);
        assert_eq!(ops.len(), 6 + 1 + 88);
    }
}
