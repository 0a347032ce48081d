//! Retries of one target: exponential backoff with full jitter (a pure [`delay`] plus a
//! random point), stretched to the provider's Retry-After, never past the deadline; the
//! loop itself is `backon`'s.

use super::attempt::{attempt, AttemptError, Tally};
use super::table::Target;
use crate::config::RetryConfig;
use crate::provider::{LlmRequest, LlmResponse, ProviderError};
use backon::Retryable;
use std::time::Duration;
use tokio::time::Instant;

/// The longest sleep before retry number `retry` (1 is the first retry):
/// `base-delay * 2^(retry-1)`, capped at `max-delay`.
pub fn ceiling(policy: &RetryConfig, retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1).min(31);
    policy
        .base_delay
        .checked_mul(1 << doublings)
        .unwrap_or(policy.max_delay)
        .min(policy.max_delay)
}

/// Full jitter: the sleep before retry number `retry` is `jitter` (uniform in [0, 1]) of
/// the way up to its [`ceiling`], so that clients that failed together spread out.
pub fn delay(policy: &RetryConfig, retry: u32, jitter: f64) -> Duration {
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    ceiling(policy, retry).mul_f64(jitter)
}

/// The backoff `backon` walks: one [`delay`] per retry, `max-attempts - 1` of them.
#[derive(Debug, Clone)]
pub struct FullJitter {
    policy: RetryConfig,
    next_retry: u32,
}

impl FullJitter {
    pub fn new(policy: RetryConfig) -> Self {
        Self {
            policy,
            next_retry: 1,
        }
    }
}

impl Iterator for FullJitter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.next_retry >= self.policy.max_attempts {
            return None;
        }
        let sleep = delay(&self.policy, self.next_retry, rand::random());
        self.next_retry += 1;
        Some(sleep)
    }
}

/// Why a target stopped being retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// No retries left (or the failure was not retryable).
    Exhausted,
    /// The next attempt would start past the deadline.
    Deadline,
    /// The provider asked to wait longer than the deadline allows.
    RetryAfter(Duration),
}

/// How long to sleep before the next attempt, given `backoff` (None when retries are
/// used up) and the provider's `retry_after`, or why not to retry.
pub fn next_sleep(
    backoff: Option<Duration>,
    retry_after: Option<Duration>,
    deadline: Instant,
) -> Result<Duration, Stop> {
    let backoff = backoff.ok_or(Stop::Exhausted)?;
    let sleep = backoff.max(retry_after.unwrap_or_default());
    if Instant::now() + sleep < deadline {
        return Ok(sleep);
    }
    match retry_after {
        Some(asked) if asked >= backoff => Err(Stop::RetryAfter(asked)),
        _ => Err(Stop::Deadline),
    }
}

/// The answer from one target, or its last error, with how the attempts went.
#[derive(Debug)]
pub struct TargetOutcome<T = LlmResponse> {
    pub result: Result<T, AttemptError>,
    pub attempts: u32,
    pub stop: Stop,
    /// The last provider error, if a call was made and failed.
    pub last: Option<ProviderError>,
}

/// Attempts `target` until it answers, fails in a way retrying cannot fix, runs out of
/// retries, or the deadline is near.
pub async fn call_target(
    target: &Target,
    req: &LlmRequest,
    policy: RetryConfig,
    deadline: Instant,
) -> TargetOutcome {
    let tally = Tally::default();
    let op = || attempt(target, req, deadline, &tally);
    retry_target(target, policy, deadline, &tally, op).await
}

/// The retry loop around any kind of attempt at `target` (`op`, which reports its calls
/// to `tally`): a whole answer, or a stream up to its first chunk.
pub async fn retry_target<T, Fut>(
    target: &Target,
    policy: RetryConfig,
    deadline: Instant,
    tally: &Tally,
    op: impl FnMut() -> Fut,
) -> TargetOutcome<T>
where
    Fut: std::future::Future<Output = Result<T, AttemptError>>,
{
    let mut stop = Stop::Exhausted;
    let result = op
        .retry(FullJitter::new(policy))
        .sleep(tokio::time::sleep)
        .when(AttemptError::is_retryable)
        .adjust(
            |error, backoff| match next_sleep(backoff, error.retry_after(), deadline) {
                Ok(sleep) => Some(sleep),
                Err(why) => {
                    stop = why;
                    None
                }
            },
        )
        .notify(|error, sleep| {
            tracing::debug!(endpoint = %target.endpoint.name, ?error, ?sleep, "retrying");
        })
        .await;
    TargetOutcome {
        result,
        attempts: tally.attempts(),
        stop,
        last: tally.last_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, base_ms: u64, max_ms: u64) -> RetryConfig {
        RetryConfig {
            max_attempts,
            base_delay: Duration::from_millis(base_ms),
            max_delay: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let p = policy(10, 100, 1000);
        let ceilings: Vec<u64> = (1..=6).map(|r| ceiling(&p, r).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            ceiling(&p, u32::MAX),
            Duration::from_millis(1000),
            "no overflow"
        );
    }

    #[test]
    fn delay_is_a_point_between_zero_and_the_ceiling() {
        let p = policy(10, 100, 1000);
        assert_eq!(delay(&p, 3, 0.0), Duration::ZERO);
        assert_eq!(delay(&p, 3, 0.5), Duration::from_millis(200));
        assert_eq!(delay(&p, 3, 1.0), Duration::from_millis(400));
        assert_eq!(delay(&p, 3, 7.0), Duration::from_millis(400), "clamped");
        assert_eq!(delay(&p, 3, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn full_jitter_stays_in_bounds_and_spreads() {
        let p = policy(4, 100, 1000);
        for _ in 0..200 {
            let sleeps: Vec<Duration> = FullJitter::new(p).collect();
            assert_eq!(sleeps.len(), 3, "max-attempts 4 is 3 retries");
            for (i, sleep) in sleeps.iter().enumerate() {
                assert!(
                    *sleep <= ceiling(&p, i as u32 + 1),
                    "{sleep:?} at retry {}",
                    i + 1
                );
            }
        }
        let firsts: Vec<Duration> = (0..200).filter_map(|_| FullJitter::new(p).next()).collect();
        let low = firsts
            .iter()
            .filter(|d| **d < Duration::from_millis(50))
            .count();
        assert!(
            (40..160).contains(&low),
            "not uniform: {low}/200 below half"
        );
        assert_eq!(FullJitter::new(policy(1, 100, 1000)).next(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_stretches_the_sleep_within_the_deadline() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ms = Duration::from_millis;
        assert_eq!(next_sleep(Some(ms(100)), None, deadline), Ok(ms(100)));
        assert_eq!(
            next_sleep(Some(ms(100)), Some(ms(3000)), deadline),
            Ok(ms(3000))
        );
        assert_eq!(
            next_sleep(Some(ms(500)), Some(ms(10)), deadline),
            Ok(ms(500))
        );
        assert_eq!(
            next_sleep(Some(ms(100)), Some(ms(30_000)), deadline),
            Err(Stop::RetryAfter(ms(30_000)))
        );
        assert_eq!(
            next_sleep(Some(ms(10_000)), None, deadline),
            Err(Stop::Deadline)
        );
        assert_eq!(
            next_sleep(None, Some(ms(1)), deadline),
            Err(Stop::Exhausted)
        );
    }
}
