//! Collecting a job: results and dead letters come off the job's queues into the output
//! and error files, each custom_id once, and are acked only after the files are synced.
//!
//! Resumable by construction: the files are the record of what is collected. Stopping at
//! any point leaves unacked messages in the broker and whole lines on disk; collecting
//! again skips what the files already hold.

use super::format::OutputLine;
use super::history;
use super::job::{self, tag, JobEvent, JobRecord};
use super::output::OutputFiles;
use crate::kubemq::client::{Client, Error as ClientError};
use crate::kubemq::queues::{Downstream, QueueClient};
use crate::kubemq::QueueMessage;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// Most messages taken in one pull.
const MAX_PULL: i64 = 1000;
/// Pause between looks at empty queues.
const IDLE: Duration = Duration::from_millis(200);
/// How often progress is written to the job's history.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Where results go and whether to wait for the rest.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub output: PathBuf,
    pub errors: PathBuf,
    /// Keep collecting until every line is accounted for; otherwise stop when the queues
    /// are empty.
    pub wait: bool,
}

/// The error file's default path next to the output: `out.jsonl` → `out.errors.jsonl`.
pub fn default_errors_path(output: &std::path::Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    output.with_file_name(format!("{stem}.errors.jsonl"))
}

/// Counts so far; `ok + failed == total` means done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
}

impl Progress {
    pub fn done(&self) -> u64 {
        self.ok + self.failed
    }

    pub fn complete(&self) -> bool {
        self.done() >= self.total
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot write the results: {0}")]
    Io(#[from] std::io::Error),
    #[error("the broker failed while collecting (what is written is kept; run `batch results` again to continue): {0}")]
    Broker(#[from] ClientError),
}

/// Collects `record`'s results into the files, calling `progress` after every write.
pub async fn collect(
    client: &Client,
    queues: &QueueClient,
    record: &JobRecord,
    options: &CollectOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Progress, CollectError> {
    let mut files = OutputFiles::open(&options.output, &options.errors)?;
    let mut collector = Collector {
        queues,
        ds: queues.downstream(),
        record,
        files: &mut files,
    };
    let mut last_report = Instant::now();
    let mut reported = None;
    loop {
        let took = collector.round().await?;
        let now = collector.progress();
        progress(now);
        if last_report.elapsed() >= REPORT_EVERY || now.complete() {
            report(client, record, now, &mut reported).await;
            last_report = Instant::now();
        }
        if now.complete() || (!options.wait && took == 0) {
            report(client, record, now, &mut reported).await;
            return Ok(now);
        }
        if took == 0 {
            tokio::time::sleep(IDLE).await;
        }
    }
}

/// Writes progress to the job's history, when it changed. A failure only delays the
/// status others see; the files are the real record.
async fn report(
    client: &Client,
    record: &JobRecord,
    now: Progress,
    reported: &mut Option<Progress>,
) {
    if *reported == Some(now) {
        return;
    }
    let event = JobEvent::Collected {
        job: record.id.clone(),
        ok: now.ok,
        failed: now.failed,
        at: job::unix_seconds(),
    };
    match history::publish(client, &event).await {
        Ok(()) => *reported = Some(now),
        Err(e) => tracing::warn!(job = %record.id, "progress not recorded: {e}"),
    }
}

struct Collector<'a> {
    queues: &'a QueueClient,
    ds: Downstream,
    record: &'a JobRecord,
    files: &'a mut OutputFiles,
}

impl Collector<'_> {
    fn progress(&self) -> Progress {
        Progress {
            total: self.record.total,
            ok: self.files.written_ok() as u64,
            failed: self.files.written_err() as u64,
        }
    }

    /// Takes what waits in the results and dead-letter queues; returns how many messages.
    async fn round(&mut self) -> Result<usize, CollectError> {
        let results = job::results_queue(&self.record.id);
        let dead = job::dead_letter_queue(&self.record.id);
        let mut took = self.drain(&results, Source::Results).await?;
        took += self.drain(&dead, Source::DeadLetters).await?;
        Ok(took)
    }

    /// Pulls exactly what is waiting (so the broker answers at once instead of waiting
    /// for a fuller batch), writes it, syncs, then acks.
    async fn drain(&mut self, queue: &str, source: Source) -> Result<usize, CollectError> {
        let waiting = self.queues.info(queue).await?.waiting.min(MAX_PULL);
        if waiting <= 0 {
            return Ok(0);
        }
        let max = i32::try_from(waiting).unwrap_or(i32::MAX);
        let transaction = self.ds.get(queue, max, Duration::from_secs(1)).await?;
        let mut sequences = Vec::with_capacity(transaction.messages.len());
        for m in &transaction.messages {
            if let Some(line) = source.line(m, self.record.max_attempts) {
                self.files.write(&line)?;
            }
            sequences.push(
                m.attributes
                    .as_ref()
                    .map_or(0, |a| i64::try_from(a.sequence).unwrap_or(i64::MAX)),
            );
        }
        self.files.flush()?;
        self.ds.ack(&transaction.id, sequences).await?;
        // A real KubeMQ keeps an open transaction collecting after the get answered.
        self.ds.close(&transaction.id).await?;
        Ok(transaction.messages.len())
    }
}

/// The file line a results-queue message (`dead_letter` false) or a dead-lettered line
/// stands for; None for one that is not ours to write. For collectors that write
/// somewhere other than local files (the gateway's Batch API writes to the broker).
pub fn line_of(m: &QueueMessage, dead_letter: bool, max_attempts: u32) -> Option<OutputLine> {
    let source = if dead_letter {
        Source::DeadLetters
    } else {
        Source::Results
    };
    source.line(m, max_attempts)
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Results,
    DeadLetters,
}

impl Source {
    /// The file line a message stands for; None for one that is not ours to write.
    fn line(self, m: &QueueMessage, max_attempts: u32) -> Option<OutputLine> {
        let custom_id = m
            .tags
            .get(tag::CUSTOM_ID)
            .cloned()
            .unwrap_or_else(|| m.metadata.clone());
        if custom_id.is_empty() {
            tracing::warn!(message_id = %m.message_id, "a message without custom-id in a job queue, dropped");
            return None;
        }
        match self {
            Source::DeadLetters => {
                let why = m.tags.get(tag::ERROR).cloned().unwrap_or_else(|| {
                    format!("no worker finished this line in {max_attempts} deliveries")
                });
                Some(OutputLine::failed(custom_id, "dead_lettered", why))
            }
            Source::Results => {
                if m.tags.get(tag::OUTCOME).map(String::as_str) == Some("cancelled") {
                    return Some(OutputLine::failed(
                        custom_id,
                        "batch_cancelled",
                        "the job was cancelled before this line ran",
                    ));
                }
                match serde_json::from_slice::<OutputLine>(&m.body) {
                    Ok(line) if line.custom_id == custom_id => Some(line),
                    Ok(_) | Err(_) => Some(OutputLine::failed(
                        custom_id,
                        "unreadable_result",
                        "the worker's result for this line could not be read",
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn error_file_sits_next_to_the_output() {
        assert_eq!(
            default_errors_path(Path::new("/tmp/out.jsonl")),
            Path::new("/tmp/out.errors.jsonl")
        );
        assert_eq!(
            default_errors_path(Path::new("results")),
            Path::new("results.errors.jsonl")
        );
    }

    #[test]
    fn messages_become_lines() {
        let mut m = QueueMessage {
            metadata: "a".into(),
            ..QueueMessage::default()
        };
        let dead = Source::DeadLetters.line(&m, 3);
        assert_eq!(
            dead.and_then(|l| l.error).map(|e| (e.code, e.message)),
            Some((
                "dead_lettered".into(),
                "no worker finished this line in 3 deliveries".into()
            ))
        );
        m.tags.insert(tag::OUTCOME.into(), "cancelled".into());
        let cancelled = Source::Results.line(&m, 3);
        assert!(cancelled.is_some_and(|l| l.is_error()));
        m.tags.clear();
        m.body = serde_json::to_vec(&OutputLine::ok("a", "r", serde_json::json!({"x": 1})))
            .unwrap_or_default();
        let ok = Source::Results.line(&m, 3);
        assert!(ok.is_some_and(|l| !l.is_error()));
        m.metadata.clear();
        assert!(Source::Results.line(&m, 3).is_none());
    }
}
