//! The embedded KubeMQ-compatible broker: KubeMQ's gRPC API (and its REST API) served
//! from one process, with durable queues and events store.
//!
//! # Layout
//! - [`config`]: settings and KubeMQ's limits.
//! - [`errors`], [`validate`], [`ids`]: the error catalogue, channel rules, id shapes.
//! - [`store`]: redb storage with group commit.
//! - [`pubsub`]: events, events store, commands and queries, channel management.
//! - [`queues`]: queues, with every receive style KubeMQ offers.
//! - [`grpc`]: the `kubemq.kubemq` service, delegating to the parts above.
//! - [`rest`]: the REST API on 9090, plus `/health`, `/ready`, `/metrics`.
//! - [`server`]: binds the listeners and runs until shutdown.

pub mod config;
pub mod errors;
pub mod grpc;
pub mod ids;
pub mod metrics;
pub mod pubsub;
pub mod queues;
pub mod rest;
pub mod server;
pub mod store;
pub mod validate;

use config::BrokerConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

pub use server::{start, RunningBroker};

/// Version reported by Ping and REST: the KubeMQ server version we are compatible with.
/// SDKs warn outside 2.2–2.99, so this is the upstream version, not ours.
pub const COMPAT_VERSION: &str = "v2.4.0";

/// Shared broker state, one per process.
pub struct Broker {
    pub config: BrokerConfig,
    /// Unix seconds at start, for Ping.
    pub started_at: i64,
    pub store: Store,
    pub pubsub: Arc<pubsub::PubSub>,
    pub queues: Arc<queues::Queues>,
    /// Cancelled at shutdown: long polls and subscriptions end, new calls get 409.
    pub shutdown: CancellationToken,
    /// Set once recovery has finished; until then calls are refused as not ready.
    ready: AtomicBool,
}

/// Forgets what appeared by use and has been idle for `forget_idle_channels_after`:
/// pub/sub channels ([`pubsub::PubSub::sweep_idle_channels`]) and per-job queues
/// ([`queues::Queues::forget_idle`]), looking a few times per window until shutdown.
async fn forget_idle_loop(broker: std::sync::Weak<Broker>) {
    let Some((idle, stop)) = broker
        .upgrade()
        .map(|b| (b.config.forget_idle_channels_after, b.shutdown.clone()))
    else {
        return;
    };
    let every = (idle / 6).clamp(Duration::from_millis(100), Duration::from_secs(10));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let Some(broker) = broker.upgrade() else {
            return;
        };
        broker.pubsub.sweep_idle_channels(idle);
        broker.queues.forget_idle(idle).await;
    }
}

impl Broker {
    /// Opens the store, rebuilds queues and events store from it, and returns the broker
    /// ready to serve.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, StoreError> {
        // The recorder must exist before the queues cache their metric handles.
        crate::metrics::handle();
        validate::apply(&config.limits);
        let store = Store::open(&config.data_dir, config.fsync)?;
        let shutdown = CancellationToken::new();
        let pubsub = pubsub::PubSub::open(&config, store.clone(), shutdown.clone())?;
        let queues = queues::Queues::open(&config, store.clone(), shutdown.clone())?;
        let broker = Arc::new(Self {
            started_at: ids::now_secs(),
            config,
            store,
            pubsub,
            queues,
            shutdown,
            ready: AtomicBool::new(false),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(forget_idle_loop(Arc::downgrade(&broker)));
        }
        broker.ready.store(true, Ordering::Release);
        Ok(broker)
    }

    /// Whether the broker accepts calls (recovered and not shutting down).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutdown.is_cancelled()
    }
}
