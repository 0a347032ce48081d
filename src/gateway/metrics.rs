//! The gateway's series. Labels: `route` is a configured route name, [`NO_ROUTE`] for
//! requests that name none (model lists, refused before the body was read) or
//! [`UNKNOWN_ROUTE`] for a model that names no route; `status` is the HTTP status code.
//! Both are bounded: the config bounds the names, HTTP the codes.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use std::sync::Once;
use std::time::Instant;

/// Requests answered by the gateway, by `route` and `status`.
pub const REQUESTS: &str = "llm_router_gateway_requests_total";
/// Time from receiving a request to its response, by `route`.
pub const DURATION: &str = "llm_router_gateway_request_duration_seconds";
/// Streamed requests: receipt to the first chunk relayed to the client, by `route`.
pub const STREAM_FIRST_CHUNK: &str = "llm_router_gateway_stream_first_chunk_seconds";

/// `route` label of requests that name no route.
pub const NO_ROUTE: &str = "_none";
/// `route` label of requests whose model names no configured route.
pub const UNKNOWN_ROUTE: &str = "_unknown";

/// The route a response belongs to, set by the handler as a response extension.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

/// Installs the process's recorder if needed and describes the series, once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        crate::metrics::handle();
        describe_counter!(
            REQUESTS,
            "Requests answered by the OpenAI-compatible gateway, by route and HTTP status."
        );
        describe_histogram!(
            DURATION,
            Unit::Seconds,
            "Gateway time from receiving a request to sending its response, by route."
        );
        describe_histogram!(
            STREAM_FIRST_CHUNK,
            Unit::Seconds,
            "Streamed requests: gateway time from receiving the request to relaying its first chunk, by route."
        );
    });
}

/// Records a stream's time to its first chunk.
pub fn stream_first_chunk(route: &str, elapsed: std::time::Duration) {
    histogram!(STREAM_FIRST_CHUNK, "route" => route.to_owned()).record(elapsed.as_secs_f64());
}

/// Middleware around `/v1/*`: counts and times every response.
pub async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or_else(|| NO_ROUTE.to_owned(), |r| r.0.clone());
    let status = response.status().as_u16().to_string();
    counter!(REQUESTS, "route" => route.clone(), "status" => status).increment(1);
    histogram!(DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    response
}
