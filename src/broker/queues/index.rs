//! The ready set as memory keeps it: per message only what a take decides on (expiry,
//! receive counts, body length), ordered by sequence. Bodies stay in the store.

use super::message;
use crate::kubemq::QueueMessage;
use std::collections::VecDeque;

/// One ready message, without its body: 32 bytes whatever the body's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// `Attributes.ExpirationAt` in Unix ns; 0 when the message never expires.
    pub expiration_at: i64,
    /// When this copy was stored (Unix ns), for the retention check.
    pub timestamp: i64,
    /// Stored ReceiveCount (failed deliveries so far).
    pub receive_count: i32,
    /// `Policy.MaxReceiveCount`; 0 means unlimited.
    pub max_receive_count: i32,
    pub body_len: u32,
}

impl Entry {
    pub fn of(msg: &QueueMessage) -> Self {
        let a = msg.attributes.clone().unwrap_or_default();
        Self {
            expiration_at: a.expiration_at,
            timestamp: a.timestamp,
            receive_count: a.receive_count,
            max_receive_count: msg.policy.as_ref().map_or(0, |p| p.max_receive_count),
            body_len: u32::try_from(msg.body.len()).unwrap_or(u32::MAX),
        }
    }

    pub fn bytes(&self) -> i64 {
        i64::from(self.body_len)
    }

    /// Whether the message expired, or outlived the store's retention.
    pub fn expired(&self, now: i64, retention_ns: i64) -> bool {
        (self.expiration_at > 0 && self.expiration_at <= now)
            || now.saturating_sub(self.timestamp) > retention_ns
    }

    /// Whether one more delivery would exceed MaxReceiveCount.
    pub fn over_limit(&self) -> bool {
        message::exceeds(self.receive_count + 1, self.max_receive_count)
    }
}

/// Ready messages by sequence, with their body bytes summed.
///
/// A sorted deque rather than a map: 40 bytes a message with nothing around it. New
/// sequences are always the highest (pushed at the back) and takes pop the front; only a
/// release puts back older sequences, and those were taken from near the front, where a
/// deque insert moves few entries.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    by_seq: VecDeque<(u64, Entry)>,
    bytes: i64,
}

/// Below this capacity the deque is never shrunk.
const KEEP_CAPACITY: usize = 1024;

impl Ready {
    pub fn insert(&mut self, seq: u64, entry: Entry) {
        self.bytes += entry.bytes();
        if self.by_seq.back().map_or(true, |(last, _)| *last < seq) {
            self.by_seq.push_back((seq, entry));
            return;
        }
        match self.by_seq.binary_search_by_key(&seq, |(s, _)| *s) {
            Ok(i) => {
                if let Some(slot) = self.by_seq.get_mut(i) {
                    self.bytes -= slot.1.bytes();
                    slot.1 = entry;
                }
            }
            Err(i) => self.by_seq.insert(i, (seq, entry)),
        }
    }

    /// The oldest ready message. Gives memory back once a drained queue uses a quarter
    /// of what it once needed.
    pub fn pop_first(&mut self) -> Option<(u64, Entry)> {
        let first = self.by_seq.pop_front()?;
        self.bytes -= first.1.bytes();
        let cap = self.by_seq.capacity();
        if cap > KEEP_CAPACITY && self.by_seq.len() < cap / 4 {
            self.by_seq.shrink_to(self.by_seq.len() * 2);
        }
        Some(first)
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Body bytes of every ready message.
    pub fn bytes(&self) -> i64 {
        self.bytes
    }

    pub fn first_seq(&self) -> Option<u64> {
        self.by_seq.front().map(|(seq, _)| *seq)
    }

    pub fn clear(&mut self) {
        self.by_seq = VecDeque::new();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body_len: u32) -> Entry {
        Entry {
            expiration_at: 0,
            timestamp: 0,
            receive_count: 0,
            max_receive_count: 0,
            body_len,
        }
    }

    #[test]
    fn entries_stay_small() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn ready_pops_by_sequence_and_keeps_bytes() {
        let mut r = Ready::default();
        r.insert(5, entry(10));
        r.insert(2, entry(3));
        r.insert(5, entry(7));
        assert_eq!((r.len(), r.bytes(), r.first_seq()), (2, 10, Some(2)));
        assert_eq!(r.pop_first().map(|(s, _)| s), Some(2));
        assert_eq!(r.bytes(), 7);
        r.insert(9, entry(1));
        r.insert(3, entry(1));
        r.insert(7, entry(1));
        let order: Vec<u64> = std::iter::from_fn(|| r.pop_first().map(|(s, _)| s)).collect();
        assert_eq!(order, [3, 5, 7, 9]);
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn expiry_counts_retention_too() {
        let e = Entry {
            expiration_at: 100,
            timestamp: 50,
            ..entry(0)
        };
        assert!(!e.expired(99, 1_000));
        assert!(e.expired(100, 1_000));
        let old = Entry {
            expiration_at: 0,
            ..e
        };
        assert!(old.expired(1_051, 1_000));
        assert!(!old.expired(1_050, 1_000));
    }
}
