//! Batch jobs on the broker: where lines, results and dead letters wait, the channel of
//! job histories, and the tags a line carries (copied onto its result).

/// The events-store channel holding every job's history.
pub const JOBS_CHANNEL: &str = "llm-router.batch.jobs";

/// Tags on a line message (and copied onto its result).
pub mod tag {
    pub const JOB: &str = "job";
    pub const CUSTOM_ID: &str = "custom-id";
    pub const LINE: &str = "line";
    /// Provider attempts that failed before this copy of the line was sent.
    pub const ATTEMPTS: &str = "attempts";
    pub const MAX_ATTEMPTS: &str = "max-attempts";
    /// On results: `ok`, `error` or `cancelled`.
    pub const OUTCOME: &str = "outcome";
    /// On dead-lettered lines: why the last attempt failed.
    pub const ERROR: &str = "error";
}

/// The queue a route's batch lines wait in; workers pull from it with spare capacity.
pub fn line_queue(route: &str) -> String {
    format!("llm-router.batch.{route}")
}

/// The queue a job's results wait in until collected.
pub fn results_queue(job: &str) -> String {
    format!("llm-router.batch.{job}.results")
}

/// Where a job's lines go after their last allowed attempt.
pub fn dead_letter_queue(job: &str) -> String {
    format!("llm-router.batch.{job}.dlq")
}
