//! Events-store consumers: one pump per subscription or per queue group, pulling from the
//! channel log by sequence (replay, then live, with no gap or duplicate), and durable
//! cursors per (ClientID, channel, group).

use super::log::{read_name, Log};
use crate::broker::metrics;
use crate::broker::pubsub::stats::Counters;
use crate::broker::store::{self, Op, Store, StoreError, Table};
use crate::kubemq::EventReceive;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Name under which durable cursors live in `Table::Meta`.
const CURSOR_RECORDS: &str = "pubsub.es.cursor";

/// Identity of a durable subscription, as STAN keys it: client, channel and group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DurableKey {
    pub channel: String,
    pub client_id: String,
    pub group: String,
}

impl DurableKey {
    fn encode(&self) -> Vec<u8> {
        let mut k = cursor_channel_prefix(&self.channel);
        k.extend_from_slice(&store::prefix(&self.client_id));
        k.extend_from_slice(self.group.as_bytes());
        k
    }

    fn decode(k: &[u8]) -> Option<Self> {
        let rest = k.get(store::prefix(CURSOR_RECORDS).len()..)?;
        let channel = read_name(rest)?;
        let rest = rest.get(2 + channel.len()..)?;
        let client_id = read_name(rest)?;
        let group = std::str::from_utf8(rest.get(2 + client_id.len()..)?).ok()?;
        Some(Self {
            channel,
            client_id,
            group: group.to_owned(),
        })
    }
}

/// The key prefix shared by all cursors of `channel`.
pub fn cursor_channel_prefix(channel: &str) -> Vec<u8> {
    let mut k = store::prefix(CURSOR_RECORDS);
    k.extend_from_slice(&store::prefix(channel));
    k
}

/// Last delivered sequence of every durable subscription, mirrored in the store.
pub struct Durables {
    map: Mutex<HashMap<DurableKey, u64>>,
    store: Store,
}

impl Durables {
    /// Loads every cursor from the store.
    pub fn load(store: Store) -> Result<Self, StoreError> {
        let rows = store.scan(Table::Meta, &store::prefix(CURSOR_RECORDS))?;
        let map = rows
            .into_iter()
            .filter_map(|(k, v)| {
                let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
                Some((DurableKey::decode(&k)?, seq))
            })
            .collect();
        Ok(Self {
            map: Mutex::new(map),
            store,
        })
    }

    pub fn get(&self, key: &DurableKey) -> Option<u64> {
        self.map.lock().get(key).copied()
    }

    /// Records `last` as delivered; the write is detached because losing it in a crash
    /// only means redelivery.
    pub fn save(&self, key: &DurableKey, last: u64) {
        let changed = self.map.lock().insert(key.clone(), last) != Some(last);
        if changed {
            self.store.commit_detached(vec![Op::Put {
                table: Table::Meta,
                key: key.encode(),
                value: last.to_be_bytes().to_vec(),
            }]);
        }
    }

    /// Forgets every cursor of `channel`; returns the store write that does the same.
    pub fn forget_channel(&self, channel: &str) -> Op {
        self.map.lock().retain(|k, _| k.channel != channel);
        Op::DeletePrefix {
            table: Table::Meta,
            prefix: cursor_channel_prefix(channel),
        }
    }
}

struct Member {
    id: u64,
    tx: mpsc::Sender<EventReceive>,
    durable: DurableKey,
}

/// A subscription (one member) or a queue group (one or more members) on one channel.
pub struct Consumer {
    pub log: Arc<Log>,
    /// Members; the pump picks one per message and the stream guards remove themselves.
    members: Mutex<Vec<Member>>,
    /// Tie-breaker among equally loaded members, so ties rotate.
    rotate: AtomicUsize,
    /// Next sequence to hand out; the durable cursor is `next - 1`.
    next: AtomicU64,
    /// Cancelled when the last member leaves (or the channel closes): the pump stops.
    pub stop: CancellationToken,
    counters: Arc<Counters>,
    durables: Arc<Durables>,
}

impl Consumer {
    pub fn new(
        log: Arc<Log>,
        next: u64,
        counters: Arc<Counters>,
        durables: Arc<Durables>,
    ) -> Arc<Self> {
        let stop = log.closed.child_token();
        Arc::new(Self {
            log,
            members: Mutex::new(Vec::new()),
            rotate: AtomicUsize::new(0),
            next: AtomicU64::new(next),
            stop,
            counters,
            durables,
        })
    }

    /// Adds a member unless the consumer already stopped; saves its durable cursor.
    pub fn join(&self, id: u64, tx: mpsc::Sender<EventReceive>, durable: DurableKey) -> bool {
        let mut members = self.members.lock();
        if self.stop.is_cancelled() {
            return false;
        }
        self.durables.save(&durable, self.cursor());
        members.push(Member { id, tx, durable });
        self.log.members.fetch_add(1, Ordering::Relaxed);
        metrics::subscribers("events_store", 1.0);
        true
    }

    /// Removes a member, saving its cursor; returns whether it was the last one.
    pub fn leave(&self, id: u64) -> bool {
        let mut members = self.members.lock();
        let Some(pos) = members.iter().position(|m| m.id == id) else {
            return members.is_empty();
        };
        let member = members.swap_remove(pos);
        self.durables.save(&member.durable, self.cursor());
        self.log.members.fetch_sub(1, Ordering::Relaxed);
        metrics::subscribers("events_store", -1.0);
        let last = members.is_empty();
        if last {
            self.stop.cancel();
        }
        last
    }

    fn cursor(&self) -> u64 {
        self.next.load(Ordering::Acquire).saturating_sub(1)
    }

    fn save_cursors(&self) {
        let cursor = self.cursor();
        for m in self.members.lock().iter() {
            self.durables.save(&m.durable, cursor);
        }
    }

    /// Delivers from the log until stopped: pages of what is committed, then waits.
    pub async fn pump(self: Arc<Self>) {
        let mut committed = self.log.watch_committed();
        loop {
            let next = self.next.load(Ordering::Acquire);
            let upto = *committed.borrow_and_update();
            if upto >= next {
                let (batch, resume) = self.log.read(next, upto).await;
                for msg in batch {
                    if !self.deliver(&msg).await {
                        return self.save_cursors();
                    }
                    self.next.store(msg.sequence + 1, Ordering::Release);
                }
                self.next.fetch_max(resume, Ordering::AcqRel);
                continue;
            }
            self.save_cursors();
            tokio::select! {
                () = self.stop.cancelled() => break,
                changed = committed.changed() => if changed.is_err() { break },
            }
        }
        self.save_cursors();
    }

    /// Hands `msg` to the least-loaded member, waiting for room; false once stopped or
    /// memberless.
    async fn deliver(&self, msg: &EventReceive) -> bool {
        loop {
            let Some(tx) = self.pick() else {
                return false;
            };
            tokio::select! {
                sent = tx.send(msg.clone()) => if sent.is_ok() {
                    let size = msg.body.len() + msg.metadata.len();
                    self.counters.outgoing(1, size);
                    metrics::message_out("events_store", &msg.channel, 1);
                    return true;
                },
                () = self.stop.cancelled() => return false,
            }
        }
    }

    /// The open member with the fewest buffered messages; ties rotate.
    fn pick(&self) -> Option<mpsc::Sender<EventReceive>> {
        let members = self.members.lock();
        // Each load read once: deliveries change them meanwhile, and a second read could
        // leave no member tied with the least (a division by zero).
        let open: Vec<(&Member, usize)> = members
            .iter()
            .filter(|m| !m.tx.is_closed())
            .map(|m| (m, m.tx.max_capacity() - m.tx.capacity()))
            .collect();
        let least = open.iter().map(|(_, load)| *load).min()?;
        let tied: Vec<&Member> = open
            .iter()
            .filter(|(_, load)| *load == least)
            .map(|(m, _)| *m)
            .collect();
        let turn = self.rotate.fetch_add(1, Ordering::Relaxed) % tied.len().max(1);
        tied.get(turn).map(|m| m.tx.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_keys_round_trip() {
        let key = DurableKey {
            channel: "a.b".into(),
            client_id: "client".into(),
            group: "g1".into(),
        };
        assert_eq!(DurableKey::decode(&key.encode()), Some(key.clone()));
        assert!(key.encode().starts_with(&cursor_channel_prefix("a.b")));
        assert!(!key.encode().starts_with(&cursor_channel_prefix("a")));
    }
}
