//! What a batch is beyond its job: the OpenAI fields (endpoint, input file, window,
//! metadata), a validation failure, and the end. Stored as events on [`BATCHES_CHANNEL`];
//! the job's own history (progress, cancel) stays on the jobs channel.

use super::store;
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

/// Folds batch events in the order they were stored.
#[derive(Debug, Default, Clone)]
pub struct Batches {
    batches: HashMap<String, BatchRecord>,
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
            } => {
                let record = self.batches.entry(batch.clone()).or_default();
                *record = BatchRecord {
                    id: batch,
                    endpoint,
                    input_file_id,
                    completion_window,
                    created_at,
                    metadata,
                    ..std::mem::take(record)
                };
            }
            BatchEvent::Failed { batch, at, errors } => {
                let record = self.batches.entry(batch).or_default();
                record.failed.get_or_insert((at, errors));
            }
            BatchEvent::Finished {
                batch,
                at,
                ok,
                failed,
            } => {
                let record = self.batches.entry(batch).or_default();
                record.finished.get_or_insert(Finished { at, ok, failed });
            }
        }
    }

    /// A created batch.
    pub fn get(&self, id: &str) -> Option<&BatchRecord> {
        self.batches.get(id).filter(|b| !b.id.is_empty())
    }

    /// Every created batch, newest first.
    pub fn newest_first(&self) -> Vec<&BatchRecord> {
        let mut all: Vec<_> = self.batches.values().filter(|b| !b.id.is_empty()).collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        all
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
            Err(e) => tracing::debug!("ignoring an unreadable event on {BATCHES_CHANNEL}: {e}"),
        }
    }
}

/// Every batch as the history tells it now.
pub async fn replay(client: &Client) -> Result<Batches, ClientError> {
    let mut batches = Batches::default();
    for event in store::replay(client, BATCHES_CHANNEL).await? {
        match serde_json::from_slice::<BatchEvent>(&event.body) {
            Ok(e) => batches.apply(e),
            Err(e) => tracing::debug!("ignoring an unreadable event on {BATCHES_CHANNEL}: {e}"),
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(id: &str, at: i64) -> BatchEvent {
        BatchEvent::Created {
            batch: id.into(),
            endpoint: "/v1/chat/completions".into(),
            input_file_id: "file-x".into(),
            completion_window: "24h".into(),
            created_at: at,
            metadata: None,
        }
    }

    #[test]
    fn the_first_end_wins_and_lists_are_newest_first() {
        let mut b = Batches::default();
        b.apply(created("a", 1));
        b.apply(created("b", 2));
        b.apply(BatchEvent::Finished {
            batch: "a".into(),
            at: 5,
            ok: 3,
            failed: 1,
        });
        b.apply(BatchEvent::Finished {
            batch: "a".into(),
            at: 6,
            ok: 4,
            failed: 0,
        });
        let a = b.get("a").and_then(|r| r.finished);
        assert_eq!(a.map(|f| (f.at, f.ok, f.failed)), Some((5, 3, 1)));
        let ids: Vec<&str> = b.newest_first().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        // An end without a creation is not a batch.
        b.apply(BatchEvent::Finished {
            batch: "c".into(),
            at: 1,
            ok: 0,
            failed: 0,
        });
        assert!(b.get("c").is_none());
        assert_eq!(b.newest_first().len(), 2);
    }
}
