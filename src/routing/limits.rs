//! Per-endpoint budgets: requests per minute and tokens per minute (`governor`), and a
//! concurrency cap (a semaphore). A request waits for budget while its deadline allows,
//! so the router slows down instead of collecting 429s.

use super::metrics;
use crate::config::LimitsConfig;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// governor's clock reading tokio's, so that paused-time tests drive the limiters too.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        Instant::now().into_std()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// The budgets of one endpoint.
#[derive(Debug)]
pub struct Limits {
    endpoint: String,
    requests: Option<Limiter>,
    /// With its burst, the most one request can be charged at once.
    tokens: Option<(Limiter, NonZeroU32)>,
    /// Why a semaphore: a request holds a permit for its whole attempt, so at most
    /// `max-concurrency` attempts are on the wire; the rest queue in FIFO order.
    concurrency: Option<(Arc<Semaphore>, usize)>,
}

/// Why a request could not get budget before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBudget {
    /// The rate budget frees up in `wait`, past the deadline.
    Rate { wait: Duration },
    /// Every concurrency slot stayed busy until the deadline.
    Concurrency { max: usize },
}

/// Held for the duration of one attempt.
#[derive(Debug)]
pub struct Budget {
    _permit: Option<OwnedSemaphorePermit>,
    /// Tokens charged up front, to correct with the real usage.
    pub charged_tokens: u32,
}

/// The request quota: never more than `n` in any 60 s window (the way providers count,
/// and what the simulated provider enforces), bursts up to `n / 20`, the rest spread out.
/// A burst of `b` and a steady `r` per window admit at most `b + r - 1` in any window, so
/// the steady rate is `n - b + 1`, spread over 61 s: a second of slack for the network
/// delivering two requests a little closer together than they were sent.
pub fn request_quota(n: NonZeroU32) -> Quota {
    let burst = NonZeroU32::new(n.get() / 20).unwrap_or(NonZeroU32::MIN);
    let steady = u64::from(n.get() - burst.get() + 1);
    let period = Duration::from_nanos(SPREAD_NANOS.div_ceil(steady));
    Quota::with_period(period)
        .unwrap_or(Quota::per_minute(n))
        .allow_burst(burst)
}

const SPREAD_NANOS: u64 = 61_000_000_000;

impl Limits {
    pub fn new(endpoint: &str, config: &LimitsConfig) -> Self {
        let nonzero = |v: Option<u32>| v.and_then(NonZeroU32::new);
        let requests = nonzero(config.requests_per_minute)
            .map(|n| RateLimiter::direct_with_clock(request_quota(n), TokioClock));
        let tokens = nonzero(config.tokens_per_minute).map(|n| {
            (
                RateLimiter::direct_with_clock(Quota::per_minute(n), TokioClock),
                n,
            )
        });
        let concurrency = config
            .max_concurrency
            .filter(|&n| n > 0)
            .map(|n| usize::try_from(n).unwrap_or(Semaphore::MAX_PERMITS))
            .map(|n| (Arc::new(Semaphore::new(n)), n));
        Self {
            endpoint: endpoint.to_owned(),
            requests,
            tokens,
            concurrency,
        }
    }

    /// Waits for a concurrency slot, a request and `tokens` tokens, or says which budget
    /// cannot be had before `deadline`.
    pub async fn acquire(&self, tokens: u32, deadline: Instant) -> Result<Budget, NoBudget> {
        let start = Instant::now();
        let result = self.acquire_all(tokens, deadline).await;
        let waited = start.elapsed();
        if !waited.is_zero() {
            metrics::rate_limit_wait(&self.endpoint, waited);
        }
        result
    }

    async fn acquire_all(&self, tokens: u32, deadline: Instant) -> Result<Budget, NoBudget> {
        let permit = match &self.concurrency {
            None => None,
            Some((semaphore, max)) => Some(slot(semaphore, *max, deadline).await?),
        };
        let charged_tokens = match &self.tokens {
            Some((limiter, burst)) => {
                let n = tokens.clamp(1, burst.get());
                take(
                    limiter,
                    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
                    deadline,
                )
                .await?;
                n
            }
            None => 0,
        };
        if let Some(limiter) = &self.requests {
            take(limiter, NonZeroU32::MIN, deadline).await?;
        }
        Ok(Budget {
            _permit: permit,
            charged_tokens,
        })
    }

    /// Charges tokens used beyond the up-front estimate, as far as the budget has them
    /// now; governor cannot go into debt, so a large overrun is charged only in part.
    pub fn settle(&self, charged: u32, used: u32) {
        let Some((limiter, burst)) = &self.tokens else {
            return;
        };
        let extra = used.saturating_sub(charged).min(burst.get());
        if let Some(n) = NonZeroU32::new(extra) {
            let _ = limiter.check_n(n);
        }
    }
}

async fn slot(
    semaphore: &Arc<Semaphore>,
    max: usize,
    deadline: Instant,
) -> Result<OwnedSemaphorePermit, NoBudget> {
    let busy = NoBudget::Concurrency { max };
    match tokio::time::timeout_at(deadline, Arc::clone(semaphore).acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        // Never closed; treat it like a slot that never freed up.
        Ok(Err(_)) | Err(_) => Err(busy),
    }
}

/// Takes `n` cells from `limiter`, sleeping while the budget refills in time.
async fn take(limiter: &Limiter, n: NonZeroU32, deadline: Instant) -> Result<(), NoBudget> {
    loop {
        let wait = match limiter.check_n(n) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until.wait_time_from(TokioClock.now()),
            // `n` is capped at the burst size, so this cannot happen; refuse rather than spin.
            Err(_) => {
                return Err(NoBudget::Rate {
                    wait: Duration::MAX,
                })
            }
        };
        let ready_at = Instant::now() + wait;
        if ready_at > deadline {
            return Err(NoBudget::Rate { wait });
        }
        tokio::time::sleep_until(ready_at).await;
    }
}

/// Tokens a request may use, estimated before sending it: about 4 characters per token
/// plus a few per message, and the completion's `max_tokens` if set (as OpenAI counts).
pub fn estimate_tokens(req: &crate::provider::ChatRequest) -> u32 {
    let chars: usize = req
        .messages
        .iter()
        .map(|m| m.content.len() + m.role.len())
        .sum();
    let prompt = chars / 4 + 4 * req.messages.len();
    u32::try_from(prompt)
        .unwrap_or(u32::MAX)
        .saturating_add(req.max_tokens.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u32>, tpm: Option<u32>, conc: Option<u32>) -> Limits {
        Limits::new(
            "test",
            &LimitsConfig {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
                max_concurrency: conc,
            },
        )
    }

    /// The most requests admitted in any 60 s window, given admission times.
    fn max_in_window(times: &[Instant]) -> usize {
        times
            .iter()
            .map(|start| {
                times
                    .iter()
                    .filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(60))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_wait_and_never_exceed_n_in_any_window() {
        for n in [1, 7, 20, 60, 100, 1000] {
            let l = limits(Some(n), None, None);
            let far = Instant::now() + Duration::from_secs(3600);
            let mut times = Vec::new();
            for _ in 0..(3 * n) {
                l.acquire(0, far).await.unwrap();
                times.push(Instant::now());
            }
            let most = max_in_window(&times);
            assert!(most <= n as usize, "rpm {n}: {most} in one window");
            assert!(
                most * 100 >= n as usize * 95,
                "rpm {n}: only {most} in one window"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_that_cannot_wait_gets_no_budget() {
        let l = limits(Some(20), None, None);
        let soon = Instant::now() + Duration::from_millis(500);
        l.acquire(0, soon).await.unwrap();
        let refused = l.acquire(0, soon).await.unwrap_err();
        assert!(matches!(refused, NoBudget::Rate { wait } if wait > Duration::from_millis(500)));
        assert_eq!(
            Instant::now() + Duration::from_millis(500),
            soon,
            "did not sleep in vain"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_per_minute_holds_estimates() {
        let l = limits(None, Some(1000), None);
        let far = Instant::now() + Duration::from_secs(3600);
        let start = Instant::now();
        l.acquire(600, far).await.unwrap();
        l.acquire(600, far).await.unwrap();
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(12), "{waited:?}");
        assert!(waited <= Duration::from_secs(13), "{waited:?}");
        assert_eq!(
            l.acquire(5000, far).await.unwrap().charged_tokens,
            1000,
            "capped at the burst"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_queues_until_a_slot_frees() {
        let l = Arc::new(limits(None, None, Some(1)));
        let soon = Instant::now() + Duration::from_secs(1);
        let first = l.acquire(0, soon).await.unwrap();
        assert_eq!(
            l.acquire(0, soon).await.unwrap_err(),
            NoBudget::Concurrency { max: 1 }
        );
        let later = Instant::now() + Duration::from_secs(10);
        let waiter = tokio::spawn({
            let l = Arc::clone(&l);
            async move { l.acquire(0, later).await.map(|_| Instant::now()) }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(first);
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got, soon + Duration::from_secs(2));
    }

    #[test]
    fn estimate_counts_prompt_and_max_tokens() {
        let req = crate::provider::ChatRequest {
            messages: vec![crate::provider::ChatMessage {
                role: "user".into(),
                content: "x".repeat(396),
            }],
            max_tokens: Some(50),
            ..Default::default()
        };
        assert_eq!(estimate_tokens(&req), 100 + 4 + 50);
    }
}
