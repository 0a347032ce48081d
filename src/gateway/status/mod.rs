//! The built-in status page: `/status` (HTML, CSS and JS embedded in the binary, no CDN)
//! and its data at `/status.json`, refreshed by the page every 1.5 s.
//!
//! The gateway has no router of its own, so what it shows of the endpoints comes from the
//! workers: each router process's membership heartbeat carries a compact status of its
//! endpoints, and the page keeps the latest per worker. Jobs come from the jobs channel's
//! history and their queues.
//!
//! - [`view`]: the document and how workers' reports merge per endpoint.
//! - [`workers`]: the latest heartbeat per worker. [`jobs`]: job history and progress.
//! - [`handler`]: the two routes.

pub mod handler;
pub mod jobs;
pub mod view;
pub mod workers;

use crate::config::RouterConfig;
use crate::kubemq::client::{Client, ClientOptions, Error as ClientError};
use crate::kubemq::queues::QueueClient;
use crate::kubemq::subscribe::{EventsStoreType, SubscribeType};
use crate::kubemq::Subscribe;
use crate::protocol::batch::JOBS_CHANNEL;
use crate::protocol::members::MEMBERS_CHANNEL;
use crate::provider::ProviderKind;
use jobs::JobBoard;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use view::StatusDoc;
use workers::Workers;

/// What the status routes read; cheap to clone.
#[derive(Clone)]
pub struct Board {
    inner: Arc<Inner>,
}

struct Inner {
    address: String,
    routes: Vec<view::RouteView>,
    endpoints: Vec<(String, ProviderKind)>,
    workers: Arc<Workers>,
    jobs: Arc<JobBoard>,
    /// The heartbeat subscription's "stream is open" flag, once subscribed.
    connected: OnceLock<Arc<AtomicBool>>,
}

impl Board {
    /// Starts following the broker at `address` in the background (connecting until it
    /// is there) until `shutdown` is cancelled.
    pub fn start(
        address: &str,
        client_id: &str,
        config: &RouterConfig,
        shutdown: CancellationToken,
    ) -> Self {
        let board = Self {
            inner: Arc::new(Inner {
                address: address.to_owned(),
                routes: view::routes(config),
                endpoints: view::configured(config),
                workers: Arc::default(),
                jobs: Arc::default(),
                connected: OnceLock::new(),
            }),
        };
        let follower = board.clone();
        let client_id = format!("{client_id}-status");
        // Ends at shutdown; the page only reads what it gathered, so nothing to wait for.
        tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            tokio::select! {
                () = shutdown.cancelled() => {}
                started = follower.follow(&client_id, &mut tasks) => match started {
                    // The subscriptions end with the client: hold it until shutdown.
                    Ok(_client) => shutdown.cancelled().await,
                    Err(e) => tracing::error!("the status page cannot follow the broker: {e}"),
                },
            }
        });
        board
    }

    /// Connects and subscribes, leaving the followers in `tasks`; returns the client
    /// their subscriptions live on.
    async fn follow(
        &self,
        client_id: &str,
        tasks: &mut JoinSet<()>,
    ) -> Result<Client, ClientError> {
        let address = &self.inner.address;
        let mut options = ClientOptions::new(address, client_id);
        options.connect_timeout = None;
        let client = Client::connect(options).await?;
        let heartbeats = client
            .subscribe_to_events(subscribe(&client, MEMBERS_CHANNEL, false))
            .await?;
        let _ = self.inner.connected.set(heartbeats.active_flag());
        let history = client
            .subscribe_to_events(subscribe(&client, JOBS_CHANNEL, true))
            .await?;
        let queues = QueueClient::new(address, client_id)?;
        tasks.spawn(workers::follow(Arc::clone(&self.inner.workers), heartbeats));
        tasks.spawn(jobs::follow(Arc::clone(&self.inner.jobs), history));
        tasks.spawn(jobs::refresh(Arc::clone(&self.inner.jobs), queues));
        Ok(client)
    }

    /// The page's data now.
    pub fn snapshot(&self) -> StatusDoc {
        let inner = &self.inner;
        let seen = inner.workers.seen(Instant::now());
        let reports: Vec<(&str, &[crate::routing::EndpointStatus])> = seen
            .iter()
            .filter(|s| s.live)
            .map(|s| (s.beat.id.as_str(), s.beat.endpoints.as_slice()))
            .collect();
        StatusDoc {
            generated_at: unix_ms(),
            broker: view::BrokerView {
                address: inner.address.clone(),
                connected: inner
                    .connected
                    .get()
                    .is_some_and(|c| c.load(Ordering::Acquire)),
            },
            routes: inner.routes.clone(),
            endpoints: view::endpoints(&inner.endpoints, &reports),
            workers: seen
                .iter()
                .map(|s| view::WorkerView {
                    id: s.beat.id.clone(),
                    last_heard_ms: u64::try_from(s.ago.as_millis()).unwrap_or(u64::MAX),
                    live: s.live,
                })
                .collect(),
            jobs: inner.jobs.views(),
        }
    }
}

/// Plain events for heartbeats (every one, no group); the whole stored history for jobs.
fn subscribe(client: &Client, channel: &str, stored: bool) -> Subscribe {
    let (kind, start) = if stored {
        (
            SubscribeType::EventsStore,
            EventsStoreType::StartFromFirst as i32,
        )
    } else {
        (SubscribeType::Events, 0)
    };
    Subscribe {
        subscribe_type_data: kind as i32,
        client_id: client.client_id().to_owned(),
        channel: channel.to_owned(),
        events_store_type_data: start,
        ..Subscribe::default()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
