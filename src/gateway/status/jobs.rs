//! Batch jobs for the page: their history followed on the jobs channel, and the progress
//! of unfinished ones read from their results and dead-letter queues about once a second.

use super::view::JobView;
use crate::batch::job::{self, JobEvent, JobRecord, Jobs};
use crate::kubemq::client::{Error as ClientError, EventSubscription};
use crate::kubemq::queues::QueueClient;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Most jobs on the page, newest first.
pub const MAX_JOBS: usize = 20;
/// How often unfinished jobs' queues are read.
const REFRESH: Duration = Duration::from_secs(1);

/// What the page knows of the jobs; written by the follow and refresh tasks.
#[derive(Debug, Default)]
pub struct JobBoard {
    history: RwLock<Jobs>,
    /// The views of the last refresh, newest job first.
    views: Mutex<Vec<JobView>>,
}

impl JobBoard {
    pub fn views(&self) -> Vec<JobView> {
        self.views.lock().clone()
    }

    fn newest(&self) -> Vec<JobRecord> {
        let history = self.history.read();
        let all = history.all();
        all.iter()
            .rev()
            .take(MAX_JOBS)
            .map(|r| (*r).clone())
            .collect()
    }
}

/// Folds every job event into the history until the subscription ends.
pub async fn follow(board: Arc<JobBoard>, mut events: EventSubscription) {
    while let Some(event) = events.next().await {
        match serde_json::from_slice::<JobEvent>(&event.body) {
            Ok(event) => board.history.write().apply(event),
            Err(e) => tracing::debug!("status page: ignoring an unreadable job event: {e}"),
        }
    }
}

/// Re-reads the progress of unfinished jobs every [`REFRESH`], forever.
pub async fn refresh(board: Arc<JobBoard>, queues: QueueClient) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before: HashMap<String, JobView> = board
            .views()
            .into_iter()
            .map(|v| (v.id.clone(), v))
            .collect();
        let mut views = Vec::new();
        for record in board.newest() {
            let view = match progress(&queues, &record).await {
                Ok(view) => view,
                Err(e) => {
                    tracing::debug!(job = %record.id, "status page: cannot read the job's queues: {e}");
                    view(&record, 0, 0)
                }
            };
            views.push(not_backwards(view, before.get(&record.id)));
        }
        *board.views.lock() = views;
    }
}

/// The job's view; finished jobs need no look at their queues.
async fn progress(queues: &QueueClient, record: &JobRecord) -> Result<JobView, ClientError> {
    if record.collected() >= record.total {
        return Ok(view(record, 0, 0));
    }
    let results = queues.info(&job::results_queue(&record.id)).await?.waiting;
    let dead = queues
        .info(&job::dead_letter_queue(&record.id))
        .await?
        .waiting;
    Ok(view(record, to_u64(results), to_u64(dead)))
}

/// A job from its history and what waits in its results and dead-letter queues.
pub fn view(record: &JobRecord, results_waiting: u64, dead_waiting: u64) -> JobView {
    let done = (record.collected() + results_waiting + dead_waiting).min(record.total);
    let collected_all = record.collected() >= record.total;
    let state = match (
        record.cancelled_at.is_some(),
        collected_all,
        done >= record.total,
    ) {
        (true, true, _) => "cancelled",
        (true, false, _) => "cancelling",
        (false, true, _) => "completed",
        (false, false, true) => "finished",
        (false, false, false) => "in_progress",
    };
    JobView {
        id: record.id.clone(),
        route: record.route.clone(),
        input: record.input.clone(),
        created_at: record.created_at,
        lines: record.total,
        done,
        failed: (record.collected_failed + dead_waiting).min(done),
        state,
    }
}

/// A collector takes results off the queue before it reports them collected; in between
/// the counts would dip, so progress never moves backwards on the page.
fn not_backwards(mut view: JobView, before: Option<&JobView>) -> JobView {
    if let Some(before) = before {
        view.done = view.done.max(before.done);
        view.failed = view.failed.max(before.failed);
    }
    view
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(total: u64, ok: u64, failed: u64, cancelled: bool) -> JobRecord {
        JobRecord {
            id: "batch_1".into(),
            route: "openai".into(),
            total,
            collected_ok: ok,
            collected_failed: failed,
            cancelled_at: cancelled.then_some(5),
            ..JobRecord::default()
        }
    }

    #[test]
    fn progress_counts_waiting_results_and_names_the_state() {
        let v = view(&record(10, 2, 1, false), 3, 1);
        assert_eq!((v.done, v.failed, v.state), (7, 2, "in_progress"));
        assert_eq!(view(&record(10, 2, 0, false), 8, 0).state, "finished");
        assert_eq!(view(&record(10, 9, 1, false), 0, 0).state, "completed");
        assert_eq!(view(&record(10, 3, 0, true), 0, 0).state, "cancelling");
        assert_eq!(view(&record(10, 3, 7, true), 0, 0).state, "cancelled");
        assert_eq!(
            view(&record(10, 0, 0, false), 50, 0).done,
            10,
            "capped at the lines"
        );
    }

    #[test]
    fn progress_never_moves_backwards() {
        let before = view(&record(10, 0, 0, false), 6, 0);
        let dipped = view(&record(10, 0, 0, false), 2, 0);
        assert_eq!(not_backwards(dipped, Some(&before)).done, 6);
    }
}
