//! Events store: per-channel durable logs with STAN-like sequences, six start
//! positions, queue groups, durable resume per (ClientID, channel, group) and retention.

mod consumer;
mod log;

use super::registry::SubStream;
use super::stats::{Book, Kind};
use crate::broker::errors::KubeMqError;
use crate::broker::ids::now_ns;
use crate::broker::store::{Store, StoreError};
use crate::broker::{metrics, validate};
use crate::kubemq::subscribe::EventsStoreType;
use crate::kubemq::{Event, EventReceive, Subscribe};
use consumer::{Consumer, DurableKey, Durables};
use futures::future::BoxFuture;
use log::Log;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use log::Info;

/// Every events-store channel and consumer.
pub struct EventsStore {
    /// Channel logs by name; write-locked only when a channel appears or is deleted.
    logs: RwLock<HashMap<String, Arc<Log>>>,
    /// Active queue groups by (channel, group), so new members join the running pump.
    groups: Mutex<HashMap<(String, String), Arc<Consumer>>>,
    durables: Arc<Durables>,
    book: Arc<Book>,
    store: Store,
    shutdown: CancellationToken,
    buffer: usize,
    next_member: AtomicU64,
}

/// Where a new consumer starts, decoded from the subscription.
#[derive(Debug, Clone, Copy)]
enum Start {
    NewOnly,
    First,
    Last,
    Sequence(u64),
    Time(i64),
}

/// The events-store checks after the shared ones: 107, 111, 112, 113, 114.
fn start_position(sub: &Subscribe) -> Result<Start, KubeMqError> {
    if validate::has_wildcard(&sub.channel) {
        return Err(KubeMqError::ChannelWildcards);
    }
    let value = sub.events_store_type_value;
    match EventsStoreType::try_from(sub.events_store_type_data) {
        Ok(EventsStoreType::StartNewOnly) => Ok(Start::NewOnly),
        Ok(EventsStoreType::StartFromFirst) => Ok(Start::First),
        Ok(EventsStoreType::StartFromLast) => Ok(Start::Last),
        Ok(EventsStoreType::StartAtSequence) if value <= 0 => {
            Err(KubeMqError::StartAtSequenceInvalid)
        }
        Ok(EventsStoreType::StartAtSequence) => Ok(Start::Sequence(value.unsigned_abs())),
        Ok(EventsStoreType::StartAtTime) if value <= 0 => Err(KubeMqError::StartAtTimeInvalid),
        Ok(EventsStoreType::StartAtTime) => Ok(Start::Time(value)),
        Ok(EventsStoreType::StartAtTimeDelta) if value <= 0 => {
            Err(KubeMqError::StartAtTimeDeltaInvalid)
        }
        Ok(EventsStoreType::StartAtTimeDelta) => Ok(Start::Time(
            now_ns().saturating_sub(value.saturating_mul(1_000_000_000)),
        )),
        Ok(EventsStoreType::Undefined) | Err(_) => Err(KubeMqError::SubscriptionTypeUndefined),
    }
}

/// The stream guard of one events-store subscription: leaves its consumer when dropped.
pub struct MemberGuard {
    store: Weak<EventsStore>,
    consumer: Arc<Consumer>,
    id: u64,
    group: Option<(String, String)>,
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        if !self.consumer.leave(self.id) {
            return;
        }
        let (Some(key), Some(es)) = (&self.group, self.store.upgrade()) else {
            return;
        };
        let mut groups = es.groups.lock();
        if groups
            .get(key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.consumer))
        {
            groups.remove(key);
        }
    }
}

/// A subscriber's stream of stored events.
pub type StoreStream = SubStream<EventReceive, MemberGuard>;

impl EventsStore {
    /// Rebuilds every channel and durable cursor from the store.
    pub fn open(
        store: Store,
        book: Arc<Book>,
        buffer: usize,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let mut logs = HashMap::new();
        for (name, first) in log::channel_records(&store)? {
            let log = Log::recover(&name, first, store.clone(), shutdown.child_token())?;
            let info = log.info();
            let counters = book.channel(Kind::EventsStore, &name);
            counters
                .in_messages
                .store(info.messages as i64, Ordering::Relaxed);
            counters
                .last_activity
                .store(info.last_timestamp / 1_000_000, Ordering::Relaxed);
            logs.insert(name, Arc::new(log));
        }
        Ok(Self {
            logs: RwLock::new(logs),
            groups: Mutex::new(HashMap::new()),
            durables: Arc::new(Durables::load(store.clone())?),
            book,
            store,
            shutdown,
            buffer,
            next_member: AtomicU64::new(1),
        })
    }

    fn log(&self, channel: &str) -> Arc<Log> {
        if let Some(log) = self.logs.read().get(channel) {
            return log.clone();
        }
        self.logs
            .write()
            .entry(channel.to_owned())
            .or_insert_with(|| {
                Arc::new(Log::new(
                    channel,
                    1,
                    self.store.clone(),
                    self.shutdown.child_token(),
                ))
            })
            .clone()
    }

    /// Stores a validated event; the future resolves with its sequence once durable.
    pub fn publish(&self, event: Event) -> BoxFuture<'static, Result<u64, StoreError>> {
        let counters = self.book.channel(Kind::EventsStore, &event.channel);
        counters.incoming(event.body.len() + event.metadata.len());
        metrics::message_in(Kind::EventsStore.name(), &event.channel, 1);
        let mut event = event;
        loop {
            match self.log(&event.channel).append(event) {
                Ok((seq, durable)) => return Box::pin(async move { durable.await.map(|()| seq) }),
                // Deleted under our feet: the next lookup finds or makes the new log.
                Err(back) => event = back,
            }
        }
    }

    /// Subscribes, validating the events-store rules; resumes a durable cursor if one
    /// exists for (ClientID, channel, group), ignoring the requested start.
    pub fn subscribe(self: &Arc<Self>, sub: &Subscribe) -> Result<StoreStream, KubeMqError> {
        let start = start_position(sub)?;
        let log = self.log(&sub.channel);
        let durable = DurableKey {
            channel: sub.channel.clone(),
            client_id: sub.client_id.clone(),
            group: sub.group.clone(),
        };
        let (tx, rx) = mpsc::channel(self.buffer.max(1));
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        let group = (!sub.group.is_empty()).then(|| (sub.channel.clone(), sub.group.clone()));
        let consumer = self.join(&log, start, group.as_ref(), id, tx, durable);
        let until = log.closed.clone();
        let guard = MemberGuard {
            store: Arc::downgrade(self),
            consumer,
            id,
            group,
        };
        Ok(SubStream::new(rx, guard, until))
    }

    /// Joins the running group consumer, or starts a new consumer and its pump.
    fn join(
        &self,
        log: &Arc<Log>,
        start: Start,
        group: Option<&(String, String)>,
        id: u64,
        tx: mpsc::Sender<EventReceive>,
        durable: DurableKey,
    ) -> Arc<Consumer> {
        let mut groups = self.groups.lock();
        if let Some(existing) = group.and_then(|g| groups.get(g)) {
            if existing.join(id, tx.clone(), durable.clone()) {
                return existing.clone();
            }
        }
        let next = match self.durables.get(&durable) {
            Some(cursor) => cursor + 1,
            None => first_sequence(log, start),
        };
        let counters = self.book.channel(Kind::EventsStore, &log.name);
        let consumer = Consumer::new(log.clone(), next, counters, self.durables.clone());
        consumer.join(id, tx, durable);
        if let Some(g) = group {
            groups.insert(g.clone(), consumer.clone());
        }
        tokio::spawn(consumer.clone().pump());
        consumer
    }

    /// Registers a channel (persisted, so it survives a restart).
    pub fn create(&self, channel: &str) {
        self.log(channel).persist_record();
    }

    /// Deletes a channel with its messages and cursors; its subscriptions end.
    pub async fn delete(&self, channel: &str) -> Result<bool, StoreError> {
        // The purge is queued before the logs lock is released, so a log recreated by a
        // racing publish writes after it and is not purged along.
        let (log, purged) = {
            let mut logs = self.logs.write();
            let Some(log) = logs.remove(channel) else {
                return Ok(false);
            };
            let purged = log.purge(self.durables.forget_channel(channel));
            (log, purged)
        };
        log.closed.cancel();
        self.groups.lock().retain(|(c, _), _| c != channel);
        purged.await?;
        Ok(true)
    }

    /// Figures of a channel, if it exists.
    pub fn info(&self, channel: &str) -> Option<Info> {
        self.logs.read().get(channel).map(|l| l.info())
    }

    /// Number of live subscriptions on `channel`.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.logs
            .read()
            .get(channel)
            .map_or(0, |l| l.members.load(Ordering::Relaxed))
    }

    /// Drops messages older than `retention` from every channel.
    pub fn apply_retention(&self, retention: Duration) {
        let age = i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = now_ns().saturating_sub(age);
        let logs: Vec<Arc<Log>> = self.logs.read().values().cloned().collect();
        for log in logs {
            log.trim(cutoff);
        }
    }
}

fn first_sequence(log: &Log, start: Start) -> u64 {
    match start {
        Start::NewOnly => log.start_new_only(),
        Start::First => log.start_first(),
        Start::Last => log.start_last(),
        Start::Sequence(seq) => log.start_at_sequence(seq),
        Start::Time(ns) => log.start_at_time(ns),
    }
}

/// Applies retention periodically until shutdown; holds the store only weakly so a
/// stopped broker's store can close.
pub async fn retention_loop(es: Weak<EventsStore>, retention: Duration, stop: CancellationToken) {
    let period = (retention / 2).clamp(Duration::from_millis(50), Duration::from_secs(30));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let Some(es) = es.upgrade() else { return };
        es.apply_retention(retention);
    }
}
