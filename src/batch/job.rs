//! What a batch job is on the broker: its queues, the tags each line carries, and the
//! job's history on the jobs channel.
//!
//! Why the history lives in an events-store channel: any machine that reaches the broker
//! can replay it (`batch status` from a laptop, a worker learning that a job was
//! cancelled), and it survives broker restarts like the queues do. Nothing about a job
//! is kept in a local file.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub use crate::protocol::batch::{
    dead_letter_queue, is_job_id, line_queue, new_job_id, results_queue, tag, JobEvent,
    JOBS_CHANNEL,
};

/// A job as its history tells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub route: String,
    pub routes: BTreeMap<String, u64>,
    pub total: u64,
    pub created_at: i64,
    pub input: String,
    pub max_attempts: u32,
    pub cancelled_at: Option<i64>,
    /// Latest collected counts.
    pub collected_ok: u64,
    pub collected_failed: u64,
}

impl JobRecord {
    pub fn collected(&self) -> u64 {
        // Counts come from the broker, which anyone may write to.
        self.collected_ok.saturating_add(self.collected_failed)
    }

    /// Cancelled, or every line collected: nothing of it moves any more.
    pub fn is_over(&self) -> bool {
        self.cancelled_at.is_some() || (self.total > 0 && self.collected() >= self.total)
    }
}

/// Folds job events into records, in the order they were stored.
#[derive(Debug, Default, Clone)]
pub struct Jobs {
    jobs: HashMap<String, JobRecord>,
}

impl Jobs {
    pub fn apply(&mut self, event: JobEvent) {
        match event {
            JobEvent::Submitted {
                job,
                route,
                routes,
                total,
                created_at,
                input,
                max_attempts,
            } => {
                let record = self.jobs.entry(job.clone()).or_default();
                *record = JobRecord {
                    id: job,
                    route,
                    routes,
                    total,
                    created_at,
                    input,
                    max_attempts,
                    ..std::mem::take(record)
                };
            }
            JobEvent::Cancelled { job, at } => {
                let record = self.jobs.entry(job.clone()).or_default();
                record.id = job;
                record.cancelled_at.get_or_insert(at);
            }
            JobEvent::Collected {
                job, ok, failed, ..
            } => {
                let record = self.jobs.entry(job.clone()).or_default();
                record.id = job;
                record.collected_ok = record.collected_ok.max(ok);
                record.collected_failed = record.collected_failed.max(failed);
            }
            JobEvent::Sync { .. } => {}
        }
    }

    pub fn get(&self, job: &str) -> Option<&JobRecord> {
        self.jobs
            .get(job)
            .filter(|r| r.total > 0 || r.cancelled_at.is_some())
    }

    /// Forgets `job` (a bounded reader making room).
    pub fn remove(&mut self, job: &str) {
        self.jobs.remove(job);
    }

    pub fn is_cancelled(&self, job: &str) -> bool {
        self.jobs.get(job).is_some_and(|r| r.cancelled_at.is_some())
    }

    /// Every submitted job, oldest first.
    pub fn all(&self) -> Vec<&JobRecord> {
        let mut all: Vec<_> = self.jobs.values().filter(|r| r.total > 0).collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        all
    }
}

pub fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        let id = new_job_id();
        assert!(is_job_id(&id), "{id}");
        assert!(!is_job_id("batch_../x"));
        assert!(!is_job_id("abc"));
        assert_eq!(results_queue("batch_1"), "llm-router.batch.batch_1.results");
        assert_eq!(line_queue("openai"), "llm-router.batch.openai");
    }

    #[test]
    fn history_folds_into_records() {
        let mut jobs = Jobs::default();
        jobs.apply(JobEvent::Submitted {
            job: "j".into(),
            route: "r".into(),
            routes: BTreeMap::from([("r".into(), 3)]),
            total: 3,
            created_at: 1,
            input: "f.jsonl".into(),
            max_attempts: 5,
        });
        jobs.apply(JobEvent::Collected {
            job: "j".into(),
            ok: 2,
            failed: 0,
            at: 2,
        });
        // An older collector's smaller counts never move progress backwards.
        jobs.apply(JobEvent::Collected {
            job: "j".into(),
            ok: 1,
            failed: 1,
            at: 3,
        });
        jobs.apply(JobEvent::Cancelled {
            job: "j".into(),
            at: 4,
        });
        let j = jobs.get("j").cloned().unwrap_or_default();
        assert_eq!((j.total, j.collected_ok, j.collected_failed), (3, 2, 1));
        assert_eq!(j.cancelled_at, Some(4));
        assert!(jobs.is_cancelled("j"));
        assert!(jobs.get("other").is_none());
        let event: JobEvent = serde_json::from_str(r#"{"type":"cancelled","job":"k","at":9}"#)
            .unwrap_or(JobEvent::Cancelled {
                job: String::new(),
                at: 0,
            });
        assert_eq!(event.job(), "k");
    }
}
