//! The OpenAI-compatible gateway: apps using OpenAI SDKs change their base URL, and each
//! chat request travels as a JSON-mode KubeMQ query on its route's channel to a worker.
//!
//! # Layout
//! - [`app`]: the routes and the layer stack (the composition root).
//! - [`chat`]: `POST /v1/chat/completions` (query out, answer or failure back).
//! - [`stream`]: `stream: true`, chunks relayed from the worker's events as SSE;
//!   [`stream_hub`]: the one subscription they all arrive on.
//! - [`models`]: `GET /v1/models`. [`health`]: `/health`, `/ready`, `/metrics`.
//! - [`routes`]: `model` → route, channel, timeout, pinned model.
//! - [`broker`]: the background connection to the broker.
//! - [`auth`], [`limit`], [`request_id`], [`metrics`]: one cross-cutting concern each.
//! - [`error`]: every failure, its status and its OpenAI-shaped body.
//! - [`files`], [`batches`]: OpenAI's Files and Batches APIs over batch jobs, with
//!   their state in the broker ([`batchapi`]).
//! - [`status`]: the built-in status page (`/status`, `/status.json`).

pub mod app;
pub mod auth;
pub mod batchapi;
pub mod batches;
pub mod broker;
pub mod chat;
pub mod error;
pub mod files;
pub mod health;
pub mod limit;
pub mod metrics;
pub mod models;
pub mod request_id;
pub mod routes;
pub mod status;
pub mod stream;
pub mod stream_hub;

use crate::config::RouterConfig;
use app::AppState;
use auth::ApiKeys;
use broker::BrokerLink;
use limit::KeyLimit;
use routes::RouteTable;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default body cap: 4 MiB.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// `host:port` of the broker's gRPC listener.
    pub broker: String,
    /// Where to listen (port 0 picks a free one).
    pub listen: SocketAddr,
    /// ClientID at the broker.
    pub client_id: String,
    /// Accepted API keys; empty means none is required.
    pub keys: ApiKeys,
    /// Largest request body, bytes; beyond it 413.
    pub max_body: usize,
    /// Requests per second per API key (one shared budget without keys); `None`: no limit.
    pub rate_limit: Option<NonZeroU32>,
    /// Largest request body of the Batch API (`/v1/files` uploads, `/v1/batches`), bytes;
    /// beyond it 413. Separate from `max_body`: an input file is far bigger than a chat.
    pub max_upload: usize,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Chat and embeddings requests answered at once (streams until their end); 429 beyond.
    pub max_in_flight: usize,
    /// Most lines and bytes in one batch input file (OpenAI's by default); beyond them 400.
    pub batch_limits: crate::batch::limits::BatchLimits,
}

/// Default of [`GatewayOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of [`GatewayOptions::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 2048;

impl GatewayOptions {
    pub fn new(broker: impl Into<String>, listen: SocketAddr) -> Self {
        Self {
            broker: broker.into(),
            listen,
            client_id: default_id(),
            keys: ApiKeys::default(),
            max_body: DEFAULT_MAX_BODY,
            rate_limit: None,
            max_upload: batchapi::DEFAULT_MAX_UPLOAD,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            batch_limits: crate::batch::limits::BatchLimits::openai(batchapi::LIMIT_FLAGS),
        }
    }
}

/// `llm-router-gateway-<host>-<random>`, unique enough across replicas.
pub fn default_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "gateway".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("llm-router-gateway-{host}-{}", &suffix[..8])
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr} for the gateway: {cause}; pick another address with --listen (or --gateway-listen for up)")]
    Bind {
        addr: SocketAddr,
        /// Not `source`: the message already says it, and a chained source would repeat it.
        cause: std::io::Error,
    },
}

/// A gateway serving in the background.
pub struct RunningGateway {
    /// The bound address (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// Cancel to stop: no new connections, requests in flight finish.
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
    /// The same link the handlers use, so readiness here is `/ready`'s.
    broker: BrokerLink,
}

impl RunningGateway {
    /// `http://addr`, the OpenAI base URL is this plus `/v1`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the gateway is connected and the broker answers a ping (what `/ready`
    /// checks), at most `limit`; whether it got there. For callers that announce the
    /// gateway, so that a request sent at once is not a 503.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.broker.is_ready().await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops and waits for the requests in flight.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Binds, starts connecting to the broker and serves the routes of `config` until
/// the returned gateway's `shutdown` is cancelled.
pub async fn start(
    options: GatewayOptions,
    config: &RouterConfig,
) -> Result<RunningGateway, GatewayError> {
    metrics::describe();
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|cause| GatewayError::Bind {
            addr: options.listen,
            cause,
        })?;
    let addr = listener.local_addr().map_err(|cause| GatewayError::Bind {
        addr: options.listen,
        cause,
    })?;
    let shutdown = CancellationToken::new();
    let broker = BrokerLink::connect(&options.broker, &options.client_id, shutdown.clone());
    let state = Arc::new(AppState {
        table: RouteTable::new(config),
        broker: broker.clone(),
        max_body: options.max_body,
        started_unix: unix_seconds(),
        streams: stream_hub::StreamHub::new(),
        batches: batchapi::BatchApi::start(
            &options.broker,
            &options.client_id,
            RouteTable::new(config),
            (options.max_upload, options.batch_limits),
            shutdown.clone(),
        ),
        status: status::Board::start(
            &options.broker,
            &options.client_id,
            config,
            shutdown.clone(),
        ),
    });
    let app = app::router(
        state,
        options.keys.clone(),
        KeyLimit::new(options.rate_limit),
        limit::InFlight::new(options.max_in_flight),
    );
    let limits = crate::edge::HttpLimits::new(options.max_connections);
    let stop = shutdown.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        crate::edge::serve(listener, app, "gateway", limits, stop).await;
    });
    tracing::info!(
        keys = options.keys.len(),
        broker = %options.broker,
        "OpenAI-compatible gateway on http://{addr}/v1"
    );
    Ok(RunningGateway {
        addr,
        shutdown,
        task,
        broker,
    })
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
