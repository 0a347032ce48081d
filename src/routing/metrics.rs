//! The routing series. Labels are bounded: `route` and `endpoint` are names from the
//! configuration and `kind` is fixed, never anything from a request. Requests by route and
//! outcome (`llm_router_requests_total`) are the worker's, which sees every request.

use crate::provider::ProviderError;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use std::borrow::Cow;
use std::time::Duration;

/// Histogram {endpoint}: duration of each provider call (one attempt), seconds.
pub const UPSTREAM_LATENCY: &str = "llm_router_upstream_latency_seconds";
/// Counter {endpoint, status}: provider calls by how they ended: the HTTP status as text
/// (`200`, `429`, `503`, …), or `timeout`, `connect` (no response), `reset` (a stream that
/// broke off after its response head) or `decode` (an unreadable answer).
pub const UPSTREAM_RESPONSES: &str = "llm_router_upstream_responses_total";
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
        UPSTREAM_RESPONSES,
        Unit::Count,
        "Provider calls by endpoint and outcome: the HTTP status, or timeout, connect, reset, decode."
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

/// Counts one provider call's outcome; `Ok` is a 200 answer. `mid_stream`: the call had
/// already streamed part of its answer, so a broken connection is a `reset`.
pub fn upstream_response(endpoint: &str, outcome: Result<(), &ProviderError>, mid_stream: bool) {
    let status = match outcome {
        Ok(()) => Cow::Borrowed("200"),
        Err(error) => status_label(error, mid_stream),
    };
    counter!(UPSTREAM_RESPONSES, "endpoint" => endpoint.to_owned(), "status" => status)
        .increment(1);
}

/// The `status` label of a failed call; bounded: a real HTTP status (100-599) or one of a
/// few words.
fn status_label(error: &ProviderError, mid_stream: bool) -> Cow<'static, str> {
    match error {
        ProviderError::Status { status, .. } if (100..=599).contains(status) => {
            Cow::Owned(status.to_string())
        }
        ProviderError::Status { .. } => Cow::Borrowed("other"),
        ProviderError::Timeout(_) => Cow::Borrowed("timeout"),
        ProviderError::Connect(_) if mid_stream => Cow::Borrowed("reset"),
        ProviderError::Connect(_) => Cow::Borrowed("connect"),
        ProviderError::Decode(_) => Cow::Borrowed("decode"),
        ProviderError::Unsupported(_) => Cow::Borrowed("unsupported"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_the_http_status_or_a_few_words() {
        let status = |status| ProviderError::Status {
            status,
            retry_after: None,
            message: String::new(),
        };
        let connect = ProviderError::Connect("refused".into());
        for (error, mid_stream, label) in [
            (status(429), false, "429"),
            (status(503), true, "503"),
            (status(1000), false, "other"),
            (
                ProviderError::Timeout(Duration::from_secs(1)),
                false,
                "timeout",
            ),
            (connect.clone(), false, "connect"),
            (connect, true, "reset"),
            (ProviderError::Decode("x".into()), false, "decode"),
        ] {
            assert_eq!(status_label(&error, mid_stream), label, "{error:?}");
        }
    }
}
