//! Circuit breaker per endpoint: closed → open after N consecutive failures → half-open
//! after the cool-down, where one probe decides between closed and open again.

use super::metrics;
use crate::config::CircuitBreakerConfig;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The breaker of one endpoint, shared by every request that goes there.
#[derive(Debug)]
pub struct Circuit {
    endpoint: String,
    config: CircuitBreakerConfig,
    /// Every request reads and writes it around its attempt; held only for a transition.
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `probing`: one request is testing the endpoint; the others are still kept away.
    HalfOpen {
        probing: bool,
    },
}

/// Why the breaker kept a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Open; a probe will be let through after this long.
    Open { retry_in: Duration },
    /// Half-open and another request is the probe.
    Probing,
}

/// What one attempt showed about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It answered (even if the answer was "your request is wrong").
    Healthy,
    /// Connect error, timeout, 5xx, 429, 401/403, unreadable answer.
    Failing,
    /// Nothing learned (the attempt was cut short by the caller's deadline).
    Unknown,
}

/// Leave to make one attempt; report what happened with [`Admission::settle`]. Dropped
/// without a verdict (the request was cancelled), it counts as [`Verdict::Unknown`], so a
/// cancelled probe cannot leave the breaker half-open forever.
#[derive(Debug)]
pub struct Admission {
    /// Owned, so that a batch reservation can carry its admission across tasks.
    circuit: Arc<Circuit>,
    probe: bool,
    settled: bool,
}

/// The gauge value of each state (`llm_router_circuit_state`), in order of severity.
pub const CLOSED: f64 = 0.0;
pub const HALF_OPEN: f64 = 1.0;
pub const OPEN: f64 = 2.0;

impl Circuit {
    pub fn new(endpoint: &str, config: CircuitBreakerConfig) -> Self {
        metrics::circuit_state(endpoint, CLOSED);
        Self {
            endpoint: endpoint.to_owned(),
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Lets an attempt through, or says why not.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, Rejected> {
        let mut state = self.state.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(Rejected::Open {
                        retry_in: until - now,
                    });
                }
                self.set(&mut state, State::HalfOpen { probing: true });
                true
            }
            State::HalfOpen { probing: true } => return Err(Rejected::Probing),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
        };
        Ok(Admission {
            circuit: Arc::clone(self),
            probe,
            settled: false,
        })
    }

    /// Whether a request would be let through now (for choosing among targets).
    pub fn is_open(&self) -> bool {
        match *self.state.lock() {
            State::Closed { .. } | State::HalfOpen { probing: false } => false,
            State::Open { until } => Instant::now() < until,
            State::HalfOpen { probing: true } => true,
        }
    }

    /// The state's name for the status page: `closed`, `half_open` or `open`. An open
    /// circuit whose cool-down has passed is `half_open`: the next request probes.
    pub fn state_name(&self) -> &'static str {
        match *self.state.lock() {
            State::Closed { .. } => "closed",
            State::Open { until } if Instant::now() < until => "open",
            State::Open { .. } | State::HalfOpen { .. } => "half_open",
        }
    }

    fn record(&self, probe: bool, verdict: Verdict) {
        let mut state = self.state.lock();
        let next = match (verdict, *state) {
            (Verdict::Healthy, _) => State::Closed { failures: 0 },
            (Verdict::Failing, State::Closed { failures }) => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    self.open_until()
                } else {
                    State::Closed { failures }
                }
            }
            (Verdict::Failing, State::HalfOpen { .. }) => self.open_until(),
            (Verdict::Failing, open @ State::Open { .. }) => open,
            (Verdict::Unknown, State::HalfOpen { .. }) if probe => {
                State::HalfOpen { probing: false }
            }
            (Verdict::Unknown, unchanged) => unchanged,
        };
        self.set(&mut state, next);
    }

    fn open_until(&self) -> State {
        State::Open {
            until: Instant::now() + self.config.cool_down,
        }
    }

    /// Moves to `next`, logging and publishing changes of kind (not failure counts).
    fn set(&self, state: &mut State, next: State) {
        let before = gauge(*state);
        *state = next;
        let after = gauge(next);
        if before == after {
            return;
        }
        metrics::circuit_state(&self.endpoint, after);
        match next {
            State::Open { .. } => tracing::warn!(
                endpoint = %self.endpoint,
                cool_down = ?self.config.cool_down,
                "circuit open: skipping the endpoint for the cool-down"
            ),
            State::HalfOpen { .. } => {
                tracing::info!(endpoint = %self.endpoint, "circuit half-open: probing")
            }
            State::Closed { .. } => tracing::info!(endpoint = %self.endpoint, "circuit closed"),
        }
    }
}

fn gauge(state: State) -> f64 {
    match state {
        State::Closed { .. } => CLOSED,
        State::HalfOpen { .. } => HALF_OPEN,
        State::Open { .. } => OPEN,
    }
}

impl Admission {
    /// Reports the attempt's outcome.
    pub fn settle(mut self, verdict: Verdict) {
        self.settled = true;
        self.circuit.record(self.probe, verdict);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.settled {
            self.circuit.record(self.probe, Verdict::Unknown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit(threshold: u32) -> Arc<Circuit> {
        Arc::new(Circuit::new(
            "test",
            CircuitBreakerConfig {
                failure_threshold: threshold,
                cool_down: Duration::from_secs(10),
            },
        ))
    }

    fn fail(c: &Arc<Circuit>) {
        c.admit().unwrap().settle(Verdict::Failing);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_consecutive_failures() {
        let c = circuit(3);
        fail(&c);
        fail(&c);
        c.admit().unwrap().settle(Verdict::Healthy);
        fail(&c);
        fail(&c);
        assert!(c.admit().is_ok(), "a success resets the count");
        fail(&c);
        assert_eq!(
            c.admit().unwrap_err(),
            Rejected::Open {
                retry_in: Duration::from_secs(10)
            }
        );
        assert!(c.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_and_closes_on_success() {
        let c = circuit(1);
        fail(&c);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            c.admit().unwrap_err(),
            Rejected::Open {
                retry_in: Duration::from_secs(6)
            }
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        let probe = c.admit().unwrap();
        assert_eq!(c.admit().unwrap_err(), Rejected::Probing);
        probe.settle(Verdict::Healthy);
        assert!(!c.is_open());
        c.admit().unwrap().settle(Verdict::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_for_a_full_cool_down() {
        let c = circuit(1);
        fail(&c);
        tokio::time::advance(Duration::from_secs(10)).await;
        fail(&c);
        assert_eq!(
            c.admit().unwrap_err(),
            Rejected::Open {
                retry_in: Duration::from_secs(10)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_hands_the_probe_to_the_next_request() {
        let c = circuit(1);
        fail(&c);
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(c.admit().unwrap());
        let probe = c.admit().unwrap();
        assert_eq!(c.admit().unwrap_err(), Rejected::Probing);
        probe.settle(Verdict::Unknown);
        c.admit().unwrap().settle(Verdict::Healthy);
        assert!(!c.is_open());
    }
}
