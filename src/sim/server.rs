//! The sim's HTTP server: routes, and the pipeline every chat request goes through
//! (key → rate limit → body → seeded fate → latency → answer).

use super::faults::{self, Fate};
use super::format::{Format, Job};
use super::last_request::LastRequest;
use super::limit::Window;
use super::reset::Relay;
use super::stats::Counters;
use super::{openai, stream, SimConfig};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What every handler shares.
struct Shared {
    config: SimConfig,
    stats: Arc<Counters>,
    /// The requests-per-minute window; a mutex because admission must be atomic.
    window: Option<parking_lot::Mutex<Window>>,
    /// Numbers admitted requests in arrival order: the index of their seeded draw.
    next: AtomicU64,
    /// Ends hanging requests and latency waits at shutdown.
    shutdown: CancellationToken,
    /// Present when resets are configured: connections then pass through it.
    relay: Option<Arc<Relay>>,
    /// The last API request, for `GET /sim/last-request`.
    last: LastRequest,
}

/// Serves on `listener` (through the reset relay when resets are configured) until
/// `shutdown`; the returned task ends when every connection has closed.
pub(super) async fn spawn(
    listener: TcpListener,
    config: SimConfig,
    stats: Arc<Counters>,
    shutdown: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    let (listener, relay) = if config.reset_rate > 0.0 {
        let inner = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let relay = Arc::new(Relay::new(inner.local_addr()?));
        (inner, Some((relay, listener)))
    } else {
        (listener, None)
    };
    let shared = Arc::new(Shared {
        window: config
            .rpm_limit
            .map(|l| parking_lot::Mutex::new(Window::new(l))),
        config,
        stats,
        next: AtomicU64::new(0),
        shutdown: shutdown.clone(),
        relay: relay.as_ref().map(|(r, _)| r.clone()),
        last: LastRequest::default(),
    });
    let app = router(shared).into_make_service_with_connect_info::<SocketAddr>();
    let serve = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .tcp_nodelay(true);
    // The relay task is awaited by the server task below, so shutdown waits for both.
    let relay_task = relay.map(|(r, public)| tokio::spawn(r.run(public, shutdown)));
    Ok(tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "sim provider stopped");
        }
        if let Some(task) = relay_task {
            let _ = task.await;
        }
    }))
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/messages", post(anthropic_chat))
        .route("/v1/embeddings", post(embeddings))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/stats", get(stats))
        .route("/sim/last-request", get(last_request))
        .fallback(|| async { openai::error(StatusCode::NOT_FOUND, "unknown path") })
        .with_state(shared)
}

async fn stats(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(shared.stats.snapshot())
}

async fn last_request(State(shared): State<Arc<Shared>>) -> Response {
    shared.last.response()
}

async fn openai_chat(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(&shared, Format::OpenAi, peer, &headers, &body).await
}

async fn anthropic_chat(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(&shared, Format::Anthropic, peer, &headers, &body).await
}

async fn embeddings(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(&shared, Format::Embeddings, peer, &headers, &body).await
}

/// The pipeline of one API request (chat or embeddings).
async fn chat(
    s: &Shared,
    format: Format,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    Counters::bump(&s.stats.requests);
    s.last.record(format.path(), body);
    if let Err(refusal) = s.check_key(format, headers) {
        return refusal;
    }
    if let Err(wait) = s.admit() {
        let message = "requests per minute limit reached";
        return s.too_many(format, wait, message);
    }
    let job = match format.parse(body) {
        Ok(job) => job,
        Err(why) => {
            Counters::bump(&s.stats.rejected);
            return format.invalid(&why);
        }
    };
    let n = s.next.fetch_add(1, Ordering::Relaxed);
    let draw = faults::draw(&s.config, n);
    match draw.fate {
        Fate::Reset => return s.reset(format, peer).await,
        Fate::Hang => return s.hang(format).await,
        _ => {}
    }
    // No timer for no latency: tokio rounds every sleep up to its next 1 ms tick, so a
    // zero sleep would still add 0-1 ms, depending on when the request came in.
    if !draw.delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(draw.delay) => {}
            () = s.shutdown.cancelled() => return shutting_down(format),
        }
    }
    s.carry_out(format, draw, n, &job)
}

impl Shared {
    fn check_key(&self, format: Format, headers: &HeaderMap) -> Result<(), Response> {
        let Some(expected) = &self.config.api_key else {
            return Ok(());
        };
        match format.presented_key(headers) {
            Some(k) if k == expected => Ok(()),
            Some(k) => Err(self.reject(
                format,
                StatusCode::UNAUTHORIZED,
                &format!("Incorrect API key provided: {k}."),
            )),
            None => Err(self.reject(format, StatusCode::UNAUTHORIZED, "missing API key")),
        }
    }

    fn admit(&self) -> Result<(), Duration> {
        match &self.window {
            Some(w) => w.lock().try_admit(tokio::time::Instant::now()),
            None => Ok(()),
        }
    }

    fn reject(&self, format: Format, status: StatusCode, message: &str) -> Response {
        Counters::bump(&self.stats.rejected);
        format.error(status, message)
    }

    /// 429 with `Retry-After` in whole seconds, rounded up, at least 1.
    fn too_many(&self, format: Format, wait: Duration, message: &str) -> Response {
        Counters::bump(&self.stats.rate_limited);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = format.error(StatusCode::TOO_MANY_REQUESTS, message);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        response
    }

    /// Has the relay reset the connection, then answers into the void.
    async fn reset(&self, format: Format, peer: SocketAddr) -> Response {
        Counters::bump(&self.stats.resets);
        let closed = self.relay.as_ref().and_then(|r| r.reset(peer));
        if let Some(closed) = closed {
            tokio::select! {
                () = closed.cancelled() => {}
                () = self.shutdown.cancelled() => {}
            }
        }
        shutting_down(format)
    }

    async fn hang(&self, format: Format) -> Response {
        Counters::bump(&self.stats.hangs);
        self.shutdown.cancelled().await;
        shutting_down(format)
    }

    fn carry_out(&self, format: Format, draw: faults::Draw, n: u64, job: &Job) -> Response {
        match draw.fate {
            Fate::TooMany => {
                let wait = Duration::from_secs(self.config.retry_after_secs);
                self.too_many(format, wait, "rate limit exceeded (injected)")
            }
            Fate::Error(status) => {
                Counters::bump(&self.stats.errors);
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                format.error(status, "injected failure")
            }
            Fate::Answer | Fate::Reset | Fate::Hang if job.streams() => {
                Counters::bump(&self.stats.ok);
                self.stream(format, draw.cut, n, job)
            }
            Fate::Answer | Fate::Reset | Fate::Hang => {
                Counters::bump(&self.stats.ok);
                format.answer(n, job)
            }
        }
    }

    /// A streamed answer, cut mid-stream when drawn or when the prompt asks for it.
    fn stream(&self, format: Format, cut: bool, n: u64, job: &Job) -> Response {
        let cut = cut || job.asks_for_cut();
        if cut {
            Counters::bump(&self.stats.mid_stream_errors);
        }
        let frames = format.stream_frames(n, job, cut);
        let delay = Duration::from_millis(self.config.chunk_delay_ms);
        stream::respond(frames, delay, self.stats.clone(), self.shutdown.clone())
    }
}

fn shutting_down(format: Format) -> Response {
    format.error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the sim provider is shutting down",
    )
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
