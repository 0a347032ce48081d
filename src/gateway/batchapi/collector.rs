//! Background collectors: one per open batch per gateway replica. Each takes results and
//! dead letters off the job's queues (the broker hands each message to one collector),
//! stores them as a chunk on the batch's result log, waits until the chunk comes back on
//! its own subscription to the log (so the broker has it), and only then acks.
//!
//! Several replicas may collect one batch: every collector follows the whole log, so each
//! knows the deduplicated counts, and the first to see every line accounted for records
//! the end. A collector stopped at any point loses nothing: unacked messages come back.

use super::output::{self, ResultLog};
use super::record::{self, BatchEvent};
use super::store;
use crate::batch::collect::line_of;
use crate::batch::format::OutputLine;
use crate::batch::history;
use crate::batch::job::{self, JobEvent, JobRecord};
use crate::kubemq::client::{Client, Error as ClientError, ErrorKind, EventSubscription};
use crate::kubemq::queues::{Downstream, QueueClient};
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most messages taken in one pull.
const MAX_PULL: i64 = 1000;
/// Pause between looks at empty queues (spent reading what other collectors store).
const IDLE: Duration = Duration::from_millis(200);
/// How often progress goes to the job's history.
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for a stored chunk to come back on the log subscription.
const ECHO_LIMIT: Duration = Duration::from_secs(30);
/// The tag naming a chunk, so its writer can recognise it on the log.
const CHUNK_TAG: &str = "chunk-id";

/// The collectors running in this gateway; cloneable.
#[derive(Clone)]
pub struct Collectors {
    /// Batch ids with a collector here, so a batch gets at most one per replica.
    running: Arc<Mutex<HashSet<String>>>,
    /// Stops every collector (gateway shutdown); stopping mid-round is safe.
    shutdown: CancellationToken,
}

impl Collectors {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            running: Arc::default(),
            shutdown,
        }
    }

    /// Whether a collector for `batch` runs here.
    pub fn is_running(&self, batch: &str) -> bool {
        self.running.lock().contains(batch)
    }

    /// Starts a collector for `job` unless one runs here already.
    pub fn ensure(&self, client: &Client, queues: &QueueClient, job: &JobRecord) {
        if !self.running.lock().insert(job.id.clone()) {
            return;
        }
        let (client, queues, job) = (client.clone(), queues.clone(), job.clone());
        let running = self.running.clone();
        let shutdown = self.shutdown.clone();
        // Ends when the batch is finished, fails, or at shutdown; unacked work comes back.
        tokio::spawn(async move {
            let result = tokio::select! {
                () = shutdown.cancelled() => Ok(()),
                r = collect(&client, &queues, &job) => r,
            };
            if let Err(e) = result {
                tracing::warn!(batch = %job.id, "batch collector stopped, it restarts on the next scan: {e}");
            }
            running.lock().remove(&job.id);
        });
    }
}

/// Collects until every line of `job` is in the result log.
async fn collect(
    client: &Client,
    queues: &QueueClient,
    job: &JobRecord,
) -> Result<(), ClientError> {
    let mut c = Collector {
        client,
        queues,
        job,
        follower: store::from_first(client, &output::log_channel(&job.id)).await?,
        log: ResultLog::counting(),
        ds: queues.downstream(),
    };
    let mut last_report = Instant::now();
    let mut reported = None;
    loop {
        c.follow(None, Duration::ZERO).await?;
        if c.log.done() >= job.total {
            return c.finish().await;
        }
        let took = c.round().await?;
        if took == 0 {
            c.follow(None, IDLE).await?;
        }
        if last_report.elapsed() >= REPORT_EVERY {
            c.report(&mut reported).await;
            last_report = Instant::now();
        }
    }
}

struct Collector<'a> {
    client: &'a Client,
    queues: &'a QueueClient,
    job: &'a JobRecord,
    /// The batch's result log from its first event: every collector's chunks, in order.
    follower: EventSubscription,
    log: ResultLog,
    ds: Downstream,
}

impl Collector<'_> {
    /// Applies what arrives on the log for up to `wait`; with `want`, returns as soon as
    /// that chunk arrived (true) or the wait is over (false).
    async fn follow(&mut self, want: Option<&str>, wait: Duration) -> Result<bool, ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.follower.next()).await {
                Ok(Some(event)) => {
                    let hit =
                        want.is_some() && event.tags.get(CHUNK_TAG).map(String::as_str) == want;
                    self.log.apply(&event);
                    if hit {
                        return Ok(true);
                    }
                }
                Ok(None) => {
                    return Err(ClientError::new(
                        ErrorKind::Unavailable,
                        "the subscription to the result log ended",
                    ))
                }
                Err(_) => return Ok(false),
            }
        }
    }

    /// Takes what waits in the results and dead-letter queues; returns how many messages.
    async fn round(&mut self) -> Result<usize, ClientError> {
        let results = job::results_queue(&self.job.id);
        let dead = job::dead_letter_queue(&self.job.id);
        let took = self.drain(&results, false).await?;
        Ok(took + self.drain(&dead, true).await?)
    }

    /// Pulls what is waiting, stores it on the log, waits for it to come back, then acks.
    async fn drain(&mut self, queue: &str, dead_letter: bool) -> Result<usize, ClientError> {
        let waiting = self.queues.info(queue).await?.waiting.min(MAX_PULL);
        if waiting <= 0 {
            return Ok(0);
        }
        let max = i32::try_from(waiting).unwrap_or(i32::MAX);
        let transaction = self.ds.get(queue, max, Duration::from_secs(1)).await?;
        let mut fresh = HashSet::new();
        let lines: Vec<OutputLine> = transaction
            .messages
            .iter()
            .filter_map(|m| line_of(m, dead_letter, self.job.max_attempts))
            .filter(|l| !self.log.contains(&l.custom_id) && fresh.insert(l.custom_id.clone()))
            .collect();
        if !lines.is_empty() {
            self.store(&lines).await?;
        }
        let sequences = transaction
            .messages
            .iter()
            .map(|m| {
                m.attributes
                    .as_ref()
                    .map_or(0, |a| i64::try_from(a.sequence).unwrap_or(i64::MAX))
            })
            .collect();
        self.ds.ack(&transaction.id, sequences).await?;
        // A real KubeMQ keeps an open transaction collecting after the get answered.
        self.ds.close(&transaction.id).await?;
        Ok(transaction.messages.len())
    }

    /// Stores `lines` as one chunk and returns once the log shows it.
    async fn store(&mut self, lines: &[OutputLine]) -> Result<(), ClientError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tags = HashMap::from([(CHUNK_TAG.to_owned(), id.clone())]);
        let channel = output::log_channel(&self.job.id);
        store::publish(self.client, &channel, output::chunk(lines), tags).await?;
        if self.follow(Some(&id), ECHO_LIMIT).await? {
            return Ok(());
        }
        Err(ClientError::new(
            ErrorKind::TimedOut,
            format!(
                "a stored chunk did not come back on {channel} within {}s; its messages stay unacked and come back",
                ECHO_LIMIT.as_secs()
            ),
        ))
    }

    /// Writes the counts to the job's history when they changed. A failure only delays
    /// the status others see.
    async fn report(&mut self, reported: &mut Option<(u64, u64)>) {
        let now = (self.log.ok_count, self.log.error_count);
        if *reported == Some(now) {
            return;
        }
        let event = JobEvent::Collected {
            job: self.job.id.clone(),
            ok: now.0,
            failed: now.1,
            at: job::unix_seconds(),
        };
        match history::publish(self.client, &event).await {
            Ok(()) => *reported = Some(now),
            Err(e) => tracing::warn!(batch = %self.job.id, "progress not recorded: {e}"),
        }
    }

    /// Every line is accounted for: the final counts and the end.
    async fn finish(&mut self) -> Result<(), ClientError> {
        self.report(&mut None).await;
        record::publish(
            self.client,
            &BatchEvent::Finished {
                batch: self.job.id.clone(),
                at: job::unix_seconds(),
                ok: self.log.ok_count,
                failed: self.log.error_count,
            },
        )
        .await?;
        tracing::info!(batch = %self.job.id, ok = self.log.ok_count, failed = self.log.error_count, "batch finished");
        Ok(())
    }
}
