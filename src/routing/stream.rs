//! Streamed answers: the same target order, retries, breaker and budgets as a whole
//! answer, but an attempt succeeds at its first chunk. Until then a failure is retried or
//! fails over like any other; after it, a failure ends the stream with an error, since
//! the caller already has part of one answer and another target would splice in a second.

use super::attempt::{leave, verdict, AttemptError, Leave, Tally};
use super::circuit::{Admission, Verdict};
use super::failure::{self, Failure};
use super::limits::Budget;
use super::table::{self, assign_owned, Endpoint, OwnedInFlight, Route, Target};
use super::{failed, may_try, metrics, pinned, retry, RouteError};
use crate::provider::{ChatChunk, ChatStream, LlmRequest, ProviderError, Usage};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A failure after the first chunk: the stream ends here.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{endpoint} failed mid-stream: {error}")]
pub struct MidStreamError {
    pub endpoint: String,
    pub error: ProviderError,
}

/// A stream that has delivered its first chunk, with the endpoint's breaker admission
/// and budget held until it ends (dropping it early counts as neither success nor
/// failure, and closes the upstream connection).
pub struct Streaming {
    endpoint: Arc<Endpoint>,
    /// Attempts made in all, across targets, up to the first chunk.
    attempts: u32,
    first: Option<ChatChunk>,
    rest: ChatStream,
    deadline: Instant,
    /// When the successful attempt was sent.
    started: Instant,
    /// Settled when the stream ends; `None` after that.
    held: Option<(Admission, Budget)>,
    usage: Option<Usage>,
    _in_flight: OwnedInFlight,
}

impl Streaming {
    /// The endpoint that is answering.
    pub fn endpoint(&self) -> &str {
        &self.endpoint.name
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next chunk; `None` at the clean end. An error ends the stream. The whole
    /// stream is bounded by the request's deadline.
    pub async fn next(&mut self) -> Option<Result<ChatChunk, MidStreamError>> {
        if let Some(first) = self.first.take() {
            self.note_usage(&first);
            return Some(Ok(first));
        }
        self.held.as_ref()?;
        let item = match tokio::time::timeout_at(self.deadline, self.rest.next()).await {
            Ok(item) => item,
            Err(_elapsed) => Some(Err(ProviderError::Timeout(
                self.deadline.saturating_duration_since(self.started),
            ))),
        };
        match item {
            Some(Ok(chunk)) => {
                self.note_usage(&chunk);
                Some(Ok(chunk))
            }
            None => {
                self.settle(None);
                None
            }
            Some(Err(error)) => {
                self.settle(Some(&error));
                Some(Err(MidStreamError {
                    endpoint: self.endpoint.name.clone(),
                    error,
                }))
            }
        }
    }

    fn note_usage(&mut self, chunk: &ChatChunk) {
        if let Some(usage) = chunk.usage() {
            self.usage = Some(usage);
        }
    }

    /// Reports the stream's end to the breaker, the token budget and the metrics.
    fn settle(&mut self, error: Option<&ProviderError>) {
        let Some((admission, budget)) = self.held.take() else {
            return;
        };
        let endpoint = &self.endpoint;
        metrics::upstream_latency(&endpoint.name, self.started.elapsed());
        metrics::upstream_response(&endpoint.name, error.map_or(Ok(()), Err), true);
        match error {
            None => {
                admission.settle(Verdict::Healthy);
                let usage = self.usage.unwrap_or_default();
                let used = usage.prompt_tokens.saturating_add(usage.completion_tokens);
                endpoint.limits.settle(budget.charged_tokens, used);
                metrics::tokens(&endpoint.name, usage.prompt_tokens, usage.completion_tokens);
            }
            Some(error) => admission.settle(verdict(error, false)),
        }
    }
}

impl Drop for Streaming {
    /// A stream dropped before its end (the client went away) still had its 200 answer:
    /// the status series counts every call, even though the breaker learns nothing.
    fn drop(&mut self) {
        if self.held.is_some() {
            metrics::upstream_response(&self.endpoint.name, Ok(()), true);
        }
    }
}

/// An attempt that got its first chunk.
struct Opened {
    first: ChatChunk,
    rest: ChatStream,
    admission: Admission,
    budget: Budget,
    started: Instant,
}

/// Tries the route's targets (only `pin`'s, if set) like a whole answer would, until one
/// delivers a first chunk or the request is shown to be wrong.
pub async fn serve(
    route: &Route,
    mut req: LlmRequest,
    deadline: Instant,
    pin: Option<&str>,
) -> Result<Streaming, RouteError> {
    let mut failures: Vec<Failure> = Vec::new();
    let mut attempts = 0;
    for tier in &route.tiers {
        for target in pinned(table::order(tier, rand::random::<f64>), pin) {
            if target.endpoint.upstream.refusal(&req).is_some()
                || !may_try(route, target, deadline, &mut failures)
            {
                continue;
            }
            let in_flight = assign_owned(&target.endpoint);
            req.set_model(&target.model);
            let tally = Tally::default();
            let op = || attempt(target, &req, deadline, &tally);
            let outcome = retry::retry_target(target, route.retry, deadline, &tally, op).await;
            attempts += outcome.attempts;
            match outcome.result {
                Ok(opened) => {
                    return Ok(Streaming {
                        endpoint: Arc::clone(&target.endpoint),
                        attempts,
                        first: Some(opened.first),
                        rest: opened.rest,
                        deadline,
                        started: opened.started,
                        held: Some((opened.admission, opened.budget)),
                        usage: None,
                        _in_flight: in_flight,
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

/// One streaming attempt at `target`: breaker, budget, then the call up to its first
/// chunk, all within the endpoint's timeout and the deadline.
async fn attempt(
    target: &Target,
    req: &LlmRequest,
    deadline: Instant,
    tally: &Tally,
) -> Result<Opened, AttemptError> {
    let endpoint = &target.endpoint;
    let Leave {
        admission,
        budget,
        timeout,
    } = leave(target, req, deadline).await?;
    let started = Instant::now();
    let result = first_chunk(endpoint, req, timeout).await;
    if tally.add_call() > 1 {
        metrics::retry(&endpoint.name);
    }
    match result {
        Ok((first, rest)) => Ok(Opened {
            first,
            rest,
            admission,
            budget,
            started,
        }),
        Err(error) => {
            metrics::upstream_latency(&endpoint.name, started.elapsed());
            metrics::upstream_response(&endpoint.name, Err(&error), false);
            let cut_short =
                timeout < endpoint.timeout && matches!(error, ProviderError::Timeout(_));
            admission.settle(verdict(&error, cut_short));
            tally.set_last(&error);
            Err(AttemptError::Provider { error, cut_short })
        }
    }
}

/// Opens the stream and reads its first chunk within `timeout`.
async fn first_chunk(
    endpoint: &Endpoint,
    req: &LlmRequest,
    timeout: Duration,
) -> Result<(ChatChunk, ChatStream), ProviderError> {
    let opening = async {
        let mut stream = endpoint.upstream.stream(req, timeout).await?;
        match stream.next().await {
            Some(Ok(first)) => Ok((first, stream)),
            Some(Err(error)) => Err(error),
            None => Err(ProviderError::Connect(
                "the stream ended before its first chunk".into(),
            )),
        }
    };
    tokio::time::timeout(timeout, opening)
        .await
        .unwrap_or(Err(ProviderError::Timeout(timeout)))
}
