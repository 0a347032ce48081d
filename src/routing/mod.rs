//! Routing: a route names a channel and ordered targets; a request goes to the targets of
//! the best priority that can take it, with retries, failover, a circuit breaker per
//! endpoint and per-endpoint limits, all inside the request's deadline.

use crate::config::{ConfigError, RouterConfig};
use crate::provider::{ChatRequest, ChatResponse};
use serde::Serialize;
use tokio::time::Instant;

/// A route as the worker needs it: where its requests arrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    pub name: String,
    /// The KubeMQ query channel the route's requests arrive on.
    pub channel: String,
}

/// A successful completion and how it was obtained.
#[derive(Debug, Clone)]
pub struct Completion {
    pub response: ChatResponse,
    /// Name of the endpoint that answered.
    pub endpoint: String,
    /// Attempts made in all, across targets.
    pub attempts: u32,
}

/// Why a request could not be answered; the text is what the caller sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    #[error("unknown route '{0}'")]
    UnknownRoute(String),
    #[error("route '{route}': {detail}")]
    BadRequest { route: String, detail: String },
    #[error("route '{route}': every target is rate-limited and the deadline cannot wait")]
    RateLimited { route: String },
    #[error("route '{route}': all targets failed: {summary}")]
    AllFailed { route: String, summary: String },
}

/// The route table with its endpoints' clients and state.
pub struct Router {}

impl Router {
    /// Builds clients for every endpoint in `config`.
    pub fn new(_config: &RouterConfig, _http: reqwest::Client) -> Result<Self, ConfigError> {
        Ok(Self {})
    }

    /// Every route, for subscribing.
    pub fn routes(&self) -> Vec<RouteInfo> {
        Vec::new()
    }

    /// Answers `req` on `route` before `deadline`, or says why not.
    pub async fn complete(
        &self,
        route: &str,
        _req: ChatRequest,
        _deadline: Instant,
    ) -> Result<Completion, RouteError> {
        Err(RouteError::UnknownRoute(route.to_owned()))
    }
}
