//! A batch's results on the broker: one events-store channel per batch (its result log)
//! holding chunks of OpenAI output lines, written by any number of collectors. The output
//! and error files are views of it: the first line stored for a custom_id wins, so a
//! redelivered result never shows twice, and a custom_id is in one of the two files only.

use super::store;
use crate::batch::format::OutputLine;
use crate::kubemq::client::{Client, Error as ClientError};
use crate::kubemq::EventReceive;
use std::collections::HashSet;

/// The result log of `batch`.
pub fn log_channel(batch: &str) -> String {
    format!("llm-router.batch.{batch}.output")
}

/// The two files as read so far.
#[derive(Debug, Default)]
pub struct ResultLog {
    seen: HashSet<String>,
    /// Only count (a collector needs the custom_ids, not the bytes of a big batch).
    counting: bool,
    /// Output file bytes: whole JSON lines.
    pub ok: Vec<u8>,
    /// Error file bytes: whole JSON lines.
    pub errors: Vec<u8>,
    pub ok_count: u64,
    pub error_count: u64,
}

impl ResultLog {
    /// A log that keeps custom_ids and counts but not the files' bytes.
    pub fn counting() -> Self {
        Self {
            counting: true,
            ..Self::default()
        }
    }

    pub fn contains(&self, custom_id: &str) -> bool {
        self.seen.contains(custom_id)
    }

    pub fn done(&self) -> u64 {
        self.ok_count.saturating_add(self.error_count)
    }

    /// Adds one stored chunk; lines of custom_ids already in either file are dropped.
    pub fn apply(&mut self, event: &EventReceive) {
        if store::is_marker(event) {
            return;
        }
        for raw in event.body.split(|b| *b == b'\n') {
            if raw.is_empty() {
                continue;
            }
            let Ok(line) = serde_json::from_slice::<OutputLine>(raw) else {
                tracing::warn!(channel = %event.channel, "an unreadable line in a result log, skipped");
                continue;
            };
            if !self.seen.insert(line.custom_id.clone()) {
                continue;
            }
            let (file, count) = if line.is_error() {
                (&mut self.errors, &mut self.error_count)
            } else {
                (&mut self.ok, &mut self.ok_count)
            };
            *count += 1;
            if !self.counting {
                file.extend_from_slice(raw);
                file.push(b'\n');
            }
        }
    }
}

/// The result log of `batch` as stored now.
pub async fn read(client: &Client, batch: &str) -> Result<ResultLog, ClientError> {
    let mut log = ResultLog::default();
    for event in store::replay(client, &log_channel(batch)).await? {
        log.apply(&event);
    }
    Ok(log)
}

/// A chunk of lines as one event body.
pub fn chunk(lines: &[OutputLine]) -> Vec<u8> {
    let mut body = Vec::new();
    for line in lines {
        if let Ok(bytes) = serde_json::to_vec(line) {
            body.extend_from_slice(&bytes);
            body.push(b'\n');
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(lines: &[OutputLine]) -> EventReceive {
        EventReceive {
            body: chunk(lines),
            ..EventReceive::default()
        }
    }

    #[test]
    fn first_line_per_custom_id_wins_across_both_files() {
        let mut log = ResultLog::default();
        log.apply(&event(&[
            OutputLine::ok("a", "r1", json!({"x": 1})),
            OutputLine::failed("b", "dead_lettered", "gone"),
        ]));
        // Redeliveries: a second answer for a, and b answered after all.
        log.apply(&event(&[
            OutputLine::ok("a", "r2", json!({"x": 2})),
            OutputLine::ok("b", "r3", json!({"x": 3})),
            OutputLine::ok("c", "r4", json!({"x": 4})),
        ]));
        assert_eq!((log.ok_count, log.error_count, log.done()), (2, 1, 3));
        let ok = String::from_utf8_lossy(&log.ok).into_owned();
        assert_eq!(ok.lines().count(), 2);
        assert!(ok.contains("\"r1\"") && !ok.contains("\"r2\"") && !ok.contains("\"r3\""));
        assert!(String::from_utf8_lossy(&log.errors).contains("dead_lettered"));
        assert!(log.contains("c"));
        let mut counting = ResultLog::counting();
        counting.apply(&event(&[OutputLine::ok("a", "r1", json!({"x": 1}))]));
        assert_eq!((counting.ok_count, counting.ok.len()), (1, 0));
    }
}
