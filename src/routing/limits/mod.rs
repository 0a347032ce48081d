//! Per-endpoint budgets: requests per minute and tokens per minute ([`rate`]), and a
//! concurrency cap ([`slots`]). An interactive request waits for budget while its
//! deadline allows, so the router slows down instead of collecting 429s; a batch line
//! takes budget only when it is free now and no interactive request is waiting for it.
//! Each budget is this process's share of the cluster's (see [`Limits::set_replicas`]).

mod rate;
mod slots;

use super::metrics;
use crate::config::LimitsConfig;
use parking_lot::RwLock;
use rate::{Rate, Refused};
use slots::{Slot, Slots};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The budgets of one endpoint.
#[derive(Debug)]
pub struct Limits {
    endpoint: String,
    /// The configured (cluster-wide) limits; shares are computed from these.
    config: LimitsConfig,
    /// Replaced whole when the share changes; every try re-reads it, so a request waiting
    /// on a replaced budget moves to the new one instead of draining the old.
    rates: RwLock<Arc<Rates>>,
    slots: Option<Arc<Slots>>,
    /// Interactive requests inside [`Limits::acquire`]. Batch takes nothing while this
    /// is above zero: interactive first. Only compared with zero, never a lock.
    waiting: AtomicUsize,
    /// Woken when a waiter leaves or a slot frees up: what a batch reservation waits on.
    changed: Arc<Notify>,
}

/// The rate budgets of one share.
#[derive(Debug, Default)]
struct Rates {
    requests: Option<Rate>,
    /// One request is charged at most this budget's burst.
    tokens: Option<Rate>,
}

/// Why a request could not get budget before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBudget {
    /// The rate budget frees up in `wait`, past the deadline.
    Rate { wait: Duration },
    /// Every concurrency slot stayed busy until the deadline.
    Concurrency { max: usize },
}

/// Why a batch line cannot have budget now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// An interactive request is waiting; try again when it got its budget.
    Interactive,
    /// Every slot is taken; try again when one frees up.
    Slots,
    /// The rate budget is spent until then.
    Until(Instant),
}

/// Held for the duration of one attempt.
#[derive(Debug)]
pub struct Budget {
    _slot: Option<Slot>,
    /// Tokens charged up front, to correct with the real usage.
    pub charged_tokens: u32,
}

/// Counts an interactive request as waiting while it lives.
struct Waiting<'a>(&'a Limits);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl Limits {
    pub fn new(endpoint: &str, config: &LimitsConfig) -> Self {
        let changed = Arc::new(Notify::new());
        let slots = config
            .max_concurrency
            .filter(|&n| n > 0)
            .map(|n| Slots::new(to_usize(n), Arc::clone(&changed)));
        Self {
            endpoint: endpoint.to_owned(),
            config: *config,
            rates: RwLock::new(Arc::new(Rates::share(config, 1, false))),
            slots,
            waiting: AtomicUsize::new(0),
            changed,
        }
    }

    /// Makes every budget its `1 / replicas` share (floor, at least 1). The new rate
    /// budgets start drained, so a change never grants a burst on top of what the old
    /// ones admitted in the same minute. Callers serialize calls.
    pub fn set_replicas(&self, replicas: u32) {
        let replicas = replicas.max(1);
        *self.rates.write() = Arc::new(Rates::share(&self.config, replicas, true));
        if let (Some(slots), Some(n)) = (&self.slots, self.config.max_concurrency) {
            slots.resize(to_usize(share(n, replicas)));
        }
    }

    /// This process's share of the requests-per-minute limit; `None` when unlimited.
    pub fn requests_share(&self, replicas: u32) -> Option<u32> {
        self.config
            .requests_per_minute
            .filter(|&n| n > 0)
            .map(|n| share(n, replicas))
    }

    fn rates(&self) -> Arc<Rates> {
        Arc::clone(&self.rates.read())
    }

    /// Woken when budget may have become free for a batch line.
    pub fn changed(&self) -> &Notify {
        &self.changed
    }

    /// Waits for a concurrency slot, a request and `tokens` tokens, or says which budget
    /// cannot be had before `deadline`.
    pub async fn acquire(&self, tokens: u32, deadline: Instant) -> Result<Budget, NoBudget> {
        let start = Instant::now();
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(self);
        let result = self.acquire_all(tokens, deadline).await;
        drop(waiting);
        let waited = start.elapsed();
        if !waited.is_zero() {
            metrics::rate_limit_wait(&self.endpoint, waited);
        }
        result
    }

    async fn acquire_all(&self, tokens: u32, deadline: Instant) -> Result<Budget, NoBudget> {
        let slot = match &self.slots {
            None => None,
            Some(slots) => Some(slots.acquire(deadline).await?),
        };
        let charged_tokens = self.take(Kind::Tokens, tokens, deadline).await?;
        self.take(Kind::Requests, 1, deadline).await?;
        Ok(Budget {
            _slot: slot,
            charged_tokens,
        })
    }

    /// Takes `n` cells (capped at the burst) of one budget, sleeping while it refills in
    /// time; returns what was charged (0 without that budget).
    async fn take(&self, kind: Kind, n: u32, deadline: Instant) -> Result<u32, NoBudget> {
        loop {
            let rates = self.rates();
            let Some(rate) = rates.get(kind) else {
                return Ok(0);
            };
            let n = capped(rate, n);
            let wait = match rate.try_take(n) {
                Ok(()) => return Ok(n.get()),
                // `n` is capped at the burst, so this cannot happen; refuse rather than spin.
                Err(Refused::Never) => Duration::MAX,
                Err(Refused::For(wait)) => wait,
            };
            let ready_at = Instant::now().checked_add(wait);
            match ready_at {
                Some(at) if at <= deadline => tokio::time::sleep_until(at).await,
                _ => return Err(NoBudget::Rate { wait }),
            }
        }
    }

    /// Whether a batch line could have budget now: no interactive request waiting, a free
    /// slot and neither rate budget known to be spent. Takes nothing.
    pub fn has_spare(&self) -> bool {
        self.waiting.load(Ordering::Acquire) == 0
            && self.slots.as_ref().map_or(true, |s| s.has_free())
            && self.rates().exhausted_until().is_none()
    }

    /// Budget for one batch line if it is free now and no interactive request waits.
    pub fn try_take(&self, tokens: u32) -> Result<Budget, Busy> {
        if self.waiting.load(Ordering::Acquire) > 0 {
            return Err(Busy::Interactive);
        }
        let rates = self.rates();
        if let Some(until) = rates.exhausted_until() {
            return Err(Busy::Until(until));
        }
        let slot = match &self.slots {
            None => None,
            Some(slots) => Some(slots.try_acquire().ok_or(Busy::Slots)?),
        };
        // Requests first: a refusal of tokens after this wastes one request cell, and a
        // refusal of the request would waste a whole token estimate.
        if let Some(rate) = &rates.requests {
            rate.try_take(NonZeroU32::MIN).map_err(busy)?;
        }
        let charged_tokens = match &rates.tokens {
            None => 0,
            Some(rate) => {
                let n = capped(rate, tokens);
                rate.try_take(n).map_err(busy)?;
                n.get()
            }
        };
        Ok(Budget {
            _slot: slot,
            charged_tokens,
        })
    }

    /// Charges tokens used beyond the up-front estimate, as far as the budget has them
    /// now; governor cannot go into debt, so a large overrun is charged only in part.
    pub fn settle(&self, charged: u32, used: u32) {
        let rates = self.rates();
        let Some(rate) = &rates.tokens else {
            return;
        };
        let extra = used.saturating_sub(charged).min(rate.burst().get());
        if let Some(n) = NonZeroU32::new(extra) {
            let _ = rate.try_take(n);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Requests,
    Tokens,
}

impl Rates {
    fn share(config: &LimitsConfig, replicas: u32, drained: bool) -> Self {
        let of = |limit: Option<u32>| {
            limit
                .filter(|&n| n > 0)
                .and_then(|n| NonZeroU32::new(share(n, replicas)))
        };
        let start = |rate: Rate| if drained { rate.drained() } else { rate };
        Self {
            requests: of(config.requests_per_minute).map(|n| start(Rate::requests(n))),
            tokens: of(config.tokens_per_minute).map(|n| start(Rate::tokens(n))),
        }
    }

    fn get(&self, kind: Kind) -> Option<&Rate> {
        match kind {
            Kind::Requests => self.requests.as_ref(),
            Kind::Tokens => self.tokens.as_ref(),
        }
    }

    /// The later instant at which a spent budget frees up, if one is spent.
    fn exhausted_until(&self) -> Option<Instant> {
        let requests = self.requests.as_ref().and_then(Rate::exhausted_until);
        let tokens = self.tokens.as_ref().and_then(Rate::exhausted_until);
        requests.max(tokens)
    }
}

/// One process's share of a cluster-wide limit: floor, at least 1.
fn share(limit: u32, replicas: u32) -> u32 {
    (limit / replicas.max(1)).max(1)
}

fn capped(rate: &Rate, n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.clamp(1, rate.burst().get())).unwrap_or(NonZeroU32::MIN)
}

fn busy(refused: Refused) -> Busy {
    match refused {
        Refused::For(wait) => Busy::Until(Instant::now() + wait),
        // Requests are capped at the burst, so this cannot happen; a minute is safe.
        Refused::Never => Busy::Until(Instant::now() + Duration::from_secs(60)),
    }
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(tokio::sync::Semaphore::MAX_PERMITS)
}

/// Tokens a request may use, estimated before sending it: about 4 characters per token
/// plus a few per message, and the completion's `max_tokens` if set (as OpenAI counts).
pub fn estimate_tokens(req: &crate::provider::LlmRequest) -> u32 {
    let prompt = req.prompt_chars() / 4 + 4 * req.messages().len();
    u32::try_from(prompt)
        .unwrap_or(u32::MAX)
        .saturating_add(req.max_output_tokens().unwrap_or(0))
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

    /// The most requests admitted in any 60 s window, given admission times in order.
    fn max_in_window(times: &[Instant]) -> usize {
        let mut first = 0;
        let mut most = 0;
        for (last, t) in times.iter().enumerate() {
            while t.duration_since(times[first]) >= Duration::from_secs(60) {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// Admission times of requests taken as fast as the budget allows for `run`.
    async fn saturate(l: &Limits, run: Duration) -> Vec<Instant> {
        let end = Instant::now() + run;
        let mut times = Vec::new();
        while l.acquire(0, end).await.is_ok() {
            times.push(Instant::now());
        }
        times
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
            let n = n as usize;
            assert!(most < n || n == 1, "rpm {n}: {most} in one window");
            assert!(
                most * 100 >= n * 95 || most + 1 == n,
                "rpm {n}: only {most} in one window"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_saturated_run_gets_97_percent_and_every_window_stays_below_n() {
        for n in [100, 2000, 6000] {
            let l = limits(Some(n), None, None);
            let times = saturate(&l, Duration::from_secs(600)).await;
            let most = max_in_window(&times);
            assert!(most < n as usize, "rpm {n}: {most} in one window");
            let per_minute = times.len() as f64 / 10.0;
            assert!(
                per_minute >= 0.97 * f64::from(n),
                "rpm {n}: {per_minute} a minute over 10 minutes"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_is_a_fraction_of_the_limit_and_starts_without_a_burst() {
        let l = limits(Some(120), Some(9000), Some(6));
        let before = saturate(&l, Duration::from_secs(30)).await.len();
        l.set_replicas(3);
        let times = saturate(&l, Duration::from_secs(300)).await;
        assert!(max_in_window(&times) < 40, "{}", max_in_window(&times));
        let first_minute = times
            .iter()
            .filter(|t| t.duration_since(times[0]) < Duration::from_secs(60))
            .count();
        assert!(
            before + first_minute <= 120,
            "{before} before the change, {first_minute} in the minute after"
        );
        assert!(times.len() >= 5 * 38, "{} in 5 minutes", times.len());
        let c = limits(None, None, Some(6));
        c.set_replicas(3);
        let slots: Vec<Budget> = std::iter::from_fn(|| c.try_take(0).ok()).collect();
        assert_eq!(slots.len(), 2, "concurrency share 6/3");
    }

    #[tokio::test(start_paused = true)]
    async fn batch_takes_nothing_while_an_interactive_request_waits() {
        let l = limits(Some(60), None, None);
        l.try_take(0).unwrap();
        let waiter = l.acquire(0, Instant::now() + Duration::from_secs(60));
        tokio::pin!(waiter);
        assert!(futures::poll!(&mut waiter).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!l.has_spare(), "budget is free, but someone waits for it");
        assert_eq!(l.try_take(0).unwrap_err(), Busy::Interactive);
        waiter.await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(l.has_spare());
        l.try_take(0).unwrap();
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
        let body = serde_json::json!({"messages": [{"role": "user", "content": "x".repeat(396)}], "max_tokens": 50});
        let serde_json::Value::Object(body) = body else {
            unreachable!()
        };
        let req =
            crate::provider::LlmRequest::new(crate::provider::Api::Chat, body).expect("valid");
        assert_eq!(estimate_tokens(&req), 100 + 4 + 50);
    }
}
