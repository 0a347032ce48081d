//! One rate budget (requests or tokens per minute) on governor's GCRA, remembering when a
//! refused check said the budget frees up: governor has no "peek", and that instant is
//! what the cheap "is there spare budget?" test reads.

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;
use std::num::NonZeroU32;
use std::time::Duration;
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

/// The request quota: never more than `n` in any 60 s window (the way providers count,
/// and what the simulated provider enforces), bursts up to `n / 50`, the rest spread out.
/// After a burst of `b` the steady cells come one per period, so a window holds at most
/// `b + floor(60 s / period)`; spreading `n - b` over 60.5 s keeps that strictly below
/// `n` (and leaves half a second for the network delivering two requests a little closer
/// together than they were sent), while a long saturated run still gets about 97% of `n`.
pub fn request_quota(n: NonZeroU32) -> Quota {
    let burst = NonZeroU32::new(n.get() / 50).unwrap_or(NonZeroU32::MIN);
    let steady = u64::from((n.get() - burst.get()).max(1));
    let period = Duration::from_nanos(SPREAD_NANOS.div_ceil(steady));
    Quota::with_period(period)
        .unwrap_or(Quota::per_minute(n))
        .allow_burst(burst)
}

const SPREAD_NANOS: u64 = 60_500_000_000;

/// A rate budget and when it frees up after a refusal.
#[derive(Debug)]
pub struct Rate {
    limiter: Limiter,
    /// The most cells one check can take (the quota's burst).
    burst: NonZeroU32,
    /// When the last refused check said the budget frees up. Written by every refusal,
    /// read by [`Rate::exhausted`] without touching the limiter, so a cheap test takes
    /// nothing; a stale value only makes that test pessimistic until the instant passes.
    free_at: Mutex<Option<Instant>>,
}

/// Why cells could not be taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// They free up after this long.
    For(Duration),
    /// More than the burst: never (callers cap requests at [`Rate::burst`]).
    Never,
}

impl Rate {
    /// Requests per minute, `n` in any 60 s window; see [`request_quota`].
    pub fn requests(n: NonZeroU32) -> Self {
        let quota = request_quota(n);
        Self::new(quota)
    }

    /// Tokens per minute; one request may take the whole minute's budget.
    pub fn tokens(n: NonZeroU32) -> Self {
        Self::new(Quota::per_minute(n))
    }

    fn new(quota: Quota) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(quota, TokioClock),
            burst: quota.burst_size(),
            free_at: Mutex::new(None),
        }
    }

    /// Starts with the burst already spent, so a budget that replaces another (a changed
    /// cluster share) grants only its steady rate, never a fresh burst.
    pub fn drained(self) -> Self {
        let _ = self.limiter.check_n(self.burst);
        // Records when the first steady cell comes; takes nothing, the burst is gone.
        let _ = self.try_take(NonZeroU32::MIN);
        self
    }

    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// Takes `n` cells now, or says when they free up.
    pub fn try_take(&self, n: NonZeroU32) -> Result<(), Refused> {
        match self.limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(TokioClock.now());
                *self.free_at.lock() = Some(Instant::now() + wait);
                Err(Refused::For(wait))
            }
            Err(_) => Err(Refused::Never),
        }
    }

    /// When the budget frees up, if a refusal said it is exhausted now.
    pub fn exhausted_until(&self) -> Option<Instant> {
        let free_at = (*self.free_at.lock())?;
        (Instant::now() < free_at).then_some(free_at)
    }
}
