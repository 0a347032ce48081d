//! `/health` (the process runs), `/ready` (the broker answers a ping) and `/metrics`.

use super::app::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn health() -> &'static str {
    "ok"
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.broker.is_ready().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        let text = format!(
            "not ready: the broker at {} does not answer",
            state.broker.address()
        );
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

pub async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render_for(crate::metrics::Role::Gateway),
    )
        .into_response()
}
