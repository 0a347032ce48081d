//! Queues: durable messages taken by competing consumers, with every receive style
//! KubeMQ offers (receive/peek, ack-all, the single-message stream, downstream
//! transactions, upstream sends).
//!
//! # Layout
//! - `queue`: one queue's in-memory state; `index`: its ready set without bodies;
//!   `lease`: messages a consumer holds; `capacity`: the per-queue limits.
//! - `message`: validation and attribute rules; `persist`: the stored form.
//! - `take`: picking from the index and reading the bodies back.
//! - `send`, `receive` (receive, peek, ack-all), `stream` (StreamQueueMessage),
//!   `downstream`, `upstream`, `delay`, `settle` (ack, nack, dead-letter),
//!   `info` (QueuesInfo and channel management), `collect` (the wait they share).
//!
//! In-memory state is authoritative while running, but it holds only an index of ready
//! messages: bodies live in the store and a take reads them back. So a message enters
//! the ready index only after its store write is acknowledged. A send is committed before
//! it is acknowledged; settlements are queued without waiting.

mod capacity;
mod collect;
mod delay;
mod downstream;
mod index;
mod info;
mod lease;
mod message;
mod persist;
mod queue;
mod receive;
mod send;
mod settle;
mod stream;
mod take;
mod upstream;

pub use info::QueueChannelStats;

use super::config::{BrokerConfig, QueueLimits};
use super::store::{self, Store, StoreError, Table};
use crate::kubemq::{
    AckAllQueueMessagesRequest, AckAllQueueMessagesResponse, QueueMessage,
    QueueMessagesBatchRequest, QueueMessagesBatchResponse, QueuesDownstreamRequest,
    QueuesDownstreamResponse, QueuesInfoRequest, QueuesInfoResponse, QueuesUpstreamRequest,
    QueuesUpstreamResponse, ReceiveQueueMessagesRequest, ReceiveQueueMessagesResponse,
    SendQueueMessageResult, StreamQueueMessagesRequest, StreamQueueMessagesResponse,
};
use futures::stream::BoxStream;
use index::Entry;
use parking_lot::RwLock;
use queue::Queue;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// All queues.
pub struct Queues {
    limits: QueueLimits,
    /// `BrokerConfig::retention` in ns: older messages are dropped at delivery.
    retention_ns: i64,
    store: Store,
    /// Cancelled at broker shutdown: waits end, streams close.
    shutdown: CancellationToken,
    /// Every known queue. Read-locked on each call, write-locked only to add or remove.
    registry: RwLock<HashMap<String, Arc<Queue>>>,
    /// Shared with the release task.
    delays: Arc<delay::Delays>,
}

type Out<T> = BoxStream<'static, Result<T, Status>>;

impl Queues {
    /// Rebuilds every queue from the store.
    pub fn open(
        config: &BrokerConfig,
        store: Store,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        let queues = Arc::new(Self {
            limits: config.queues.clone(),
            retention_ns: i64::try_from(config.retention.as_nanos()).unwrap_or(i64::MAX),
            store,
            shutdown: shutdown.clone(),
            registry: RwLock::new(HashMap::new()),
            delays: Arc::default(),
        });
        queues.restore()?;
        delay::spawn(&queues, shutdown);
        Ok(queues)
    }

    /// Rebuilds the queues from the store: every stored message becomes ready again (in-flight
    /// ones included, with their sequences) as an index entry, its body left on disk;
    /// delayed ones go back to the schedule.
    fn restore(&self) -> Result<(), StoreError> {
        for (name, hwm) in persist::load_hwms(&self.store)? {
            let q = self.queue(&name);
            let mut st = q.lock();
            st.next_seq = st.next_seq.max(hwm + 1);
        }
        let mut delayed = Vec::new();
        // Records come in key order, so one queue's run is contiguous: look it up once.
        let mut current: Option<Arc<Queue>> = None;
        self.store.visit(Table::Queues, &[], |key, value| {
            let Some((name, seq)) = store::split_key(key) else {
                tracing::warn!("skipping a queue record with a malformed key");
                return;
            };
            let Some(msg) = persist::decode(value, seq) else {
                tracing::warn!(queue = %name, seq, "skipping an undecodable queue message");
                return;
            };
            if name == persist::DELAY_LOG {
                delayed.push(msg.clone());
                self.delays.restore(seq, msg);
                return;
            }
            let q = match current.take() {
                Some(q) if q.name == name => q,
                _ => self.queue(&name),
            };
            let mut st = q.lock();
            st.next_seq = st.next_seq.max(seq + 1);
            q.insert_ready(&mut st, [(seq, Entry::of(&msg))]);
            drop(st);
            current = Some(q);
        })?;
        for q in self.registry.read().values() {
            q.publish_gauges(&q.lock());
        }
        self.count_delayed(&delayed, 1);
        Ok(())
    }

    /// The queue called `name`, created on first use.
    fn queue(&self, name: &str) -> Arc<Queue> {
        if let Some(q) = self.registry.read().get(name) {
            return q.clone();
        }
        self.registry
            .write()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Queue::new(name)))
            .clone()
    }

    pub async fn send(&self, msg: QueueMessage) -> SendQueueMessageResult {
        let mut results = self.send_many(vec![msg]).await;
        results.pop().unwrap_or_default()
    }

    pub async fn send_batch(
        &self,
        req: QueueMessagesBatchRequest,
    ) -> Result<QueueMessagesBatchResponse, Status> {
        if req.messages.is_empty() {
            return Err(Status::unknown("empty messages batch"));
        }
        let results = self.send_many(req.messages).await;
        // Divergence from v2.4.0: HaveErrors is also set for validation failures
        // (upstream sets it only for storage failures, KUBEMQ.md §3.2).
        let have_errors = results.iter().any(|r| r.is_error);
        Ok(QueueMessagesBatchResponse {
            batch_id: req.batch_id,
            results,
            have_errors,
        })
    }

    pub async fn receive(&self, req: ReceiveQueueMessagesRequest) -> ReceiveQueueMessagesResponse {
        receive::receive(self, req).await
    }

    pub async fn ack_all(&self, req: AckAllQueueMessagesRequest) -> AckAllQueueMessagesResponse {
        receive::ack_all(self, req).await
    }

    pub fn stream(
        self: &Arc<Self>,
        input: BoxStream<'static, Result<StreamQueueMessagesRequest, Status>>,
    ) -> Out<StreamQueueMessagesResponse> {
        stream::open(self.clone(), input)
    }

    pub fn downstream(
        self: &Arc<Self>,
        input: BoxStream<'static, Result<QueuesDownstreamRequest, Status>>,
    ) -> Out<QueuesDownstreamResponse> {
        downstream::open(self.clone(), input)
    }

    pub fn upstream(
        self: &Arc<Self>,
        input: BoxStream<'static, Result<QueuesUpstreamRequest, Status>>,
    ) -> Out<QueuesUpstreamResponse> {
        upstream::open(self.clone(), input)
    }

    pub fn info(&self, req: QueuesInfoRequest) -> QueuesInfoResponse {
        info::info(self, req)
    }

    /// Every queue whose name contains `search`, with live stats.
    pub fn list(&self, search: &str) -> Vec<QueueChannelStats> {
        info::list(self, search)
    }

    /// Registers an empty queue (no-op when it exists).
    pub fn create(&self, name: &str) {
        self.queue(name);
    }

    /// Removes a queue with its stored and delayed messages and its sequence counter.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let removed = self.registry.write().remove(name);
        if let Some(q) = removed {
            let mut st = q.lock();
            st.deleted = true;
            st.ready.clear();
            st.delayed = Default::default();
            drop(st);
            q.unpublish_gauges();
        }
        let mut ops = persist::purge(name);
        ops.extend(
            self.delays
                .purge(name)
                .into_iter()
                .map(|id| persist::delete(persist::DELAY_LOG, id)),
        );
        self.store.commit(ops).await
    }

    /// Forgets the queues made for one batch job or request (see
    /// [`crate::metrics::is_per_id_channel`]) that are empty, unused and idle for `idle`,
    /// store records included; returns how many went. Without this, every job would leave
    /// its results and dead-letter queues behind for the life of the broker.
    pub async fn forget_idle(&self, idle: std::time::Duration) -> usize {
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let before = super::ids::now_ns() / 1_000_000 - idle_ms;
        let mut commits = Vec::new();
        {
            let mut registry = self.registry.write();
            registry.retain(|name, q| {
                // Only the registry holds it, so no call is using it, and none can
                // reach it while the write lock is held.
                if !crate::metrics::is_per_id_channel(name) || Arc::strong_count(q) > 1 {
                    return true;
                }
                let st = q.lock();
                if !Queue::is_empty_and_unused(&st) || st.stats.last_activity_ms >= before {
                    return true;
                }
                drop(st);
                q.unpublish_gauges();
                // Queued to the writer now, under the lock, so a queue of the same name
                // made later writes after this purge.
                commits.push(persist::begin_commit(&self.store, persist::purge(name)));
                false
            });
        }
        let forgotten = commits.len();
        for commit in commits {
            if let Err(e) = commit.await {
                tracing::warn!("forgetting an idle queue's records failed: {e}");
            }
        }
        forgotten
    }

    /// Ready messages in `name` (not in flight, not delayed).
    pub fn depth(&self, name: &str) -> usize {
        self.registry
            .read()
            .get(name)
            .map_or(0, |q| q.lock().ready.len())
    }
}
