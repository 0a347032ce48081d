//! Batch jobs on the broker: where lines, results and dead letters wait, the channel of
//! job histories and its events, the tags a line carries (copied onto its result), and
//! the result line, in OpenAI's Batch output shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

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

/// A fresh job id, in OpenAI's style.
pub fn new_job_id() -> String {
    format!("batch_{}", uuid::Uuid::new_v4().simple())
}

/// Whether `id` looks like a job id we made (so it is safe inside channel names).
pub fn is_job_id(id: &str) -> bool {
    id.strip_prefix("batch_")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One entry of a job's history on [`JOBS_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// Every line is queued.
    Submitted {
        job: String,
        /// The job's route; lines may name others.
        route: String,
        /// Lines per route.
        routes: BTreeMap<String, u64>,
        total: u64,
        /// Unix seconds.
        created_at: i64,
        /// The file's name as given, for people reading the status.
        input: String,
        max_attempts: u32,
    },
    /// Queued lines are to be dropped; finished ones are kept.
    Cancelled { job: String, at: i64 },
    /// A collector wrote these counts so far (cumulative, deduplicated; lines dropped by
    /// a cancel count as failed, since they are in the error file).
    Collected {
        job: String,
        ok: u64,
        failed: u64,
        at: i64,
    },
    /// A reader's marker: everything stored before it has been read once it arrives.
    Sync { id: String },
}

impl JobEvent {
    pub fn job(&self) -> &str {
        match self {
            JobEvent::Submitted { job, .. }
            | JobEvent::Cancelled { job, .. }
            | JobEvent::Collected { job, .. } => job,
            JobEvent::Sync { .. } => "",
        }
    }
}

/// One result line, in OpenAI's Batch output shape. Successes go to the output file,
/// failures (HTTP or not) to the error file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputLine {
    /// `batch_req_` and 32 hex digits, new for every line.
    pub id: String,
    pub custom_id: String,
    /// The HTTP answer, when there was one (also for 4xx/5xx).
    pub response: Option<LineResponse>,
    /// Set when the request never got an HTTP answer.
    pub error: Option<LineFailure>,
}

/// The HTTP answer to one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineResponse {
    pub status_code: u16,
    pub request_id: String,
    /// A chat completion, or `{"error": {"message", "type", "code"}}` for a failure.
    pub body: Value,
}

/// Why a line got no HTTP answer at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFailure {
    pub code: String,
    pub message: String,
}

impl OutputLine {
    /// A 200 answer carrying the chat completion `body`.
    pub fn ok(custom_id: impl Into<String>, request_id: impl Into<String>, body: Value) -> Self {
        Self::http_error(custom_id, request_id, 200, body)
    }

    /// An HTTP answer with `status`; named for its use, it takes any status.
    pub fn http_error(
        custom_id: impl Into<String>,
        request_id: impl Into<String>,
        status: u16,
        body: Value,
    ) -> Self {
        Self {
            id: new_id(),
            custom_id: custom_id.into(),
            response: Some(LineResponse {
                status_code: status,
                request_id: request_id.into(),
                body,
            }),
            error: None,
        }
    }

    /// A failure with no HTTP answer (e.g. dead-lettered, or the route is gone).
    pub fn failed(
        custom_id: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            id: new_id(),
            custom_id: custom_id.into(),
            response: None,
            error: Some(LineFailure {
                code: code.into(),
                message: message.into(),
            }),
        }
    }

    /// Whether the line belongs in the error file: no HTTP answer, or one that is not 2xx.
    pub fn is_error(&self) -> bool {
        let ok_answer = matches!(&self.response, Some(r) if (200..300).contains(&r.status_code));
        self.error.is_some() || !ok_answer
    }
}

fn new_id() -> String {
    format!("batch_req_{}", uuid::Uuid::new_v4().simple())
}
