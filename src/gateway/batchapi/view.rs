//! The OpenAI batch object, from the batch's record and its job's history.

use super::files;
use super::record::BatchRecord;
use crate::batch::job::JobRecord;
use serde_json::{json, Value};

/// OpenAI's batch status, read from the two histories.
pub fn status(batch: &BatchRecord, job: Option<&JobRecord>) -> &'static str {
    if batch.failed.is_some() {
        return "failed";
    }
    let cancelled = job.is_some_and(|j| j.cancelled_at.is_some());
    match (job, batch.finished, cancelled) {
        (_, Some(_), true) => "cancelled",
        (_, Some(_), false) => "completed",
        (None, None, _) => "validating",
        (Some(_), None, true) => "cancelling",
        (Some(j), None, false) if j.total > 0 && j.collected() >= j.total => "finalizing",
        (Some(_), None, false) => "in_progress",
    }
}

/// Whether a collector still has work on this batch.
pub fn is_open(batch: &BatchRecord, job: Option<&JobRecord>) -> bool {
    batch.failed.is_none() && batch.finished.is_none() && job.is_some_and(|j| j.total > 0)
}

/// The batch object.
pub fn object(batch: &BatchRecord, job: Option<&JobRecord>) -> Value {
    let status = status(batch, job);
    let total = job.map_or(0, |j| j.total);
    let (ok, failed) = match (batch.finished, job) {
        (Some(f), _) => (f.ok, f.failed),
        (None, Some(j)) => (j.collected_ok, j.collected_failed),
        (None, None) => (0, 0),
    };
    let finished_at = batch.finished.map(|f| f.at);
    let cancelled_at = job.and_then(|j| j.cancelled_at);
    let output = batch
        .finished
        .filter(|f| f.ok > 0)
        .map(|_| files::output_file_id(&batch.id));
    let errors_file = batch
        .finished
        .filter(|f| f.failed > 0)
        .map(|_| files::error_file_id(&batch.id));
    let errors = batch
        .failed
        .as_ref()
        .map(|(_, data)| json!({"object": "list", "data": data}));
    json!({
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": errors,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": status,
        "output_file_id": output,
        "error_file_id": errors_file,
        "created_at": batch.created_at,
        "in_progress_at": job.map(|_| batch.created_at),
        "expires_at": batch.created_at.saturating_add(24 * 3600),
        "finalizing_at": finished_at,
        "completed_at": finished_at.filter(|_| status == "completed"),
        "failed_at": batch.failed.as_ref().map(|(at, _)| *at),
        "expired_at": null,
        "cancelling_at": cancelled_at,
        "cancelled_at": finished_at.filter(|_| status == "cancelled"),
        "request_counts": {"total": total, "completed": ok, "failed": failed},
        "metadata": batch.metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::batchapi::record::Finished;

    fn job(total: u64, ok: u64, failed: u64) -> JobRecord {
        JobRecord {
            id: "batch_1".into(),
            total,
            collected_ok: ok,
            collected_failed: failed,
            ..JobRecord::default()
        }
    }

    #[test]
    fn status_follows_the_histories() {
        let mut b = BatchRecord {
            id: "batch_1".into(),
            ..BatchRecord::default()
        };
        assert_eq!(status(&b, None), "validating");
        assert_eq!(status(&b, Some(&job(3, 1, 0))), "in_progress");
        assert_eq!(status(&b, Some(&job(3, 2, 1))), "finalizing");
        let mut cancelled = job(3, 1, 0);
        cancelled.cancelled_at = Some(9);
        assert_eq!(status(&b, Some(&cancelled)), "cancelling");
        b.finished = Some(Finished {
            at: 10,
            ok: 1,
            failed: 2,
        });
        assert_eq!(status(&b, Some(&cancelled)), "cancelled");
        assert_eq!(status(&b, Some(&job(3, 1, 2))), "completed");
        let o = object(&b, Some(&job(3, 1, 2)));
        assert_eq!(o["request_counts"]["failed"], 2);
        assert_eq!(o["output_file_id"], files::output_file_id("batch_1"));
        assert_eq!(o["error_file_id"], files::error_file_id("batch_1"));
        assert_eq!(o["completed_at"], 10);
        assert!(o["cancelled_at"].is_null());
        b.failed = Some((4, Vec::new()));
        assert_eq!(status(&b, None), "failed");
        assert!(!is_open(&b, Some(&job(3, 0, 0))));
    }
}
