//! The composition root: the HTTP routes and the layers around them.

use super::auth::{self, ApiKeys};
use super::broker::BrokerLink;
use super::error::ApiError;
use super::limit::{self, KeyLimit};
use super::routes::RouteTable;
use super::{batches, files};
use super::{chat, health, metrics, models, request_id, status};
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// What every handler reads.
pub struct AppState {
    pub table: RouteTable,
    pub broker: BrokerLink,
    /// The body cap, for the 413 text.
    pub max_body: usize,
    /// Unix seconds at start: the `created` of every model.
    pub started_unix: i64,
    /// What `/status` and `/status.json` show, gathered in the background.
    pub status: super::status::Board,
    /// The one subscription every streamed answer arrives on.
    pub streams: super::stream_hub::StreamHub,
    /// The Files and Batches APIs (state in the broker).
    pub batches: super::batchapi::BatchApi,
}

/// The gateway's router.
///
/// Layers, outermost first:
/// 1. [`request_id::propagate`] (every path): adds the [`request_id::RequestId`] extension
///    and the `x-request-id` response header, errors and 404s included.
/// 2. [`metrics::record`] (`/v1/*`): counts and times responses, reading the
///    [`metrics::RouteLabel`] response extension the chat handler sets.
/// 3. [`auth::require_key`] (`/v1/*`): 401 without a valid key; adds [`auth::Caller`].
/// 4. [`limit::per_key`] (`/v1/*`): 429 with `Retry-After` beyond the caller's rate.
/// 5. [`limit::in_flight`] (chat and embeddings): 429 while `max_in_flight` requests
///    are being answered.
/// 6. [`DefaultBodyLimit`]: the chat handler turns a longer body into a 413; `/v1/files`
///    and `/v1/batches` have the larger upload cap (`max_upload`).
///
/// `/health`, `/ready`, `/metrics` and the status page (`/status`, `/status.json`) need
/// no key.
pub fn router(
    state: Arc<AppState>,
    keys: ApiKeys,
    limit: KeyLimit,
    in_flight: limit::InFlight,
) -> Router {
    let max_body = state.max_body;
    let max_upload = state.batches.max_upload;
    let batch_api = Router::new()
        .route("/v1/files", post(files::upload).get(files::list))
        .route("/v1/files/:id", get(files::retrieve))
        .route("/v1/files/:id/content", get(files::content))
        .route("/v1/batches", post(batches::create).get(batches::list))
        .route("/v1/batches/:id", get(batches::retrieve))
        .route("/v1/batches/:id/cancel", post(batches::cancel))
        .layer(DefaultBodyLimit::max(max_upload));
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/embeddings", post(chat::embeddings))
        .layer(DefaultBodyLimit::max(max_body))
        .route_layer(from_fn_with_state(in_flight, limit::in_flight))
        .route("/v1/models", get(models::list))
        .merge(batch_api)
        .route_layer(from_fn_with_state(limit, limit::per_key))
        .route_layer(from_fn_with_state(keys, auth::require_key))
        .route_layer(from_fn(metrics::record));
    let ops = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/status", get(status::handler::page))
        .route("/status.json", get(status::handler::json))
        .route("/status/status.js", get(status::handler::script))
        .route("/status/status.css", get(status::handler::style));
    v1.merge(ops)
        .fallback(not_found)
        .layer(from_fn(request_id::propagate))
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}
