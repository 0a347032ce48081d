//! A compact, read-only view of every endpoint's state (circuit, in flight, recent
//! latency, rate headroom), small enough to ride on the membership heartbeat so that a
//! gateway without a router of its own can show it on the status page.
//!
//! Recent latency and call counts come from a window of the last minute's provider calls,
//! fed by [`super::metrics::upstream_latency`]. The window is per process and per endpoint
//! name: routers in one process (tests) share it; `up` and real replicas have one router.

use super::Router;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// How far back "recent" reaches: one minute, the unit of the rate limits.
const WINDOW: Duration = Duration::from_secs(60);
/// Most latency samples kept per endpoint; quantiles of the newest ones are enough.
const MAX_SAMPLES: usize = 512;
const SECOND: Duration = Duration::from_secs(1);

/// One endpoint as this router process sees it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointStatus {
    pub name: String,
    /// `closed`, `half_open` or `open`.
    pub circuit: String,
    pub in_flight: u32,
    /// Median duration of the provider calls in the last minute, ms; `None` without calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<u32>,
    /// This process's share of the requests-per-minute limit; `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Requests left in that share over the last minute (share minus calls made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<u32>,
}

impl Router {
    /// Every endpoint's state now, in configuration order.
    pub fn endpoint_status(&self) -> Vec<EndpointStatus> {
        let replicas = self.replicas();
        let now = Instant::now();
        self.endpoints
            .iter()
            .map(|e| {
                let recent = recent(&e.name, now);
                let rpm = e.limits.requests_share(replicas);
                EndpointStatus {
                    name: e.name.clone(),
                    circuit: e.circuit.state_name().to_owned(),
                    in_flight: u32::try_from(e.in_flight()).unwrap_or(u32::MAX),
                    p50_ms: recent.p50_ms,
                    p95_ms: recent.p95_ms,
                    rpm,
                    left: rpm.map(|n| n.saturating_sub(recent.calls)),
                }
            })
            .collect()
    }
}

/// The last minute of one endpoint's calls.
#[derive(Debug, Default)]
struct Window {
    /// Newest last, at most [`MAX_SAMPLES`].
    samples: VecDeque<(Instant, u32)>,
    /// Call counts per second (the bucket's start, its count), newest last, a minute's worth.
    seconds: VecDeque<(Instant, u32)>,
}

/// What the window says now.
#[derive(Debug, Default, PartialEq)]
struct Recent {
    p50_ms: Option<u32>,
    p95_ms: Option<u32>,
    calls: u32,
}

/// Written by every provider call, read by every heartbeat; each holds it briefly.
fn windows() -> &'static Mutex<HashMap<String, Window>> {
    static WINDOWS: OnceLock<Mutex<HashMap<String, Window>>> = OnceLock::new();
    WINDOWS.get_or_init(Default::default)
}

/// Notes one provider call to `endpoint` that took `elapsed`.
pub(crate) fn record_call(endpoint: &str, elapsed: Duration) {
    let now = Instant::now();
    let ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
    let mut windows = windows().lock();
    if !windows.contains_key(endpoint) {
        windows.insert(endpoint.to_owned(), Window::default());
    }
    let Some(window) = windows.get_mut(endpoint) else {
        return;
    };
    if window.samples.len() >= MAX_SAMPLES {
        window.samples.pop_front();
    }
    window.samples.push_back((now, ms));
    match window.seconds.back_mut() {
        Some((start, n)) if now.saturating_duration_since(*start) < SECOND => *n += 1,
        _ => window.seconds.push_back((now, 1)),
    }
    window.prune(now);
}

fn recent(endpoint: &str, now: Instant) -> Recent {
    let mut windows = windows().lock();
    let Some(window) = windows.get_mut(endpoint) else {
        return Recent::default();
    };
    window.prune(now);
    window.recent()
}

impl Window {
    fn prune(&mut self, now: Instant) {
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.samples.pop_front();
        }
        while self
            .seconds
            .front()
            .is_some_and(|(start, _)| now.saturating_duration_since(*start) >= WINDOW)
        {
            self.seconds.pop_front();
        }
    }

    fn recent(&self) -> Recent {
        let mut ms: Vec<u32> = self.samples.iter().map(|(_, ms)| *ms).collect();
        ms.sort_unstable();
        Recent {
            p50_ms: quantile(&ms, 0.50),
            p95_ms: quantile(&ms, 0.95),
            calls: self.seconds.iter().map(|(_, n)| *n).sum(),
        }
    }
}

/// The nearest-rank quantile `q` of sorted `values`.
fn quantile(values: &[u32], q: f64) -> Option<u32> {
    let rank = (q * values.len() as f64).ceil() as usize;
    values.get(rank.clamp(1, values.len().max(1)) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), Some(50));
        assert_eq!(quantile(&values, 0.95), Some(95));
        assert_eq!(quantile(&[7], 0.95), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_forgets_calls_older_than_a_minute() {
        let name = "status-window-test";
        for ms in 1..=10 {
            record_call(name, Duration::from_millis(ms * 10));
        }
        let now = Instant::now();
        assert_eq!(
            recent(name, now),
            Recent {
                p50_ms: Some(50),
                p95_ms: Some(100),
                calls: 10
            }
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        record_call(name, Duration::from_millis(500));
        assert_eq!(recent(name, Instant::now()).calls, 11);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(
            recent(name, Instant::now()),
            Recent {
                p50_ms: Some(500),
                p95_ms: Some(500),
                calls: 1
            }
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(recent(name, Instant::now()), Recent::default());
    }
}
