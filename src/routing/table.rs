//! The route table: endpoints with their clients and state, routes as tiers of targets by
//! priority, and the choice of target inside a tier (weighted, fewest in flight first).

use super::circuit::Circuit;
use super::limits::Limits;
use super::metrics;
use crate::config::{EndpointConfig, RetryConfig, RouteConfig, RouterConfig};
use crate::provider::{ChatStream, LlmRequest, LlmResponse, Provider, ProviderError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How an endpoint is reached. A closed set: the real providers, and in unit tests a fake.
#[derive(Debug)]
pub enum Upstream {
    Provider(Provider),
    #[cfg(test)]
    Fake(Arc<super::fake::Fake>),
}

impl Upstream {
    /// One whole-answer call; see [`Provider::call`].
    pub async fn call(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<LlmResponse, ProviderError> {
        match self {
            Upstream::Provider(p) => p.call(req, timeout).await,
            #[cfg(test)]
            Upstream::Fake(f) => f.chat(req, timeout).await,
        }
    }

    /// Why this endpoint cannot honour `req`; see [`Provider::refusal`].
    pub fn refusal(&self, req: &LlmRequest) -> Option<String> {
        match self {
            Upstream::Provider(p) => p.refusal(req),
            #[cfg(test)]
            Upstream::Fake(f) => f.refusal(req),
        }
    }

    /// Opens a streamed answer; see [`Provider::stream`].
    pub async fn stream(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<ChatStream, ProviderError> {
        match self {
            Upstream::Provider(p) => p.stream(req, timeout).await,
            #[cfg(test)]
            Upstream::Fake(f) => f.stream(req, timeout).await,
        }
    }
}

/// One endpoint with its client and the state every request to it shares.
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    pub upstream: Upstream,
    /// Longest wait for one attempt.
    pub timeout: Duration,
    /// The key variable, named in errors that look like a bad key.
    pub key_env: Option<String>,
    pub circuit: Arc<Circuit>,
    pub limits: Limits,
    /// Requests assigned here and not finished; the selector prefers endpoints with fewer
    /// per unit of weight. Only a load hint, so relaxed ordering is enough.
    in_flight: AtomicUsize,
}

impl Endpoint {
    pub fn new(config: &EndpointConfig, router: &RouterConfig, upstream: Upstream) -> Self {
        metrics::in_flight(&config.name, 0.0);
        Self {
            name: config.name.clone(),
            upstream,
            timeout: config.timeout,
            key_env: config.api_key_env.clone(),
            circuit: Arc::new(Circuit::new(&config.name, router.circuit_breaker)),
            limits: Limits::new(&config.name, &config.limits),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Counts a request as in flight here until the guard drops.
    pub fn assign(&self) -> InFlight<'_> {
        self.enter();
        InFlight(self)
    }

    fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::in_flight(&self.name, 1.0);
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics::in_flight(&self.name, -1.0);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a batch line as in flight here until the guard drops; see [`Endpoint::assign`].
pub fn assign_owned(endpoint: &Arc<Endpoint>) -> OwnedInFlight {
    endpoint.enter();
    OwnedInFlight(Arc::clone(endpoint))
}

/// A batch line assigned to an endpoint; see [`assign_owned`].
#[derive(Debug)]
pub struct OwnedInFlight(Arc<Endpoint>);

impl Drop for OwnedInFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A request assigned to an endpoint; see [`Endpoint::assign`].
pub struct InFlight<'a>(&'a Endpoint);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// An endpoint and the model to ask there.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: Arc<Endpoint>,
    pub model: String,
    pub weight: u32,
}

/// A route: its channel and its targets grouped by priority, best first.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub channel: String,
    pub tiers: Vec<Vec<Target>>,
    pub timeout: Duration,
    pub retry: RetryConfig,
}

impl Route {
    /// `endpoints` must hold every endpoint the route names (validation made sure).
    pub fn new(config: &RouteConfig, endpoints: &[Arc<Endpoint>]) -> Option<Self> {
        let mut priorities: Vec<u32> = config.targets.iter().map(|t| t.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        let mut tiers = Vec::with_capacity(priorities.len());
        for priority in priorities {
            let mut tier = Vec::new();
            for t in config.targets.iter().filter(|t| t.priority == priority) {
                let endpoint = endpoints.iter().find(|e| e.name == t.endpoint)?;
                tier.push(Target {
                    endpoint: Arc::clone(endpoint),
                    model: t.model.clone(),
                    weight: t.weight.max(1),
                });
            }
            tiers.push(tier);
        }
        Some(Self {
            name: config.name.clone(),
            channel: config.channel.clone(),
            tiers,
            timeout: config.timeout,
            retry: config.retry,
        })
    }
}

/// The order in which to try a tier's targets: repeatedly the one with the fewest
/// requests in flight per unit of weight, open circuits last, ties broken at random in
/// proportion to weight. With nothing in flight that is a weighted random share; under
/// load it keeps in-flight counts proportional to weights.
pub fn order(tier: &[Target], mut uniform: impl FnMut() -> f64) -> Vec<&Target> {
    let mut left: Vec<&Target> = tier.iter().collect();
    let mut ordered = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let loads: Vec<Load> = left.iter().map(|t| Load::of(t)).collect();
        let tied: Vec<usize> = (0..left.len())
            .filter(|&i| !loads.iter().any(|other| other.lighter_than(&loads[i])))
            .collect();
        let pick = weighted_pick(&tied, |i| left[i].weight, uniform());
        ordered.push(left.remove(pick));
    }
    ordered
}

/// What the selector compares.
#[derive(Debug, Clone, Copy)]
struct Load {
    open: bool,
    in_flight: usize,
    weight: u32,
}

impl Load {
    fn of(target: &Target) -> Self {
        Self {
            open: target.endpoint.circuit.is_open(),
            in_flight: target.endpoint.in_flight(),
            weight: target.weight,
        }
    }

    /// Strictly better: closed before open, then fewer in flight per unit of weight
    /// (compared by cross-multiplying).
    fn lighter_than(&self, other: &Load) -> bool {
        if self.open != other.open {
            return !self.open;
        }
        (self.in_flight as u128) * u128::from(other.weight)
            < (other.in_flight as u128) * u128::from(self.weight)
    }
}

/// One of `candidates` (indexes), each with probability proportional to its weight;
/// `u` is uniform in [0, 1).
fn weighted_pick(candidates: &[usize], weight: impl Fn(usize) -> u32, u: f64) -> usize {
    let total: u64 = candidates.iter().map(|&i| u64::from(weight(i))).sum();
    let mut point = (u.clamp(0.0, 1.0) * total as f64) as u64;
    for &i in candidates {
        let w = u64::from(weight(i));
        if point < w {
            return i;
        }
        point -= w;
    }
    candidates.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_pick_follows_weights() {
        let weights = [3, 1];
        assert_eq!(weighted_pick(&[0, 1], |i| weights[i], 0.0), 0);
        assert_eq!(weighted_pick(&[0, 1], |i| weights[i], 0.74), 0);
        assert_eq!(weighted_pick(&[0, 1], |i| weights[i], 0.76), 1);
        assert_eq!(weighted_pick(&[0, 1], |i| weights[i], 1.0), 1);
        assert_eq!(weighted_pick(&[1], |i| weights[i], 0.0), 1);
    }

    #[test]
    fn load_per_weight_decides_before_chance() {
        let load = |in_flight, weight| Load {
            open: false,
            in_flight,
            weight,
        };
        assert!(load(1, 3).lighter_than(&load(1, 1)), "1/3 < 1/1");
        assert!(!load(2, 1).lighter_than(&load(3, 2)), "2/1 > 3/2");
        assert!(!load(0, 1).lighter_than(&load(0, 5)), "a tie");
        let open = Load {
            open: true,
            ..load(0, 1)
        };
        assert!(load(9, 1).lighter_than(&open), "open circuits last");
    }
}
