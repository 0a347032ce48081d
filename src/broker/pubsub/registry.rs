//! Live subscriptions of one pattern (events, commands or queries): exact channels and
//! NATS wildcards, with queue groups. Every ungrouped match gets a copy; each distinct
//! group gets one copy, for one member: scanning from a random start (as NATS does), the
//! first with the fewest unanswered requests and room in its buffer.

use super::super::metrics;
use super::super::validate::has_wildcard;
use super::subject;
use futures::Stream;
use parking_lot::RwLock;
use rand::Rng;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;

/// What a message weighs in a subscriber's byte budget: the bytes a client sent.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for crate::kubemq::EventReceive {
    fn weight(&self) -> usize {
        self.body.len() + self.metadata.len()
    }
}

impl Weigh for crate::kubemq::Request {
    fn weight(&self) -> usize {
        self.body.len() + self.metadata.len()
    }
}

/// How much one subscriber's buffer may hold: messages and bytes, whichever fills first.
/// One message always fits an empty buffer, so a message under the size limit is never
/// undeliverable.
#[derive(Debug, Clone, Copy)]
pub struct Buffer {
    pub messages: usize,
    pub bytes: usize,
}

struct Entry<T> {
    id: u64,
    group: String,
    tx: mpsc::Sender<T>,
    /// Bytes waiting in `tx`, against `budget`.
    queued: Arc<AtomicUsize>,
    budget: usize,
    /// Requests handed to this subscriber and not yet answered or expired; kept by the
    /// requests path (always 0 for events) so a group favours its least busy member.
    unanswered: Arc<AtomicUsize>,
}

/// Where one copy of a message goes.
pub struct Target<T> {
    tx: mpsc::Sender<T>,
    queued: Arc<AtomicUsize>,
    budget: usize,
    pub unanswered: Arc<AtomicUsize>,
}

impl<T: Weigh> Target<T> {
    /// Hands `item` over without waiting, or gives it back when the buffer is full by
    /// count or by bytes.
    fn try_send(&self, item: T) -> Result<(), T> {
        let weight = item.weight();
        let queued = self.queued.fetch_add(weight, Ordering::AcqRel);
        if queued > 0 && queued + weight > self.budget {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            return Err(item);
        }
        self.tx.try_send(item).map_err(|e| {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            e.into_inner()
        })
    }
}

struct Table<T> {
    /// Subscriptions on concrete channels, found by one hash lookup per message.
    exact: HashMap<String, Vec<Entry<T>>>,
    /// Wildcard subscriptions with their pattern; scanned on every message.
    wildcard: Vec<(String, Entry<T>)>,
}

struct Shared<T> {
    /// Read-locked by every publish (routing is a few lookups and never blocks);
    /// write-locked only to add or remove a subscription.
    table: RwLock<Table<T>>,
    next_id: AtomicU64,
    pattern: &'static str,
}

/// The subscriptions of one pattern; cheap to clone.
pub struct Registry<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Registry<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// How one publish went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    pub dropped: usize,
}

impl<T: Clone + Send + Weigh + 'static> Registry<T> {
    /// An empty registry; `pattern` labels its metrics.
    pub fn new(pattern: &'static str) -> Self {
        Self {
            shared: Arc::new(Shared {
                table: RwLock::new(Table {
                    exact: HashMap::new(),
                    wildcard: Vec::new(),
                }),
                next_id: AtomicU64::new(1),
                pattern,
            }),
        }
    }

    /// Adds a subscription; it lasts until the returned stream is dropped or `until` is
    /// cancelled.
    pub fn subscribe(
        &self,
        channel: &str,
        group: &str,
        buffer: Buffer,
        until: CancellationToken,
    ) -> SubStream<T, Registration<T>> {
        let (tx, rx) = mpsc::channel(buffer.messages.max(1));
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let queued = Arc::new(AtomicUsize::new(0));
        let entry = Entry {
            id,
            group: group.to_owned(),
            tx,
            queued: queued.clone(),
            budget: buffer.bytes,
            unanswered: Arc::default(),
        };
        {
            let mut table = self.shared.table.write();
            if has_wildcard(channel) {
                table.wildcard.push((channel.to_owned(), entry));
            } else {
                table
                    .exact
                    .entry(channel.to_owned())
                    .or_default()
                    .push(entry);
            }
        }
        metrics::subscribers(self.shared.pattern, 1.0);
        let guard = Registration {
            shared: self.shared.clone(),
            id,
            channel: channel.to_owned(),
        };
        SubStream::new(rx, guard, until).weighed(queued)
    }

    /// The subscriptions that get a message published on `channel`.
    pub fn route(&self, channel: &str) -> Vec<Target<T>> {
        let table = self.shared.table.read();
        let mut targets = Vec::new();
        let mut grouped: Vec<&Entry<T>> = Vec::new();
        let exact = table.exact.get(channel).into_iter().flatten();
        let wild = table
            .wildcard
            .iter()
            .filter(|(p, _)| subject::matches(p, channel))
            .map(|(_, e)| e);
        for entry in exact.chain(wild) {
            if entry.group.is_empty() {
                targets.push(entry.target());
            } else {
                grouped.push(entry);
            }
        }
        pick_group_members(&mut grouped, &mut targets);
        targets
    }

    /// Sends `msg` to `targets` without waiting; a full buffer drops the message for that
    /// subscriber (counted in `dropped`).
    pub fn deliver(&self, targets: Vec<Target<T>>, msg: T) -> Delivery {
        let mut result = Delivery::default();
        let n = targets.len();
        let mut msg = Some(msg);
        for (i, target) in targets.into_iter().enumerate() {
            let item = if i + 1 == n { msg.take() } else { msg.clone() };
            let Some(item) = item else { break };
            if target.try_send(item).is_ok() {
                result.delivered += 1;
            } else {
                result.dropped += 1;
                metrics::dropped(self.shared.pattern);
            }
        }
        result
    }

    /// Whether any live subscription matches `channel`.
    pub fn has_match(&self, channel: &str) -> bool {
        let table = self.shared.table.read();
        table.exact.get(channel).is_some_and(|v| !v.is_empty())
            || table
                .wildcard
                .iter()
                .any(|(p, _)| subject::matches(p, channel))
    }

    /// Number of live subscriptions whose channel (pattern) is exactly `channel`.
    pub fn count(&self, channel: &str) -> usize {
        let table = self.shared.table.read();
        table.exact.get(channel).map_or(0, Vec::len)
            + table.wildcard.iter().filter(|(p, _)| p == channel).count()
    }
}

/// Whether someone subscribes to a channel by its exact name; lets the channel sweep
/// treat every pattern's registry alike.
pub trait Subscribed {
    fn subscribed(&self, channel: &str) -> bool;
}

impl<T> Subscribed for Registry<T> {
    fn subscribed(&self, channel: &str) -> bool {
        self.shared
            .table
            .read()
            .exact
            .get(channel)
            .is_some_and(|v| !v.is_empty())
    }
}

impl<T> Entry<T> {
    fn target(&self) -> Target<T> {
        Target {
            tx: self.tx.clone(),
            queued: self.queued.clone(),
            budget: self.budget,
            unanswered: self.unanswered.clone(),
        }
    }

    /// Lower is better: members with buffer room first, then the least busy.
    fn load(&self) -> (bool, usize) {
        (
            self.tx.capacity() == 0 || self.queued.load(Ordering::Relaxed) >= self.budget,
            self.unanswered.load(Ordering::Relaxed),
        )
    }
}

/// Picks one member per distinct group: scanning from a random start, the first with the
/// lowest [`Entry::load`] (so ties, and all of events' choices, stay random as in NATS).
fn pick_group_members<T>(grouped: &mut [&Entry<T>], targets: &mut Vec<Target<T>>) {
    if grouped.is_empty() {
        return;
    }
    grouped.sort_by(|a, b| a.group.cmp(&b.group));
    let mut rng = rand::thread_rng();
    for run in grouped.chunk_by(|a, b| a.group == b.group) {
        let start = rng.gen_range(0..run.len());
        let chosen = (0..run.len())
            .map(|i| run[(start + i) % run.len()])
            .min_by_key(|e| e.load())
            .unwrap_or(run[start]);
        targets.push(chosen.target());
    }
}

/// Removes its subscription from the registry when dropped.
pub struct Registration<T> {
    shared: Arc<Shared<T>>,
    id: u64,
    channel: String,
}

impl<T> Drop for Registration<T> {
    fn drop(&mut self) {
        {
            let mut table = self.shared.table.write();
            if has_wildcard(&self.channel) {
                table.wildcard.retain(|(_, e)| e.id != self.id);
            } else if let Some(list) = table.exact.get_mut(&self.channel) {
                list.retain(|e| e.id != self.id);
                if list.is_empty() {
                    table.exact.remove(&self.channel);
                }
            }
        }
        metrics::subscribers(self.shared.pattern, -1.0);
    }
}

/// A subscriber's outgoing gRPC stream: the buffered messages, until the client goes
/// away (the stream is dropped, and with it `guard`) or `until` is cancelled.
pub struct SubStream<T, G> {
    rx: mpsc::Receiver<T>,
    /// Undoes the subscription when the stream is dropped.
    _guard: G,
    until: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The byte count of a [`Buffer`] budget, lowered as messages leave.
    queued: Option<Arc<AtomicUsize>>,
}

impl<T, G> SubStream<T, G> {
    pub fn new(rx: mpsc::Receiver<T>, guard: G, until: CancellationToken) -> Self {
        Self {
            rx,
            _guard: guard,
            until: Box::pin(until.cancelled_owned()),
            queued: None,
        }
    }

    fn weighed(mut self, queued: Arc<AtomicUsize>) -> Self {
        self.queued = Some(queued);
        self
    }
}

impl<T: Weigh, G: Unpin> Stream for SubStream<T, G> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Buffered messages first: the cancellation future (a lock on the shared token)
        // is only polled when the stream would otherwise wait.
        if let Poll::Ready(msg) = self.rx.poll_recv(cx) {
            if let (Some(queued), Some(msg)) = (&self.queued, &msg) {
                queued.fetch_sub(msg.weight(), Ordering::AcqRel);
            }
            return Poll::Ready(msg.map(Ok));
        }
        match self.until.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubemq::EventReceive;
    use futures::StreamExt;

    fn sized(n: usize) -> EventReceive {
        EventReceive {
            body: vec![0; n],
            ..EventReceive::default()
        }
    }

    #[tokio::test]
    async fn a_subscriber_buffer_holds_at_most_its_bytes_and_frees_them_as_it_drains() {
        let registry = Registry::<EventReceive>::new("events");
        let buffer = Buffer {
            messages: 100,
            bytes: 1000,
        };
        let mut stream = registry.subscribe("c", "", buffer, CancellationToken::new());
        let publish = |n| registry.deliver(registry.route("c"), sized(n));
        assert_eq!(publish(600).delivered, 1);
        assert_eq!(publish(400).delivered, 1, "exactly the budget fits");
        assert_eq!(publish(1).dropped, 1, "one byte over is dropped");
        let first = stream.next().await.expect("open").expect("message");
        assert_eq!(first.body.len(), 600);
        assert_eq!(publish(600).delivered, 1, "drained bytes are free again");
        for _ in 0..2 {
            stream.next().await.expect("open").expect("message");
        }
        assert_eq!(
            publish(5000).delivered,
            1,
            "an empty buffer takes one message of any size"
        );
    }
}
