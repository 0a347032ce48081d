//! Counters of what the sim answered, for tests and benchmarks ("the endpoint sent 0 429s").

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counters, also served at `GET /stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SimStats {
    /// Chat requests received, whatever became of them.
    pub requests: u64,
    /// Answered with a completion.
    pub ok: u64,
    /// Answered 429, by the requests-per-minute limit or by injection.
    pub rate_limited: u64,
    /// Answered with an injected error status.
    pub errors: u64,
    /// Refused for the request's own fault: bad key (401) or bad body (400).
    pub rejected: u64,
    /// Never answered.
    pub hangs: u64,
    /// Connection reset without an answer.
    pub resets: u64,
    /// Answers streamed (`stream: true`), counted when the stream starts.
    pub streams: u64,
    /// Streams cut on purpose by a mid-stream error.
    pub mid_stream_errors: u64,
    /// Streams the client went away from before the end (its connection closed).
    pub streams_cancelled: u64,
}

/// Relaxed atomics: each counter is independent and read only for reporting.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub rate_limited: AtomicU64,
    pub errors: AtomicU64,
    pub rejected: AtomicU64,
    pub hangs: AtomicU64,
    pub resets: AtomicU64,
    pub streams: AtomicU64,
    pub mid_stream_errors: AtomicU64,
    pub streams_cancelled: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            requests: get(&self.requests),
            ok: get(&self.ok),
            rate_limited: get(&self.rate_limited),
            errors: get(&self.errors),
            rejected: get(&self.rejected),
            hangs: get(&self.hangs),
            resets: get(&self.resets),
            streams: get(&self.streams),
            mid_stream_errors: get(&self.mid_stream_errors),
            streams_cancelled: get(&self.streams_cancelled),
        }
    }
}
