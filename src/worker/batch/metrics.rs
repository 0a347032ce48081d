//! The batch consumer's series. Labels: `route` is a configured route name; `outcome` one
//! of [`Outcome`]'s names; `batch_job` a job id. A job's series go when the job ends
//! (all its lines collected, or cancelled: [`job_ended`]) and at most [`MAX_JOBS`] jobs
//! have series at once. Not `job`: Prometheus reserves that for the scrape job.

use crate::metrics::live::{Kind, LiveFamily};
use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use std::sync::Once;

/// Lines finished or sent back, by `route` and `outcome`.
pub const ITEMS: &str = "llm_router_batch_items_total";
/// Deliveries of lines that had been delivered before, by `route`.
pub const REDELIVERIES: &str = "llm_router_batch_redeliveries_total";
/// Lines moved to their job's dead-letter queue, by `route`.
pub const DEAD_LETTERED: &str = "llm_router_batch_dead_lettered_total";
/// Lines waiting in a route's batch queue, by `route`.
pub const QUEUE_DEPTH: &str = "llm_router_batch_queue_depth";
/// Age of the oldest waiting line, by `route` (0 when the queue is empty).
pub const OLDEST_AGE: &str = "llm_router_batch_oldest_age_seconds";
/// Lines a worker is working on now, by `route`.
pub const IN_FLIGHT: &str = "llm_router_batch_in_flight";
/// Lines in a job, by `batch_job` (every worker reports the same value: aggregate with max).
pub const JOB_LINES: &str = "llm_router_batch_job_lines";
/// Lines of a job this worker finished (ok, failed or cancelled), by `batch_job`: sum over
/// workers, divided by the job's lines, is the job's progress.
pub const JOB_DONE: &str = "llm_router_batch_job_done_total";

/// Most jobs with progress series at once; beyond it the least recently active goes.
pub const MAX_JOBS: usize = 1000;

static JOB_LINES_SERIES: LiveFamily = LiveFamily::new(
    JOB_LINES,
    "Lines in a batch job, by job.",
    Kind::Gauge,
    "batch_job",
    MAX_JOBS,
);
static JOB_DONE_SERIES: LiveFamily = LiveFamily::new(
    JOB_DONE,
    "Lines of a batch job finished by this worker, by job.",
    Kind::Counter,
    "batch_job",
    MAX_JOBS,
);

/// Removes a finished job's series.
pub fn job_ended(job: &str) {
    JOB_LINES_SERIES.remove(job);
    JOB_DONE_SERIES.remove(job);
}

/// Jobs with series now (for tests and the soak benchmark).
pub fn jobs_with_series() -> usize {
    JOB_LINES_SERIES.len().max(JOB_DONE_SERIES.len())
}

/// What became of one delivery of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered; the result is stored.
    Ok,
    /// The provider refused the line itself (400/404/422) or it could not be read; an
    /// error result is stored.
    Failed,
    /// A retryable failure; the line went back to its queue with a delay.
    Retried,
    /// The last allowed attempt failed; the line is in the job's dead-letter queue.
    DeadLettered,
    /// The job was cancelled; the line was dropped.
    Cancelled,
    /// No capacity came free in time; the line went back untried.
    Requeued,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Cancelled => "cancelled",
            Outcome::Requeued => "requeued",
        }
    }

    /// Whether the line is finished for its job.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Outcome::Ok | Outcome::Failed | Outcome::DeadLettered | Outcome::Cancelled
        )
    }
}

pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        crate::metrics::handle();
        describe_counter!(ITEMS, "Batch line deliveries by route and outcome (ok, failed, retried, dead_lettered, cancelled, requeued).");
        describe_counter!(REDELIVERIES, "Batch lines delivered again after an earlier delivery, by route.");
        describe_counter!(DEAD_LETTERED, "Batch lines moved to their job's dead-letter queue, by route.");
        describe_gauge!(QUEUE_DEPTH, "Batch lines waiting in a route's queue, by route.");
        describe_gauge!(OLDEST_AGE, Unit::Seconds, "Age of the oldest batch line waiting in a route's queue, by route.");
        describe_gauge!(IN_FLIGHT, "Batch lines a worker is working on now, by route.");
    });
}

pub fn item(route: &str, job: &str, outcome: Outcome) {
    counter!(ITEMS, "route" => route.to_owned(), "outcome" => outcome.name()).increment(1);
    if outcome == Outcome::DeadLettered {
        counter!(DEAD_LETTERED, "route" => route.to_owned()).increment(1);
    }
    if outcome.is_final() && !job.is_empty() {
        JOB_DONE_SERIES.add(job, 1.0);
    }
}

pub fn redelivery(route: &str) {
    counter!(REDELIVERIES, "route" => route.to_owned()).increment(1);
}

pub fn queue(route: &str, depth: i64, oldest_age_seconds: f64) {
    gauge!(QUEUE_DEPTH, "route" => route.to_owned()).set(depth as f64);
    gauge!(OLDEST_AGE, "route" => route.to_owned()).set(oldest_age_seconds);
}

pub fn job_lines(job: &str, total: u64) {
    JOB_LINES_SERIES.set(job, total as f64);
}

/// Moves the in-flight gauge of `route` up now and down when dropped.
pub struct InFlight(String);

impl InFlight {
    pub fn start(route: &str) -> Self {
        gauge!(IN_FLIGHT, "route" => route.to_owned()).increment(1.0);
        Self(route.to_owned())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT, "route" => self.0.clone()).decrement(1.0);
    }
}
