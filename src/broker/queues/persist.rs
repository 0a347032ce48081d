//! How queues live in the store: prost-encoded `QueueMessage`s keyed by (queue, sequence),
//! delayed messages in a log of their own, and a sequence high-water mark per queue.

use crate::broker::store::{self, Op, Store, StoreError, Table};
use crate::kubemq::QueueMessage;
use prost::Message;
use std::future::Future;
use std::pin::Pin;

/// Name of the log holding delayed messages. It contains a space, so no queue can have it.
pub(crate) const DELAY_LOG: &str = " delayed";

/// Meta-table prefix of the per-queue sequence high-water marks.
const HWM_PREFIX: &[u8] = b"queues/hwm/";

/// A commit already handed to the store writer, still to be awaited.
pub(crate) type Pending<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// The stored form. The sequence is not trusted from the value: the key carries it.
pub(crate) fn encode(msg: &QueueMessage) -> Vec<u8> {
    msg.encode_to_vec()
}

/// Decodes a stored message and gives it the sequence from its key.
pub(crate) fn decode(value: &[u8], seq: u64) -> Option<QueueMessage> {
    let mut msg = QueueMessage::decode(value).ok()?;
    super::message::attrs(&mut msg).sequence = seq;
    Some(msg)
}

/// The stored messages `seqs` of queue `name`, read in one transaction; `None` where a
/// record is gone (its queue was deleted meanwhile).
pub(crate) fn load(
    store: &Store,
    name: &str,
    seqs: &[u64],
) -> Result<Vec<Option<QueueMessage>>, StoreError> {
    let keys = seqs.iter().map(|seq| store::key(name, *seq));
    let values = store.get_many(Table::Queues, keys)?;
    Ok(values
        .into_iter()
        .zip(seqs)
        .map(|(v, seq)| v.and_then(|v| decode(&v, *seq)))
        .collect())
}

pub(crate) fn put(name: &str, seq: u64, value: Vec<u8>) -> Op {
    Op::Put {
        table: Table::Queues,
        key: store::key(name, seq),
        value,
    }
}

pub(crate) fn delete(name: &str, seq: u64) -> Op {
    Op::Delete {
        table: Table::Queues,
        key: store::key(name, seq),
    }
}

fn hwm_key(name: &str) -> Vec<u8> {
    let mut k = HWM_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// Records that sequences up to `seq` have been handed out in `name`.
pub(crate) fn put_hwm(name: &str, seq: u64) -> Op {
    Op::Put {
        table: Table::Meta,
        key: hwm_key(name),
        value: seq.to_be_bytes().to_vec(),
    }
}

/// Everything stored for `name`: messages and high-water mark.
pub(crate) fn purge(name: &str) -> Vec<Op> {
    vec![
        Op::DeletePrefix {
            table: Table::Queues,
            prefix: store::prefix(name),
        },
        Op::Delete {
            table: Table::Meta,
            key: hwm_key(name),
        },
    ]
}

/// Every stored high-water mark, by queue name.
pub(crate) fn load_hwms(store: &Store) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = store.scan(Table::Meta, HWM_PREFIX)?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| {
            let name = std::str::from_utf8(k.get(HWM_PREFIX.len()..)?).ok()?;
            let seq = u64::from_be_bytes(v.as_slice().try_into().ok()?);
            Some((name.to_owned(), seq))
        })
        .collect())
}

/// Hands `ops` to the store writer right now and returns the result to await.
///
/// `Store::commit` queues before returning, so calling this while holding a queue's lock
/// makes jobs reach the writer in the order sequences were handed out. That keeps the
/// stored high-water mark monotonic.
pub(crate) fn begin_commit(store: &Store, ops: Vec<Op>) -> Pending<'_> {
    Box::pin(store.commit(ops))
}
