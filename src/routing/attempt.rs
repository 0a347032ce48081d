//! One attempt at one target: the circuit breaker's leave, the endpoint's budgets, then
//! the provider call, with its outcome reported back to the breaker, limits and metrics.

use super::circuit::{Admission, Rejected, Verdict};
use super::limits::{estimate_tokens, Budget, NoBudget};
use super::metrics;
use super::table::{Endpoint, Target};
use crate::provider::{FailureKind, LlmRequest, LlmResponse, ProviderError};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Why an attempt did not produce an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptError {
    /// The provider call failed. `cut_short`: it timed out, and its timeout was the
    /// request's remaining time, not the endpoint's own timeout.
    Provider {
        error: ProviderError,
        cut_short: bool,
    },
    /// The circuit breaker kept the attempt away.
    Circuit(Rejected),
    /// No budget before the deadline.
    NoBudget(NoBudget),
    /// No time left to make the attempt.
    Deadline,
}

impl AttemptError {
    /// Whether trying the same target again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AttemptError::Provider { error, .. } if error.kind() == FailureKind::Retryable)
    }

    /// The provider's Retry-After, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AttemptError::Provider { error, .. } => error.retry_after(),
            _ => None,
        }
    }
}

/// What the attempts at one target add up to; shared by the retry loop's attempts.
#[derive(Debug, Default)]
pub struct Tally {
    /// Provider calls made.
    attempts: AtomicU32,
    /// The last provider error, for the caller's error text.
    last: Mutex<Option<ProviderError>>,
}

impl Tally {
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<ProviderError> {
        self.last.lock().clone()
    }

    /// Keeps the last provider error, for the caller's error text.
    pub fn set_last(&self, error: &ProviderError) {
        *self.last.lock() = Some(error.clone());
    }

    /// Counts a call; returns its number.
    pub fn add_call(&self) -> u32 {
        self.attempts.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// What an attempt needs before its call: the breaker's leave, the endpoint's budget, and
/// how long the call may take (the endpoint's timeout, cut to the deadline).
pub struct Leave {
    pub admission: Admission,
    pub budget: Budget,
    pub timeout: Duration,
}

/// Gets leave for one attempt at `target` before `deadline`, or says why not.
pub async fn leave(
    target: &Target,
    req: &LlmRequest,
    deadline: Instant,
) -> Result<Leave, AttemptError> {
    let endpoint = &target.endpoint;
    if Instant::now() >= deadline {
        return Err(AttemptError::Deadline);
    }
    let admission = endpoint.circuit.admit().map_err(AttemptError::Circuit)?;
    let budget = endpoint
        .limits
        .acquire(estimate_tokens(req), deadline)
        .await
        .map_err(AttemptError::NoBudget)?;
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(AttemptError::Deadline);
    }
    Ok(Leave {
        admission,
        budget,
        timeout: endpoint.timeout.min(remaining),
    })
}

/// Makes one attempt at `target` before `deadline`; `req` already names the target's model.
pub async fn attempt(
    target: &Target,
    req: &LlmRequest,
    deadline: Instant,
    tally: &Tally,
) -> Result<LlmResponse, AttemptError> {
    let endpoint = &target.endpoint;
    let Leave {
        admission,
        budget,
        timeout,
    } = leave(target, req, deadline).await?;
    let result = call(endpoint, admission, &budget, req, timeout).await;
    if tally.add_call() > 1 {
        metrics::retry(&endpoint.name);
    }
    if let Err(AttemptError::Provider { error, .. }) = &result {
        *tally.last.lock() = Some(error.clone());
    }
    result
}

/// The provider call of one attempt that already has its admission and budget, at most
/// `timeout`, reported to the breaker, the token budget and the metrics.
pub async fn call(
    endpoint: &Endpoint,
    admission: Admission,
    budget: &Budget,
    req: &LlmRequest,
    timeout: Duration,
) -> Result<LlmResponse, AttemptError> {
    let start = Instant::now();
    let result = endpoint.upstream.call(req, timeout).await;
    metrics::upstream_latency(&endpoint.name, start.elapsed());
    metrics::upstream_response(&endpoint.name, result.as_ref().map(|_| ()), false);
    match result {
        Ok(response) => {
            admission.settle(Verdict::Healthy);
            let usage = response.usage;
            let used = usage.prompt_tokens.saturating_add(usage.completion_tokens);
            endpoint.limits.settle(budget.charged_tokens, used);
            metrics::tokens(&endpoint.name, usage.prompt_tokens, usage.completion_tokens);
            Ok(response)
        }
        Err(error) => {
            let cut_short =
                timeout < endpoint.timeout && matches!(error, ProviderError::Timeout(_));
            admission.settle(verdict(&error, cut_short));
            Err(AttemptError::Provider { error, cut_short })
        }
    }
}

/// What a failed call says about the endpoint (as opposed to the request).
pub fn verdict(error: &ProviderError, cut_short: bool) -> Verdict {
    match error {
        ProviderError::Timeout(_) if cut_short => Verdict::Unknown,
        ProviderError::Decode(_) => Verdict::Failing,
        _ => match error.kind() {
            FailureKind::Retryable | FailureKind::NextTarget => Verdict::Failing,
            FailureKind::Fatal => Verdict::Healthy,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ProviderError {
        ProviderError::Status {
            status,
            retry_after: None,
            message: String::new(),
        }
    }

    #[test]
    fn verdicts_blame_the_endpoint_only_for_its_own_failures() {
        assert_eq!(verdict(&status(503), false), Verdict::Failing);
        assert_eq!(verdict(&status(401), false), Verdict::Failing);
        assert_eq!(verdict(&status(400), false), Verdict::Healthy);
        assert_eq!(verdict(&status(422), false), Verdict::Healthy);
        let timeout = ProviderError::Timeout(Duration::from_secs(1));
        assert_eq!(verdict(&timeout, false), Verdict::Failing);
        assert_eq!(verdict(&timeout, true), Verdict::Unknown);
        assert_eq!(
            verdict(&ProviderError::Decode("x".into()), false),
            Verdict::Failing
        );
    }
}
