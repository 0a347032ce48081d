//! Events, events store, commands and queries: everything that is published to
//! subscribers rather than stored for consumers.
//!
//! - [`subject`]: NATS wildcard matching.
//! - [`registry`]: live subscriptions with queue groups (events, commands, queries).
//! - [`events`]: plain events. [`events_store`]: durable per-channel logs.
//! - [`requests`]: commands and queries. [`channels`]: channel management.
//! - [`stats`]: per-channel counters for `list-channels`.
//!
//! # Deliberate divergences from KubeMQ v2.4.0
//! - A subscriber whose buffer (`subscriber_buffer`) is full misses plain events and
//!   requests at once (counted as dropped) instead of after a 2 s write deadline.
//! - One ClientID may hold concurrent events-store subscriptions (the real server answers
//!   "stan: clientID already registered"); durable resume stays keyed by
//!   (ClientID, channel, group).
//! - In a command/query group the member with the fewest unanswered requests is chosen
//!   (random among ties, so idle groups behave like NATS's random pick).
//! - Events-store members are never dropped for slowness: the pump waits for room
//!   (back-pressure per consumer), and `Sent:true` is returned only once the event is
//!   durable, where the real server acknowledges before persisting.
//! - `kubemq.cluster.internal.requests` (channel management) is answered in-process.

pub mod channels;
pub mod events;
pub mod events_store;
pub mod registry;
pub mod requests;
pub mod stats;
pub mod subject;

use super::config::BrokerConfig;
use super::errors::KubeMqError;
use super::store::{Store, StoreError};
use crate::kubemq::subscribe::SubscribeType;
use crate::kubemq::{Event, EventReceive, Request, Response, Result as EventResult, Subscribe};
use events_store::EventsStore;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use registry::{Buffer, Registry, Subscribed};
use stats::{Book, Kind};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// A stored event whose write failed: 409 while shutting down, else the storage error.
fn store_failure(e: StoreError) -> Status {
    tracing::error!("events store write failed: {e}");
    match e {
        StoreError::Closed => KubeMqError::ShuttingDown.status(),
        other => Status::internal(other.to_string()),
    }
}

/// How many stored events of one SendEventsStream may await their commit at once.
const STREAM_IN_FLIGHT: usize = 256;

/// Pub/sub state.
pub struct PubSub {
    events: Registry<EventReceive>,
    commands: Registry<Request>,
    queries: Registry<Request>,
    store: Arc<EventsStore>,
    /// Shared with the task that empties it at shutdown.
    pending: Arc<requests::Pending>,
    book: Arc<Book>,
    /// Capacity of each subscriber's buffer.
    buffer: Buffer,
    /// Longest wait a command or query may ask for.
    max_request_timeout: Duration,
    /// Cancelled at broker shutdown: subscriptions end and waiting requests give up.
    shutdown: CancellationToken,
}

impl PubSub {
    /// Rebuilds events-store channels and durable cursors from the store.
    pub fn open(
        config: &BrokerConfig,
        store: Store,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        let book = Arc::new(Book::default());
        let buffer = Buffer {
            messages: config.subscriber_buffer.max(1),
            bytes: config.subscriber_buffer_bytes.max(1),
        };
        let es = Arc::new(EventsStore::open(
            store,
            book.clone(),
            buffer.messages,
            shutdown.clone(),
        )?);
        es.apply_retention(config.retention);
        let pending = Arc::new(requests::Pending::default());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&es);
            rt.spawn(events_store::retention_loop(
                weak,
                config.retention,
                shutdown.clone(),
            ));
            let (pending, stop) = (pending.clone(), shutdown.clone());
            rt.spawn(async move {
                stop.cancelled().await;
                pending.close();
            });
        }
        let pubsub = Arc::new(Self {
            events: Registry::new(Kind::Events.name()),
            commands: Registry::new(Kind::Commands.name()),
            queries: Registry::new(Kind::Queries.name()),
            store: es,
            pending,
            book,
            buffer,
            max_request_timeout: config.limits.max_request_timeout,
            shutdown,
        });
        Ok(pubsub)
    }

    pub async fn send_event(&self, event: Event) -> Result<EventResult, Status> {
        self.publish(event)?.await
    }

    /// Validates and publishes synchronously (so a stream keeps its order); the future
    /// resolves with the result once a stored event is durable.
    fn publish(
        &self,
        mut event: Event,
    ) -> Result<impl Future<Output = Result<EventResult, Status>>, KubeMqError> {
        events::validate_event(&event)?;
        if event.event_id.is_empty() {
            event.event_id = super::ids::nuid();
        }
        let event_id = event.event_id.clone();
        let stored = if event.store {
            Some(self.store.publish(event))
        } else {
            self.publish_event(event);
            None
        };
        Ok(async move {
            if let Some(durable) = stored {
                durable.await.map_err(store_failure)?;
            }
            Ok(EventResult {
                event_id,
                sent: true,
                error: String::new(),
            })
        })
    }

    /// SendEventsStream: a result for every failure and for every stored event; none for
    /// a plain event that was sent.
    pub fn send_events_stream(
        self: &Arc<Self>,
        events: BoxStream<'static, Result<Event, Status>>,
    ) -> BoxStream<'static, Result<EventResult, Status>> {
        let me = self.clone();
        events
            .map(move |item| me.stream_item(item))
            .buffered(STREAM_IN_FLIGHT)
            .filter_map(futures::future::ready)
            .boxed()
    }

    fn stream_item(
        &self,
        item: Result<Event, Status>,
    ) -> futures::future::BoxFuture<'static, Option<Result<EventResult, Status>>> {
        let event = match item {
            Ok(event) => event,
            Err(status) => {
                let status = Status::internal(status.message().to_owned());
                return futures::future::ready(Some(Err(status))).boxed();
            }
        };
        let (event_id, store) = (event.event_id.clone(), event.store);
        let failed = move |error: String| EventResult {
            event_id,
            sent: false,
            error,
        };
        match self.publish(event) {
            Ok(done) if store => async move {
                let result = done
                    .await
                    .unwrap_or_else(|s| failed(s.message().to_owned()));
                Some(Ok(result))
            }
            .boxed(),
            Ok(_) => futures::future::ready(None).boxed(),
            Err(e) => futures::future::ready(Some(Ok(failed(e.to_string())))).boxed(),
        }
    }

    pub fn subscribe_to_events(
        self: &Arc<Self>,
        sub: Subscribe,
    ) -> Result<BoxStream<'static, Result<EventReceive, Status>>, Status> {
        match SubscribeType::try_from(sub.subscribe_type_data) {
            Ok(SubscribeType::Events) => Ok(self.subscribe_plain(&sub)?.boxed()),
            Ok(SubscribeType::EventsStore) => {
                events::validate_subscriber(&sub)?;
                if !super::validate::has_wildcard(&sub.channel) {
                    self.book.channel(Kind::EventsStore, &sub.channel).touch();
                }
                Ok(self.store.subscribe(&sub)?.boxed())
            }
            _ => Err(KubeMqError::InvalidSubscribeType.status()),
        }
    }

    pub fn subscribe_to_requests(
        self: &Arc<Self>,
        sub: Subscribe,
    ) -> Result<BoxStream<'static, Result<Request, Status>>, Status> {
        Ok(self.subscribe_requests(&sub)?.boxed())
    }

    pub async fn send_request(&self, request: Request) -> Result<Response, Status> {
        Ok(self.request(request).await?)
    }

    pub fn send_response(&self, response: Response) -> Result<(), Status> {
        Ok(self.respond(response)?)
    }

    /// Live subscriptions on exactly `channel` (a concrete name or a pattern) of `kind`;
    /// lets tests wait until an SDK's asynchronous subscribe has reached the broker.
    pub fn subscriber_count(&self, kind: Kind, channel: &str) -> usize {
        match kind {
            Kind::Events => self.events.count(channel),
            Kind::EventsStore => self.store.subscriber_count(channel),
            Kind::Commands => self.commands.count(channel),
            Kind::Queries => self.queries.count(channel),
        }
    }
}

impl PubSub {
    /// Forgets the events, commands and queries channels idle for `idle` that nobody
    /// subscribes to by name. Events-store channels hold messages and stay (retention
    /// ages those).
    pub fn sweep_idle_channels(&self, idle: Duration) -> usize {
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let before = super::ids::now_ns() / 1_000_000 - idle_ms;
        [
            (Kind::Events, &self.events as &dyn Subscribed),
            (Kind::Commands, &self.commands),
            (Kind::Queries, &self.queries),
        ]
        .into_iter()
        .map(|(kind, registry)| {
            self.book
                .sweep(kind, before, |name| registry.subscribed(name))
        })
        .sum()
    }

    /// Registers a channel (channel management `create-channel`).
    pub fn create_channel(&self, kind: Kind, channel: &str) {
        self.book.pin(kind, channel);
        if kind == Kind::EventsStore {
            self.store.create(channel);
        }
    }

    /// Forgets a channel and purges its stored messages (`delete-channel`).
    pub async fn delete_channel(&self, kind: Kind, channel: &str) -> Result<(), StoreError> {
        self.book.remove(kind, channel);
        if kind == Kind::EventsStore {
            self.store.delete(channel).await?;
        }
        Ok(())
    }

    /// Known channels of `kind` accepted by `filter`, with stats and whether anyone is
    /// subscribed.
    pub fn list_channels(
        &self,
        kind: Kind,
        filter: impl Fn(&str) -> bool,
    ) -> Vec<(String, stats::Snapshot, bool)> {
        self.book
            .list(kind, filter)
            .into_iter()
            .map(|(name, snapshot)| {
                let active = match kind {
                    Kind::Events => self.events.has_match(&name),
                    Kind::EventsStore => self.store.subscriber_count(&name) > 0,
                    Kind::Commands => self.commands.has_match(&name),
                    Kind::Queries => self.queries.has_match(&name),
                };
                (name, snapshot, active)
            })
            .collect()
    }
}
