//! What a batch is beyond its job: the OpenAI fields (endpoint, input file, window,
//! metadata), a validation failure, and the end. Stored as events on [`BATCHES_CHANNEL`];
//! the job's own history (progress, cancel) stays on the jobs channel.

use super::recent::Recent;
use super::store;
use crate::batch::job;
use crate::kubemq::client::{Client, Error as ClientError, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The events-store channel holding every batch's record.
pub const BATCHES_CHANNEL: &str = "llm-router.batches";

/// One bad input line, in OpenAI's `errors.data` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineProblem {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    /// 1-based; None for the whole file.
    pub line: Option<usize>,
}

/// An entry on [`BATCHES_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchEvent {
    Created {
        batch: String,
        endpoint: String,
        input_file_id: String,
        completion_window: String,
        created_at: i64,
        metadata: Option<Map<String, Value>>,
    },
    /// The input file was refused; no job was queued.
    Failed {
        batch: String,
        at: i64,
        errors: Vec<LineProblem>,
    },
    /// Every line is in the output or error file (a collector saw it).
    Finished {
        batch: String,
        at: i64,
        ok: u64,
        failed: u64,
    },
}

/// A batch as its events tell it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchRecord {
    pub id: String,
    pub endpoint: String,
    pub input_file_id: String,
    pub completion_window: String,
    pub created_at: i64,
    pub metadata: Option<Map<String, Value>>,
    /// When and why validation refused the file.
    pub failed: Option<(i64, Vec<LineProblem>)>,
    /// When it finished, with the final counts (the first collector to see it wins).
    pub finished: Option<Finished>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub at: i64,
    pub ok: u64,
    pub failed: u64,
}

/// Most ended (finished or failed) batches kept in memory; the oldest ended is forgotten
/// first, and a GET of it is then a 404 (OpenAI, too, expires batches and their files).
pub const KEEP_ENDED: usize = 10_000;
/// Most batches kept in all, open ones included, so a flood of forged records cannot
/// grow the view without bound; beyond it the oldest created is forgotten.
pub const KEEP_ALL: usize = 50_000;

/// Folds batch events in the order they were stored, keeping the newest (bounded).
#[derive(Debug, Clone)]
pub struct Batches {
    batches: Recent<BatchRecord>,
    /// The ids of ended batches, in the order they ended.
    ended: Recent<()>,
}

impl Default for Batches {
    fn default() -> Self {
        Self {
            batches: Recent::new(KEEP_ALL),
            ended: Recent::new(KEEP_ENDED),
        }
    }
}

impl Batches {
    pub fn apply(&mut self, event: BatchEvent) {
        match event {
            BatchEvent::Created {
                batch,
                endpoint,
                input_file_id,
                completion_window,
                created_at,
                metadata,
            } => self.create(BatchRecord {
                id: batch,
                endpoint,
                input_file_id,
                completion_window,
                created_at,
                metadata,
                ..BatchRecord::default()
            }),
            BatchEvent::Failed { batch, at, errors } => {
                self.end(&batch, |r| {
                    r.failed.get_or_insert((at, errors));
                });
            }
            BatchEvent::Finished {
                batch,
                at,
                ok,
                failed,
            } => self.end(&batch, |r| {
                r.finished.get_or_insert(Finished { at, ok, failed });
            }),
        }
    }

    fn create(&mut self, record: BatchRecord) {
        if !job::is_job_id(&record.id) {
            tracing::warn!(
                batch = %record.id.chars().take(80).collect::<String>(),
                "ignoring a batch record on {BATCHES_CHANNEL} whose id this gateway never makes"
            );
            return;
        }
        let id = record.id.clone();
        let record = match self.batches.get_mut(&id) {
            Some(old) => BatchRecord {
                failed: old.failed.take(),
                finished: old.finished.take(),
                ..record
            },
            None => record,
        };
        if let Some((oldest, _)) = self.batches.insert(id, record) {
            self.ended.remove(&oldest);
        }
    }

    /// Applies an end to a known batch; an end for a batch never created (or forgotten)
    /// is no batch.
    fn end(&mut self, id: &str, set: impl FnOnce(&mut BatchRecord)) {
        let Some(record) = self.batches.get_mut(id) else {
            tracing::debug!("ignoring the end of unknown batch {id:.80}");
            return;
        };
        set(record);
        if self.ended.contains(id) {
            return;
        }
        if let Some((oldest, ())) = self.ended.insert(id.to_owned(), ()) {
            self.batches.remove(&oldest);
        }
    }

    /// A created batch.
    pub fn get(&self, id: &str) -> Option<&BatchRecord> {
        self.batches.get(id)
    }

    /// Every batch, newest first.
    pub fn newest_first(&self) -> Vec<&BatchRecord> {
        self.batches.newest_first().collect()
    }

    /// Up to `limit` batches older than `after` (from the newest without), newest first,
    /// and whether more follow.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<BatchRecord>, bool) {
        let mut older = self.batches.older_than(after);
        let page: Vec<BatchRecord> = older.by_ref().take(limit).cloned().collect();
        (page, older.next().is_some())
    }

    /// The batches a collector may still have work on.
    pub fn unended(&self) -> impl Iterator<Item = &BatchRecord> {
        self.batches
            .newest_first()
            .filter(|b| b.failed.is_none() && b.finished.is_none())
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

/// Stores `event`.
pub async fn publish(client: &Client, event: &BatchEvent) -> Result<(), ClientError> {
    let body = serde_json::to_vec(event)
        .map_err(|e| ClientError::new(ErrorKind::Rejected, format!("batch event: {e}")))?;
    store::publish(client, BATCHES_CHANNEL, body, HashMap::new()).await
}

impl super::follow::Fold for Batches {
    fn fold(&mut self, event: &crate::kubemq::EventReceive) {
        match serde_json::from_slice::<BatchEvent>(&event.body) {
            Ok(e) => self.apply(e),
            Err(e) => tracing::warn!("ignoring an unreadable record on {BATCHES_CHANNEL}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> String {
        format!("batch_{n:032x}")
    }

    fn created(n: u32, at: i64) -> BatchEvent {
        BatchEvent::Created {
            batch: id(n),
            endpoint: "/v1/chat/completions".into(),
            input_file_id: "file-x".into(),
            completion_window: "24h".into(),
            created_at: at,
            metadata: None,
        }
    }

    fn finished(n: u32, at: i64, ok: u64) -> BatchEvent {
        BatchEvent::Finished {
            batch: id(n),
            at,
            ok,
            failed: 1,
        }
    }

    #[test]
    fn the_first_end_wins_and_lists_are_newest_first() {
        let mut b = Batches::default();
        b.apply(created(1, 1));
        b.apply(created(2, 2));
        b.apply(finished(1, 5, 3));
        b.apply(finished(1, 6, 4));
        let a = b.get(&id(1)).and_then(|r| r.finished);
        assert_eq!(a.map(|f| (f.at, f.ok, f.failed)), Some((5, 3, 1)));
        let ids: Vec<&str> = b.newest_first().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [id(2), id(1)]);
        // An end without a creation is not a batch, nor is an id we never make.
        b.apply(finished(3, 1, 0));
        b.apply(BatchEvent::Created {
            batch: "../../x".into(),
            endpoint: String::new(),
            input_file_id: String::new(),
            completion_window: String::new(),
            created_at: 0,
            metadata: None,
        });
        assert!(b.get(&id(3)).is_none());
        assert_eq!(b.len(), 2);
        let (page, more) = b.page(Some(&id(2)), 5);
        assert_eq!((page.len(), more), (1, false));
        assert!(b.page(None, 1).1);
    }

    #[test]
    fn the_oldest_ended_batches_are_forgotten_first() {
        let mut b = Batches::default();
        let n = u32::try_from(KEEP_ENDED).unwrap_or(u32::MAX) + 5;
        b.apply(created(0, 0));
        for i in 1..=n {
            b.apply(created(i, i64::from(i)));
            b.apply(finished(i, 0, 1));
        }
        assert!(b.get(&id(0)).is_some(), "an open batch stays");
        assert!(b.get(&id(5)).is_none() && b.get(&id(6)).is_some());
        assert_eq!(b.len(), KEEP_ENDED + 1);
        assert_eq!(b.unended().count(), 1);
    }
}
