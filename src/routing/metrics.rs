//! The routing series. Labels are bounded: `route` and `endpoint` are names from the
//! configuration and `kind` is fixed, never anything from a request. Requests by route and
//! outcome (`llm_router_requests_total`) are the worker's, which sees every request.

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use std::time::Duration;

/// Histogram {endpoint}: duration of each provider call (one attempt), seconds.
pub const UPSTREAM_LATENCY: &str = "llm_router_upstream_latency_seconds";
/// Counter {endpoint}: retries (attempts after the first) at an endpoint.
pub const RETRIES: &str = "llm_router_retries_total";
/// Counter {route}: moves from a target that failed or was skipped to the next one.
pub const FAILOVERS: &str = "llm_router_failovers_total";
/// Gauge {endpoint}: 0 closed, 1 half-open, 2 open.
pub const CIRCUIT_STATE: &str = "llm_router_circuit_state";
/// Counter {endpoint}: requests that had to wait for a rate or concurrency budget.
pub const RATE_LIMIT_WAITS: &str = "llm_router_rate_limit_waits_total";
/// Histogram {endpoint}: how long those requests waited, seconds.
pub const RATE_LIMIT_WAIT: &str = "llm_router_rate_limit_wait_seconds";
/// Gauge {endpoint}: requests assigned to the endpoint and not finished.
pub const IN_FLIGHT: &str = "llm_router_in_flight";
/// Counter {endpoint, kind}: tokens the providers reported, `kind` prompt or completion.
pub const TOKENS: &str = "llm_router_tokens_total";
/// Gauge, no labels: live router processes this one shares the endpoints' limits with
/// (itself included), as membership last saw them.
pub const REPLICAS: &str = "llm_router_replicas";

/// Gives every routing series its help text and unit; call once the recorder is installed.
pub fn describe() {
    describe_histogram!(
        UPSTREAM_LATENCY,
        Unit::Seconds,
        "Duration of each provider call (one attempt), by endpoint."
    );
    describe_counter!(
        RETRIES,
        Unit::Count,
        "Retries (attempts after the first) at an endpoint."
    );
    describe_counter!(
        FAILOVERS,
        Unit::Count,
        "Moves of a request from a failed or skipped target to the next one, by route."
    );
    describe_gauge!(
        CIRCUIT_STATE,
        "Circuit breaker state by endpoint: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        RATE_LIMIT_WAITS,
        Unit::Count,
        "Requests that waited for an endpoint's rate or concurrency budget."
    );
    describe_histogram!(
        RATE_LIMIT_WAIT,
        Unit::Seconds,
        "How long requests waited for an endpoint's rate or concurrency budget."
    );
    describe_gauge!(IN_FLIGHT, "Requests assigned to an endpoint and not finished (waiting for budget, backing off or on the wire).");
    describe_counter!(
        TOKENS,
        Unit::Count,
        "Tokens reported by providers, by endpoint and kind (prompt, completion)."
    );
    describe_gauge!(
        REPLICAS,
        "Live router processes seen (this one included); each takes 1/replicas of every endpoint limit."
    );
}

pub fn upstream_latency(endpoint: &str, elapsed: Duration) {
    histogram!(UPSTREAM_LATENCY, "endpoint" => endpoint.to_owned()).record(elapsed.as_secs_f64());
    super::status::record_call(endpoint, elapsed);
}

pub fn retry(endpoint: &str) {
    counter!(RETRIES, "endpoint" => endpoint.to_owned()).increment(1);
}

pub fn failover(route: &str) {
    counter!(FAILOVERS, "route" => route.to_owned()).increment(1);
}

pub fn circuit_state(endpoint: &str, value: f64) {
    gauge!(CIRCUIT_STATE, "endpoint" => endpoint.to_owned()).set(value);
}

pub fn rate_limit_wait(endpoint: &str, waited: Duration) {
    counter!(RATE_LIMIT_WAITS, "endpoint" => endpoint.to_owned()).increment(1);
    histogram!(RATE_LIMIT_WAIT, "endpoint" => endpoint.to_owned()).record(waited.as_secs_f64());
}

pub fn in_flight(endpoint: &str, delta: f64) {
    gauge!(IN_FLIGHT, "endpoint" => endpoint.to_owned()).increment(delta);
}

pub fn tokens(endpoint: &str, prompt: u32, completion: u32) {
    let endpoint = endpoint.to_owned();
    counter!(TOKENS, "endpoint" => endpoint.clone(), "kind" => "prompt")
        .increment(u64::from(prompt));
    counter!(TOKENS, "endpoint" => endpoint, "kind" => "completion")
        .increment(u64::from(completion));
}

pub fn replicas(count: u32) {
    gauge!(REPLICAS).set(f64::from(count));
}
