//! The worker's series. Labels: `route` is a configured route name (bounded by the
//! config); `outcome` is `ok` or a [`super::wire::Failure::code`].
//! Upstream latency, retries, failovers, circuit state, limit waits and tokens per
//! endpoint are the router's (`crate::routing`).

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use std::sync::Once;
use std::time::Duration;

/// Requests answered, by `route` and `outcome`.
pub const REQUESTS: &str = "llm_router_requests_total";
/// Receipt to reply sent, by `route`.
pub const DURATION: &str = "llm_router_request_duration_seconds";
/// End-to-end minus the time spent in the router (upstream calls, retries, limit waits),
/// by `route`: what the worker itself adds.
pub const OVERHEAD: &str = "llm_router_overhead_seconds";
/// Requests being handled now, by `route`.
pub const IN_FLIGHT: &str = "llm_router_in_flight_requests";
/// Replies the broker did not accept (the caller then times out).
pub const REPLY_ERRORS: &str = "llm_router_reply_errors_total";
/// Tokens used by answered requests, by `route` and `kind` (`prompt`, `completion`).
pub const TOKENS: &str = "llm_router_route_tokens_total";
/// Streamed requests: receipt to the first chunk published, by `route`.
pub const STREAM_FIRST_CHUNK: &str = "llm_router_stream_first_chunk_seconds";

/// Installs the process's recorder if needed and gives every series its help text, once
/// per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Series recorded before the recorder exists would be lost: install it first.
        crate::metrics::handle();
        describe_counter!(REQUESTS, "Requests answered by workers, by route and outcome.");
        describe_histogram!(DURATION, Unit::Seconds, "Worker end-to-end time from receiving a request to sending its reply, by route.");
        describe_histogram!(OVERHEAD, Unit::Seconds, "End-to-end time minus time spent in the router (upstream, retries, limit waits), by route.");
        describe_gauge!(IN_FLIGHT, "Requests a worker is handling now, by route.");
        describe_counter!(REPLY_ERRORS, "Replies the broker refused or could not take.");
        describe_counter!(TOKENS, "Tokens used by answered requests, by route and kind (prompt, completion).");
        describe_histogram!(STREAM_FIRST_CHUNK, Unit::Seconds, "Streamed requests: time from the worker receiving the request to publishing its first chunk, by route.");
    });
}

/// Moves the in-flight gauge of `route` up now and down when dropped.
pub struct InFlight {
    route: String,
}

impl InFlight {
    pub fn start(route: &str) -> Self {
        gauge!(IN_FLIGHT, "route" => route.to_owned()).increment(1.0);
        Self {
            route: route.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT, "route" => self.route.clone()).decrement(1.0);
    }
}

/// Records one finished request.
pub fn finished(route: &str, outcome: &'static str, total: Duration, in_router: Duration) {
    counter!(REQUESTS, "route" => route.to_owned(), "outcome" => outcome).increment(1);
    histogram!(DURATION, "route" => route.to_owned()).record(total.as_secs_f64());
    let overhead = total.saturating_sub(in_router);
    histogram!(OVERHEAD, "route" => route.to_owned()).record(overhead.as_secs_f64());
}

/// Counts the tokens of an answered request.
pub fn tokens(route: &str, prompt: u32, completion: u32) {
    counter!(TOKENS, "route" => route.to_owned(), "kind" => "prompt").increment(u64::from(prompt));
    counter!(TOKENS, "route" => route.to_owned(), "kind" => "completion")
        .increment(u64::from(completion));
}

/// Records a stream's time to its first chunk.
pub fn first_chunk(route: &str, elapsed: Duration) {
    histogram!(STREAM_FIRST_CHUNK, "route" => route.to_owned()).record(elapsed.as_secs_f64());
}

/// Counts a reply the broker did not take.
pub fn reply_error() {
    counter!(REPLY_ERRORS).increment(1);
}
