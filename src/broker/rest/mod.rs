//! KubeMQ's REST API on 9090 (KUBEMQ.md §6), plus `/health`, `/ready` and `/metrics`.
//!
//! # Layout
//! - [`json`]: proto ↔ JSON the way the Go server binds and prints it.
//! - [`gojson`]: Go's JSON text style (tab indent, HTML-safe escapes).
//! - [`envelope`]: the `{"is_error","message","data"}` envelope and error → status mapping.
//! - [`handlers`]: one handler per endpoint, calling the gRPC service in-process.

mod envelope;
mod gojson;
mod handlers;
pub mod json;
#[cfg(test)]
mod props;

use super::grpc::Service;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use envelope::{Envelope, NOT_READY};

/// Version header value, the upstream server we are compatible with.
const POWERED_BY: &str = "KubeMQ v2.4.0";

/// The REST router, calling the gRPC service in-process.
///
/// Layers, outermost first:
/// 1. [`headers_and_cors`]: answers CORS preflights and adds `Broker`, `X-Powered-By` and
///    `Access-Control-Allow-Origin` to every response, 404s included.
/// 2. [`DefaultBodyLimit`]: caps bodies at [`body_limit`] (base64 makes JSON bigger than
///    the message it carries; the decoded message is checked against the exact limit).
/// 3. [`gate`] (KubeMQ routes only): 503 until the broker is ready and after shutdown starts.
pub fn router(service: Service) -> Router {
    let limit = body_limit(&service);
    let api = Router::new()
        .route("/ping", get(handlers::ping))
        .route("/send/event", post(handlers::send_event))
        .route("/send/request", post(handlers::send_request))
        .route("/send/response", post(handlers::send_response))
        .route("/queue/send", post(handlers::queue_send))
        .route("/queue/send_batch", post(handlers::queue_send_batch))
        .route("/queue/receive", post(handlers::queue_receive))
        .route("/queue/ack_all", post(handlers::queue_ack_all))
        .route("/queue/info", get(handlers::queue_info))
        .route_layer(middleware::from_fn_with_state(service.clone(), gate));
    let ops = Router::new()
        .route("/", get(handlers::root))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics));
    api.merge(ops)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            service.clone(),
            headers_and_cors,
        ))
        .with_state(service)
}

/// Largest HTTP body read: room for base64 of a maximal message plus the JSON around it.
pub(crate) fn body_limit(service: &Service) -> usize {
    let max = service.broker().config.max_message_bytes;
    max.saturating_mul(4) / 3 + 64 * 1024
}

/// The readiness gate of the KubeMQ routes.
async fn gate(State(service): State<Service>, req: Request, next: Next) -> Response {
    if service.broker().is_ready() {
        next.run(req).await
    } else {
        Envelope::error(StatusCode::SERVICE_UNAVAILABLE, NOT_READY).into_response()
    }
}

/// CORS (any origin, GET and POST) and the identity headers of the real server.
async fn headers_and_cors(State(service): State<Service>, req: Request, next: Next) -> Response {
    let mut response = if req.method() == Method::OPTIONS {
        preflight(&req)
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    if let Ok(host) = HeaderValue::from_str(&service.broker().config.host) {
        headers.insert(HeaderName::from_static("broker"), host);
    }
    headers.insert(
        HeaderName::from_static("x-powered-by"),
        HeaderValue::from_static(POWERED_BY),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// 204 with the allowed methods, echoing the headers the browser asks for.
fn preflight(req: &Request) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,POST"),
    );
    if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// Echo's error body shape for unknown routes.
async fn not_found() -> Response {
    error_body(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> Response {
    error_body(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn error_body(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error_code": status.as_u16(), "message": message });
    (status, axum::Json(body)).into_response()
}

/// `healthy` while the process serves; 500 once shutdown has begun.
async fn health(State(service): State<Service>) -> Response {
    if service.broker().shutdown.is_cancelled() {
        (StatusCode::INTERNAL_SERVER_ERROR, "unhealthy").into_response()
    } else {
        "healthy".into_response()
    }
}

/// `{"is_healthy","is_ready"}`; 503 while not ready, so probes can use the status alone.
async fn ready(State(service): State<Service>) -> Response {
    let broker = service.broker();
    let is_ready = broker.is_ready();
    let body = serde_json::json!({
        "is_healthy": !broker.shutdown.is_cancelled(),
        "is_ready": is_ready,
    });
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus text exposition of the process's metrics.
async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        crate::metrics::render_for(crate::metrics::Role::Broker),
    )
        .into_response()
}
