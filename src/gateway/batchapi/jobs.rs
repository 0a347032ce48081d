//! The jobs history as the Batch API keeps it: [`Jobs`], bounded, and with records no
//! real job has (ids we never make, impossible line counts) logged and skipped.

use super::recent::Recent;
use super::record::KEEP_ALL;
use crate::batch::job::{self, JobEvent, JobRecord, Jobs, JOBS_CHANNEL};
use crate::kubemq::EventReceive;

/// Most jobs kept: twice the batches kept, as the channel also holds `llm-router batch`
/// jobs; the oldest first seen is forgotten first.
pub const KEEP_JOBS: usize = 2 * KEEP_ALL;
/// More lines than any job has: a file within the size limit cannot hold them, and a
/// collector would wait for them for ever.
pub const MAX_TOTAL: u64 = 10_000_000;

/// [`Jobs`], keeping the [`KEEP_JOBS`] newest.
#[derive(Debug, Clone)]
pub struct BatchJobs {
    jobs: Jobs,
    /// Job ids in the order first seen.
    seen: Recent<()>,
}

impl Default for BatchJobs {
    fn default() -> Self {
        Self {
            jobs: Jobs::default(),
            seen: Recent::new(KEEP_JOBS),
        }
    }
}

impl BatchJobs {
    pub fn apply(&mut self, event: JobEvent) {
        if let JobEvent::Submitted { total, .. } = &event {
            if *total > MAX_TOTAL {
                tracing::warn!(job = %event.job(), total, "ignoring a job record on {JOBS_CHANNEL} with more lines than any file holds");
                return;
            }
        }
        if matches!(event, JobEvent::Sync { .. }) {
            return;
        }
        let id = event.job();
        if !job::is_job_id(id) {
            tracing::warn!(
                "ignoring a job record on {JOBS_CHANNEL} whose id this gateway never makes"
            );
            return;
        }
        if !self.seen.contains(id) {
            if let Some((oldest, ())) = self.seen.insert(id.to_owned(), ()) {
                self.jobs.remove(&oldest);
            }
        }
        self.jobs.apply(event);
    }

    pub fn get(&self, id: &str) -> Option<&JobRecord> {
        self.jobs.get(id)
    }
}

impl super::follow::Fold for BatchJobs {
    fn fold(&mut self, event: &EventReceive) {
        match serde_json::from_slice::<JobEvent>(&event.body) {
            Ok(e) => self.apply(e),
            Err(e) => tracing::warn!("ignoring an unreadable record on {JOBS_CHANNEL}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn submitted(id: &str, total: u64) -> JobEvent {
        JobEvent::Submitted {
            job: id.into(),
            route: "r".into(),
            routes: BTreeMap::new(),
            total,
            created_at: 1,
            input: "f".into(),
            max_attempts: 1,
        }
    }

    #[test]
    fn impossible_jobs_are_skipped_and_counts_saturate() {
        let id = job::new_job_id();
        let mut jobs = BatchJobs::default();
        jobs.apply(submitted(&id, MAX_TOTAL + 1));
        jobs.apply(submitted("../x", 3));
        assert!(jobs.get(&id).is_none() && jobs.get("../x").is_none());
        jobs.apply(submitted(&id, 3));
        jobs.apply(JobEvent::Collected {
            job: id.clone(),
            ok: u64::MAX,
            failed: u64::MAX,
            at: 1,
        });
        assert_eq!(jobs.get(&id).map(JobRecord::collected), Some(u64::MAX));
    }
}
