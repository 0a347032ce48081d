//! Follows the jobs channel, so that every worker knows which jobs are cancelled (their
//! lines are dropped) and how big each job is (for the progress series).

use super::metrics;
use crate::batch::job::Jobs;
use crate::kubemq::client::{Client, Error as ClientError};
use crate::kubemq::subscribe::{EventsStoreType, SubscribeType};
use crate::kubemq::Subscribe;
use crate::protocol::batch::{JobEvent, JOBS_CHANNEL};
use futures::StreamExt;
use parking_lot::RwLock;
use std::sync::Arc;

/// What the worker knows of the jobs; cheap to clone and to ask.
#[derive(Clone, Default)]
pub struct Watcher {
    jobs: Arc<RwLock<Jobs>>,
}

impl Watcher {
    /// Subscribes to the whole history of the jobs channel and keeps following it.
    pub async fn start(client: &Client) -> Result<Self, ClientError> {
        let subscribe = Subscribe {
            subscribe_type_data: SubscribeType::EventsStore as i32,
            client_id: client.client_id().to_owned(),
            channel: JOBS_CHANNEL.to_owned(),
            events_store_type_data: EventsStoreType::StartFromFirst as i32,
            ..Subscribe::default()
        };
        let mut events = client.subscribe_to_events(subscribe).await?;
        let watcher = Self::default();
        let jobs = watcher.jobs.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match serde_json::from_slice::<JobEvent>(&event.body) {
                    Ok(event) => {
                        if let JobEvent::Submitted { job, total, .. } = &event {
                            metrics::job_lines(job, *total);
                        }
                        let job = event.job().to_owned();
                        let mut jobs = jobs.write();
                        jobs.apply(event);
                        if jobs.get(&job).is_some_and(|r| r.is_over()) {
                            metrics::job_ended(&job);
                        }
                    }
                    Err(e) => {
                        tracing::debug!("ignoring an unreadable event on {JOBS_CHANNEL}: {e}")
                    }
                }
            }
        });
        Ok(watcher)
    }

    pub fn is_cancelled(&self, job: &str) -> bool {
        self.jobs.read().is_cancelled(job)
    }

    /// For tests and callers that apply events themselves.
    pub fn apply(&self, event: JobEvent) {
        self.jobs.write().apply(event);
    }
}
