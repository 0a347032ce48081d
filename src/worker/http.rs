//! The worker's `/health`, `/ready` and `/metrics` endpoints.

use super::Status;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves until `shutdown` completes. Ready means every worker in `workers` is ready.
pub async fn serve(
    listener: TcpListener,
    workers: Vec<Arc<Status>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    super::metrics::describe();
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(workers));
    // Scrapers and probes only: a few connections are plenty.
    let limits = crate::edge::HttpLimits::new(64);
    crate::edge::serve(listener, app, "worker_metrics", limits, shutdown).await;
    Ok(())
}

async fn ready(State(workers): State<Arc<Vec<Arc<Status>>>>) -> Response {
    if workers.iter().all(|w| w.is_ready()) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render_for(crate::metrics::Role::Worker),
    )
        .into_response()
}
