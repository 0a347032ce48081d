//! Worker: subscribes to every route's query channel with one group, answers each request
//! through the router, and replies through the broker.
//!
//! - [`wire`]: request bodies in, response bodies out (seed and JSON mode).
//! - [`stream`]: streamed answers, chunk by chunk as events (tag `llm-router-stream`).
//! - [`metrics`]: the worker's Prometheus series.
//! - [`http`]: `/health`, `/ready`, `/metrics`.
//! - [`batch`]: the batch consumer, pulling batch lines with spare capacity.

pub mod batch;
pub mod http;
pub mod members;
pub mod metrics;
pub mod stream;
pub mod wire;

use crate::kubemq::client::{Client, ClientOptions, Error as ClientError};
use crate::kubemq::queues::QueueClient;
use crate::kubemq::{Request, Response};
use crate::routing::Router;
use futures::stream::{SelectAll, StreamExt};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wire::{Failure, Mode};

/// The consumer group every worker joins, so the broker gives each request to one of them.
pub const DEFAULT_GROUP: &str = "llm-router-workers";

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `host:port` of the broker's gRPC listener.
    pub broker: String,
    /// ClientID for the broker; replies carry it, so callers can tell workers apart.
    pub id: String,
    pub group: String,
    /// Most requests handled at once; more wait in the broker.
    pub max_in_flight: usize,
    /// Longest wait for the broker at start; `None` waits until it is there.
    pub connect_timeout: Option<Duration>,
    /// How batch lines are consumed; `None` serves interactive requests only.
    pub batch: Option<batch::BatchOptions>,
}

impl WorkerOptions {
    pub fn new(broker: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            broker: broker.into(),
            id: id.into(),
            group: DEFAULT_GROUP.to_owned(),
            max_in_flight: 512,
            connect_timeout: None,
            batch: Some(batch::BatchOptions::default()),
        }
    }
}

/// A worker id unique enough across replicas: host name plus a short random suffix.
pub fn default_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "worker".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("llm-router-worker-{host}-{}", &suffix[..8])
}

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot connect to the broker: {0}")]
    Connect(ClientError),
    #[error("cannot subscribe: {0}")]
    Subscribe(ClientError),
    #[error("the configuration has no routes to serve")]
    NoRoutes,
    #[error("every subscription was refused by the broker")]
    SubscriptionsEnded,
    #[error("cannot follow the batch jobs channel: {0}")]
    Jobs(ClientError),
}

/// What `/ready` looks at.
#[derive(Debug, Default)]
pub struct Status {
    /// One flag per subscription, set while its stream to the broker is open.
    subscriptions: parking_lot::Mutex<Vec<Arc<AtomicBool>>>,
    /// Set when shutdown starts; a draining worker is not ready.
    draining: AtomicBool,
}

impl Status {
    pub fn is_ready(&self) -> bool {
        let subs = self.subscriptions.lock();
        !self.draining.load(Ordering::Acquire)
            && !subs.is_empty()
            && subs.iter().all(|s| s.load(Ordering::Acquire))
    }
}

/// What each request task needs.
struct Shared {
    client: Client,
    router: Arc<Router>,
    id: String,
}

/// Runs a worker until `shutdown` completes, then stops taking work, finishes the
/// requests in flight and returns.
pub async fn run(
    options: WorkerOptions,
    router: Arc<Router>,
    status: Arc<Status>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    metrics::describe();
    tokio::pin!(shutdown);
    let mut client_options = ClientOptions::new(&options.broker, &options.id);
    client_options.connect_timeout = options.connect_timeout;
    let client = tokio::select! {
        () = &mut shutdown => return Ok(()),
        c = Client::connect(client_options) => c.map_err(WorkerError::Connect)?,
    };
    // Shares the endpoints' limits with the other router processes for the worker's life.
    let membership = members::Membership::join(client.clone(), router.clone(), options.id.clone())
        .await
        .map_err(WorkerError::Subscribe)?;
    let incoming = subscribe_all(&client, &router, &options.group, &status).await?;
    let shared = Arc::new(Shared {
        client,
        router,
        id: options.id.clone(),
    });
    let batch = match options.batch.clone() {
        None => None,
        Some(batch_options) => {
            let settled = membership.clone();
            let ready = async move { settled.settled().await };
            Some(start_batch(&options, &shared, batch_options, ready).await?)
        }
    };
    tracing::info!(worker = %options.id, broker = %options.broker, "worker serving");
    let served = serve(shared, incoming, options.max_in_flight, shutdown).await;
    if let Some((stop, task)) = batch {
        // Interactive intake has stopped; batch lines in hand finish and are settled.
        stop.cancel();
        let _ = task.await;
    }
    drop(membership);
    served?;
    status.draining.store(true, Ordering::Release);
    tracing::info!(worker = %options.id, "worker stopped");
    Ok(())
}

/// Starts the batch consumer beside the interactive one; stopped through the token.
async fn start_batch(
    options: &WorkerOptions,
    shared: &Shared,
    batch_options: batch::BatchOptions,
    ready: impl Future<Output = ()> + Send + 'static,
) -> Result<(CancellationToken, tokio::task::JoinHandle<()>), WorkerError> {
    let jobs = batch::jobs::Watcher::start(&shared.client)
        .await
        .map_err(WorkerError::Jobs)?;
    let queues = QueueClient::new(&options.broker, &options.id).map_err(WorkerError::Connect)?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(batch::run(
        queues,
        shared.router.clone(),
        jobs,
        batch_options,
        ready,
        stop.clone(),
    ));
    Ok((stop, task))
}

/// A request tagged with the route whose channel it arrived on.
type Incoming = SelectAll<futures::stream::BoxStream<'static, (Arc<str>, Request)>>;

async fn subscribe_all(
    client: &Client,
    router: &Router,
    group: &str,
    status: &Status,
) -> Result<Incoming, WorkerError> {
    let routes = router.routes();
    if routes.is_empty() {
        return Err(WorkerError::NoRoutes);
    }
    let mut incoming = SelectAll::new();
    for route in routes {
        let sub = client
            .subscribe_to_queries(&route.channel, group)
            .await
            .map_err(WorkerError::Subscribe)?;
        status.subscriptions.lock().push(sub.active_flag());
        tracing::info!(route = %route.name, channel = %route.channel, group, "subscribing");
        let name: Arc<str> = route.name.into();
        incoming.push(sub.map(move |req| (name.clone(), req)).boxed());
    }
    Ok(incoming)
}

/// The receive loop: one task per request, at most `max_in_flight` at once.
async fn serve(
    shared: Arc<Shared>,
    mut incoming: Incoming,
    max_in_flight: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    tokio::pin!(shutdown);
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    // Owning the request tasks means aborting the worker aborts them too.
    let mut tasks = JoinSet::new();
    let ended = loop {
        let permit = tokio::select! {
            () = &mut shutdown => break false,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break false,
            },
        };
        let next = tokio::select! {
            () = &mut shutdown => break false,
            next = incoming.next() => next,
        };
        let Some((route, request)) = next else {
            break true;
        };
        tasks.spawn(handle(shared.clone(), route, request, permit));
    };
    // Stop taking work: dropping the subscriptions leaves the group at once.
    drop(incoming);
    while tasks.join_next().await.is_some() {}
    if ended {
        return Err(WorkerError::SubscriptionsEnded);
    }
    Ok(())
}

/// Time kept back from a request's Timeout to deliver the reply.
fn reply_margin(timeout: Duration) -> Duration {
    (timeout / 20).clamp(Duration::from_millis(20), Duration::from_millis(500))
}

/// The router's deadline for a request received at `received` with `timeout_ms`.
fn deadline(received: Instant, timeout_ms: i32) -> Instant {
    let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    received + timeout.saturating_sub(reply_margin(timeout))
}

/// One request, logged under its caller's request id (the query's own id without one).
async fn handle(
    shared: Arc<Shared>,
    route: Arc<str>,
    request: Request,
    _permit: OwnedSemaphorePermit,
) {
    let request_id = wire::tag(&request.tags, wire::REQUEST_ID_TAG)
        .unwrap_or(&request.request_id)
        .to_owned();
    let span = tracing::info_span!("request", request_id = %request_id, route = %route);
    answer(shared, route, request, &request_id)
        .instrument(span)
        .await;
}

async fn answer(shared: Arc<Shared>, route: Arc<str>, request: Request, request_id: &str) {
    let received = Instant::now();
    let _in_flight = metrics::InFlight::start(&route);
    let mode = Mode::of(&request.tags, &request.metadata);
    let mut in_router = Duration::ZERO;
    let streamed = wire::tag(&request.tags, stream::STREAM_TAG);
    let decoded = wire::api(&request.tags).and_then(|api| {
        if api == crate::provider::Api::Embeddings && streamed.is_some() {
            return Err(wire::BodyError::EmbeddingsDoNotStream);
        }
        wire::decode(mode, api, &request.body)
    });
    let outcome = match decoded {
        Err(e) => Err(Failure::from(e)),
        Ok(chat) => {
            log_prompt(request_id, &route, &chat);
            let started = Instant::now();
            let names = shared.router.model_names();
            let result = match wire::destination(names, &route, &request.tags, &chat) {
                Ok(to) => route_one(&shared, &to, &request, received, chat).await,
                Err(e) => Err(Failure::from(e)),
            };
            in_router = started.elapsed();
            result
        }
    };
    log_outcome(&outcome, streamed.is_some());
    let label = match &outcome {
        Ok(done) => {
            let usage = done.response.usage;
            metrics::tokens(&route, usage.prompt_tokens, usage.completion_tokens);
            "ok"
        }
        Err(failure) => failure.code(),
    };
    let reply = wire::encode(mode, outcome, unix_seconds());
    let result = shared
        .client
        .send_response(response(&shared.id, &request, reply))
        .await;
    if let Err(e) = result {
        metrics::reply_error();
        tracing::warn!(route = %route, request_id = %request.request_id, "reply not delivered: {e}");
    }
    metrics::finished(&route, label, received.elapsed(), in_router);
}

/// Through the router to `to`: whole, or streamed when the query names a stream channel;
/// only to the pinned model's targets when there is one.
async fn route_one(
    shared: &Shared,
    to: &crate::config::models::ModelRoute,
    request: &Request,
    received: Instant,
    chat: crate::provider::LlmRequest,
) -> Result<crate::routing::Completion, Failure> {
    let (route, pin) = (to.route.as_str(), to.pin.as_deref());
    let deadline = deadline(received, request.timeout);
    match wire::tag(&request.tags, stream::STREAM_TAG) {
        Some(channel) => {
            let req = stream::StreamRequest {
                client: &shared.client,
                router: &shared.router,
                route,
                channel,
                pin,
                received,
                deadline,
            };
            stream::serve(req, chat).await
        }
        None => shared
            .router
            .complete_pinned(route, chat, deadline, pin)
            .await
            .map_err(Failure::from),
    }
}

/// The request's messages at debug level, only with `--log-prompts` (nothing is built
/// without it): a seed prompt as it came, a chat as `role: content` lines, embeddings
/// as their input.
fn log_prompt(request_id: &str, route: &str, req: &crate::provider::LlmRequest) {
    if !crate::logging::prompts_enabled() {
        return;
    }
    let content = |m: &serde_json::Value| match &m["content"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = match req.messages() {
        [] => req
            .body()
            .get("input")
            .map(ToString::to_string)
            .unwrap_or_default(),
        [only] => content(only),
        messages => messages
            .iter()
            .map(|m| format!("{}: {}", m["role"].as_str().unwrap_or(""), content(m)))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    crate::logging::prompt(request_id, route, &text);
}

/// One line per request, inside its span (request id and route).
fn log_outcome(outcome: &Result<crate::routing::Completion, Failure>, streamed: bool) {
    match outcome {
        Ok(done) => tracing::info!(
            endpoint = %done.endpoint,
            attempts = done.attempts,
            streamed,
            "answered"
        ),
        Err(failure) => tracing::info!(
            outcome = failure.code(),
            streamed,
            "not answered: {failure}"
        ),
    }
}

fn response(worker: &str, request: &Request, reply: wire::Reply) -> Response {
    let mut tags = std::collections::HashMap::new();
    tags.insert(
        "content-type".to_owned(),
        wire::JSON_CONTENT_TYPE.to_owned(),
    );
    Response {
        client_id: worker.to_owned(),
        request_id: request.request_id.clone(),
        reply_channel: request.reply_channel.clone(),
        body: reply.body,
        executed: reply.executed,
        error: reply.error,
        timestamp: unix_nanos(),
        tags,
        ..Response::default()
    }
}

fn unix_seconds() -> i64 {
    unix_nanos() / 1_000_000_000
}

fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_keeps_a_small_margin() {
        let now = Instant::now();
        assert_eq!(deadline(now, 30_000), now + Duration::from_millis(29_500));
        assert_eq!(deadline(now, 1_000), now + Duration::from_millis(950));
        assert_eq!(deadline(now, 100), now + Duration::from_millis(80));
        assert_eq!(deadline(now, 0), now);
        assert_eq!(deadline(now, -5), now);
    }
}
