//! Routing: a route names a channel and ordered targets; a request goes to the targets of
//! the best priority that can take it, with retries, failover, a circuit breaker per
//! endpoint and per-endpoint limits, all inside the request's deadline.
//!
//! Batch lines take the same targets one attempt at a time, only with capacity that no
//! interactive request is waiting for; every budget is this process's share of the
//! cluster's limits.
//!
//! Layout: `table` (endpoints, routes, choosing a target) · `retry` (backoff and the
//! retry loop) · `attempt` (one call: breaker, budgets, provider) · `batch` (reserve, then
//! one attempt) · `stream` (attempts up to a stream's first chunk, then the rest) ·
//! `circuit` · `limits` · `failure` (the caller's error text) · `metrics` (the series and
//! their labels).

mod attempt;
mod batch;
mod circuit;
mod failure;
#[cfg(test)]
mod fake;
mod limits;
pub mod metrics;
mod retry;
mod status;
pub mod stream;
mod table;
#[cfg(test)]
mod tests;

use crate::config::models::ModelNames;
use crate::config::{ConfigError, RouterConfig};
use crate::provider::{FailureKind, LlmRequest, LlmResponse, Provider, ProviderError};
use attempt::AttemptError;
use failure::Failure;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use table::{Endpoint, Route, Target, Upstream};
use tokio::time::Instant;

pub use batch::{BatchFailure, Reservation};
pub use status::EndpointStatus;
pub use stream::{MidStreamError, Streaming};

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
    pub response: LlmResponse,
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
    #[error("route '{route}' has no target model '{model}'; its models: {models}")]
    UnknownModel {
        route: String,
        model: String,
        models: String,
    },
    #[error("route '{route}': {detail}")]
    BadRequest { route: String, detail: String },
    #[error("route '{route}': every target is rate-limited and the deadline cannot wait")]
    RateLimited { route: String },
    #[error("route '{route}': all targets failed: {summary}")]
    AllFailed {
        route: String,
        summary: String,
        /// At least one target ran out of time (its own timeout or the deadline).
        timed_out: bool,
    },
}

/// The route table with its endpoints' clients and state. Shared by every request of a
/// worker (wrap it in an `Arc`); all state inside is per endpoint and lock-light.
pub struct Router {
    routes: Vec<Route>,
    by_name: HashMap<String, usize>,
    endpoints: Vec<Arc<Endpoint>>,
    /// Live router processes sharing the endpoints' limits; written under `resizing`.
    replicas: AtomicU32,
    /// Serializes share changes, so that the endpoints' budgets follow them in order.
    resizing: parking_lot::Mutex<()>,
    names: ModelNames,
}

impl Router {
    /// Builds clients for every endpoint in `config`, sharing `http`'s connection pool.
    pub fn new(config: &RouterConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        metrics::describe();
        Self::build(config, |e| {
            Upstream::Provider(
                Provider::new(e.kind, &e.base_url, e.api_key.clone(), http.clone())
                    .dropping_unsupported(e.drop_unsupported_params),
            )
        })
    }

    fn build(
        config: &RouterConfig,
        upstream: impl Fn(&crate::config::EndpointConfig) -> Upstream,
    ) -> Result<Self, ConfigError> {
        let endpoints: Vec<Arc<Endpoint>> = config
            .endpoints
            .iter()
            .map(|e| Arc::new(Endpoint::new(e, config, upstream(e))))
            .collect();
        let mut routes = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let built = Route::new(route, &endpoints).ok_or_else(|| {
                ConfigError::Invalid(format!("route '{}' names an unknown endpoint", route.name))
            })?;
            routes.push(built);
        }
        let by_name = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        Ok(Self {
            routes,
            by_name,
            endpoints,
            replicas: AtomicU32::new(1),
            resizing: parking_lot::Mutex::new(()),
            names: ModelNames::new(config),
        })
    }

    fn route(&self, name: &str) -> Option<&Route> {
        self.by_name.get(name).and_then(|&i| self.routes.get(i))
    }

    /// Cluster share: this process is one of `replicas` live router processes, so each
    /// endpoint's requests/min, tokens/min and max-concurrency become their `1/replicas`
    /// share (floor, at least 1). Changed rate budgets start drained, so the replicas
    /// together stay within the configured limits across membership changes too.
    pub fn set_replicas(&self, replicas: u32) {
        let replicas = replicas.max(1);
        let _order = self.resizing.lock();
        if self.replicas.swap(replicas, Ordering::AcqRel) == replicas {
            return;
        }
        for endpoint in &self.endpoints {
            endpoint.limits.set_replicas(replicas);
        }
        tracing::info!(
            replicas,
            "endpoint limits are now this process's 1/{replicas} share"
        );
    }

    /// Restarts every rate budget drained at the current share, as a process joining a
    /// cluster must: it cannot know how much of this minute the others already used, so
    /// it gets no burst, only the steady rate, until membership says how many share.
    pub fn drain_budgets(&self) {
        let _order = self.resizing.lock();
        let replicas = self.replicas();
        for endpoint in &self.endpoints {
            endpoint.limits.set_replicas(replicas);
        }
    }

    /// Live router processes the limits are shared with (1 until told otherwise).
    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Acquire)
    }

    /// Every route, for subscribing.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.routes
            .iter()
            .map(|r| RouteInfo {
                name: r.name.clone(),
                channel: r.channel.clone(),
            })
            .collect()
    }

    /// Answers `req` on `route` before `deadline` (or the route's own timeout, if sooner),
    /// or says why not. The request's `model` is replaced by each target's.
    pub async fn complete(
        &self,
        route: &str,
        req: LlmRequest,
        deadline: Instant,
    ) -> Result<Completion, RouteError> {
        self.complete_pinned(route, req, deadline, None).await
    }

    /// [`Self::complete`] on only the route's targets whose model is `pin`, when set.
    pub async fn complete_pinned(
        &self,
        route: &str,
        req: LlmRequest,
        deadline: Instant,
        pin: Option<&str>,
    ) -> Result<Completion, RouteError> {
        let (table, deadline) = self.prepare(route, deadline, pin)?;
        honoured(table, &req, pin)?;
        serve(table, req, deadline, pin).await
    }

    /// A streamed answer to `req`, once its first chunk is in: targets, retries and
    /// failover as in [`Self::complete_pinned`] until then, none after it.
    pub async fn stream(
        &self,
        route: &str,
        req: LlmRequest,
        deadline: Instant,
        pin: Option<&str>,
    ) -> Result<Streaming, RouteError> {
        let (table, deadline) = self.prepare(route, deadline, pin)?;
        honoured(table, &req, pin)?;
        stream::serve(table, req, deadline, pin).await
    }

    /// The route, its deadline (the caller's or the route's own timeout, if sooner), and
    /// a check that the pinned model is one of its targets'.
    fn prepare(
        &self,
        route: &str,
        deadline: Instant,
        pin: Option<&str>,
    ) -> Result<(&Route, Instant), RouteError> {
        let Some(table) = self.route(route) else {
            return Err(RouteError::UnknownRoute(route.to_owned()));
        };
        if let Some(pin) = pin {
            let targets = || table.tiers.iter().flatten();
            if !targets().any(|t| t.model == pin) {
                let mut models: Vec<&str> = targets().map(|t| t.model.as_str()).collect();
                models.dedup();
                return Err(RouteError::UnknownModel {
                    route: table.name.clone(),
                    model: pin.to_owned(),
                    models: models.join(", "),
                });
            }
        }
        Ok((table, deadline.min(Instant::now() + table.timeout)))
    }
}

/// Refuses `req` when no target of the route (only `pin`'s, if set) can honour it as
/// written, naming the first reason; targets that cannot are skipped by [`serve`].
fn honoured(route: &Route, req: &LlmRequest, pin: Option<&str>) -> Result<(), RouteError> {
    let mut first = None;
    let targets = route.tiers.iter().flatten();
    for target in targets.filter(|t| pin.map_or(true, |p| t.model == p)) {
        match target.endpoint.upstream.refusal(req) {
            None => return Ok(()),
            Some(why) => {
                first.get_or_insert_with(|| format!("endpoint '{}': {why}", target.endpoint.name));
            }
        }
    }
    Err(RouteError::BadRequest {
        route: route.name.clone(),
        detail: format!(
            "no target of this route can take the request; {}",
            first.unwrap_or_default()
        ),
    })
}

impl Router {
    /// Why `route` cannot take `req` at all (unknown route, or no target can honour it);
    /// None when it can. Batch lines ask before waiting for capacity.
    pub fn refusal(&self, route: &str, req: &LlmRequest) -> Option<RouteError> {
        self.refusal_pinned(route, req, None)
    }

    /// [`Self::refusal`] for only the route's targets whose model is `pin`, when set (a
    /// model none of them has is a refusal too).
    pub fn refusal_pinned(
        &self,
        route: &str,
        req: &LlmRequest,
        pin: Option<&str>,
    ) -> Option<RouteError> {
        match self.prepare(route, Instant::now(), pin) {
            Err(e) => Some(e),
            Ok((table, _)) => honoured(table, req, pin).err(),
        }
    }

    /// How a request's `model` is read, the same as the gateway and batch files read it.
    pub fn model_names(&self) -> &ModelNames {
        &self.names
    }
}

/// The targets that serve a pinned model (all of them without a pin).
fn pinned<'a>(targets: Vec<&'a Target>, pin: Option<&'a str>) -> impl Iterator<Item = &'a Target> {
    targets
        .into_iter()
        .filter(move |t| pin.map_or(true, |p| t.model == p))
}

/// Tries the route's tiers in priority order and each tier's targets in the selector's
/// order, until one answers or the request is shown to be wrong.
async fn serve(
    route: &Route,
    mut req: LlmRequest,
    deadline: Instant,
    pin: Option<&str>,
) -> Result<Completion, RouteError> {
    let mut failures: Vec<Failure> = Vec::new();
    let mut attempts = 0;
    for tier in &route.tiers {
        for target in pinned(table::order(tier, rand::random::<f64>), pin) {
            if target.endpoint.upstream.refusal(&req).is_some()
                || !may_try(route, target, deadline, &mut failures)
            {
                continue;
            }
            let _in_flight = target.endpoint.assign();
            req.set_model(&target.model);
            let outcome = retry::call_target(target, &req, route.retry, deadline).await;
            attempts += outcome.attempts;
            match outcome.result {
                Ok(response) => {
                    return Ok(Completion {
                        response,
                        endpoint: target.endpoint.name.clone(),
                        attempts,
                    })
                }
                Err(error) => {
                    let failure =
                        Failure::new(target, error, outcome.attempts, outcome.stop, outcome.last);
                    failed(route, target, failure, &mut failures)?;
                }
            }
        }
    }
    Err(failure::give_up(&route.name, &failures))
}

/// Whether `target` may be tried now. Past the deadline it is recorded as not tried; a
/// target tried after another failed counts as a failover.
fn may_try(
    route: &Route,
    target: &table::Target,
    deadline: Instant,
    failures: &mut Vec<Failure>,
) -> bool {
    if Instant::now() >= deadline {
        failures.push(Failure::not_tried(target));
        return false;
    }
    if !failures.is_empty() {
        metrics::failover(&route.name);
    }
    true
}

/// Records a target's failure, or ends the request when no other target can fix it
/// (the provider said the request itself is wrong).
fn failed(
    route: &Route,
    target: &table::Target,
    failure: Failure,
    failures: &mut Vec<Failure>,
) -> Result<(), RouteError> {
    if let AttemptError::Provider { error, .. } = failure.error() {
        if error.kind() == FailureKind::Fatal {
            return Err(RouteError::BadRequest {
                route: route.name.clone(),
                detail: fatal_detail(&target.endpoint.name, error),
            });
        }
    }
    failures.push(failure);
    Ok(())
}

/// Why a failure that no other target can fix ended the request.
fn fatal_detail(endpoint: &str, error: &ProviderError) -> String {
    match error {
        ProviderError::Decode(why) => format!("{endpoint} sent an unreadable answer ({why})"),
        _ => format!("{endpoint} rejected the request: {error}"),
    }
}
