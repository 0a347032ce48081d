//! Files on the broker: metadata as events on [`FILES_CHANNEL`], an uploaded file's bytes
//! as chunk events on its own channel. The output and error files of a batch are views of
//! the batch's result log (see [`super::output`]), so their ids are derived from the batch.

use super::follow::View;
use super::recent::Recent;
use super::store;
use crate::batch::job;
use crate::kubemq::client::{Client, Error as ClientError, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The events-store channel holding every uploaded file's metadata.
pub const FILES_CHANNEL: &str = "llm-router.files";
/// Bytes per content event: well under the broker's message limit.
pub const CHUNK_BYTES: usize = 1 << 20;
/// The tag holding a chunk's 0-based index.
const CHUNK_TAG: &str = "chunk";

/// The channel holding an uploaded file's bytes.
pub fn content_channel(id: &str) -> String {
    format!("llm-router.file.{id}")
}

/// A fresh uploaded file id, in OpenAI's style.
pub fn new_file_id() -> String {
    format!("file-{}", uuid::Uuid::new_v4().simple())
}

/// What a file id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileId<'a> {
    Upload(&'a str),
    /// The successes of a batch (its id).
    Output(&'a str),
    /// The failures of a batch (its id).
    Errors(&'a str),
}

/// The output file of `batch`.
pub fn output_file_id(batch: &str) -> String {
    format!("file-{batch}-output")
}

/// The error file of `batch`.
pub fn error_file_id(batch: &str) -> String {
    format!("file-{batch}-errors")
}

/// Reads an id; None for one we never make (so it is safe inside channel names).
pub fn parse_id(id: &str) -> Option<FileId<'_>> {
    let rest = id.strip_prefix("file-")?;
    if let Some(batch) = rest.strip_suffix("-output") {
        return job::is_job_id(batch).then_some(FileId::Output(batch));
    }
    if let Some(batch) = rest.strip_suffix("-errors") {
        return job::is_job_id(batch).then_some(FileId::Errors(batch));
    }
    let hex = rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then_some(FileId::Upload(id))
}

/// One uploaded file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFile {
    pub id: String,
    pub bytes: u64,
    pub created_at: i64,
    pub filename: String,
    pub purpose: String,
    /// Content events on [`content_channel`].
    pub chunks: u64,
}

impl StoredFile {
    /// OpenAI's file object.
    pub fn object(&self) -> Value {
        file_object(
            &self.id,
            self.bytes,
            self.created_at,
            &self.filename,
            &self.purpose,
        )
    }
}

/// OpenAI's file object for any file.
pub fn file_object(id: &str, bytes: u64, created_at: i64, filename: &str, purpose: &str) -> Value {
    json!({
        "id": id,
        "object": "file",
        "bytes": bytes,
        "created_at": created_at,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": null,
        "expires_at": null,
    })
}

/// An entry on [`FILES_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileEvent {
    /// Every chunk is stored.
    Created(StoredFile),
}

/// Most uploaded files kept in memory; the oldest is forgotten first (and is then a 404).
pub const KEEP_FILES: usize = 10_000;

/// Every uploaded file's metadata, folded from [`FILES_CHANNEL`] (bounded).
#[derive(Debug, Clone)]
pub struct Files {
    files: Recent<StoredFile>,
}

impl Default for Files {
    fn default() -> Self {
        Self {
            files: Recent::new(KEEP_FILES),
        }
    }
}

impl Files {
    /// Adds a file whose record is consistent; anything else is logged and skipped, as
    /// the broker takes records from anyone.
    pub fn apply(&mut self, event: FileEvent) {
        let FileEvent::Created(file) = event;
        if !matches!(parse_id(&file.id), Some(FileId::Upload(_))) {
            tracing::warn!(
                "ignoring a file record on {FILES_CHANNEL} with an id this gateway never makes"
            );
            return;
        }
        if file.chunks != file.bytes.div_ceil(CHUNK_BYTES as u64) {
            tracing::warn!(file = %file.id, bytes = file.bytes, chunks = file.chunks,
                "ignoring a file record on {FILES_CHANNEL} whose chunk count does not match its size");
            return;
        }
        self.files.insert(file.id.clone(), file);
    }

    pub fn get(&self, id: &str) -> Option<&StoredFile> {
        self.files.get(id)
    }

    /// Every file, newest first.
    pub fn newest_first(&self) -> Vec<StoredFile> {
        self.files.newest_first().cloned().collect()
    }
}

impl super::follow::Fold for Files {
    fn fold(&mut self, event: &crate::kubemq::EventReceive) {
        match serde_json::from_slice::<FileEvent>(&event.body) {
            Ok(e) => self.apply(e),
            Err(e) => tracing::warn!("ignoring an unreadable record on {FILES_CHANNEL}: {e}"),
        }
    }
}

/// Stores `bytes` as a new file; the metadata goes last (through the files view, so this
/// replica lists it at once), so a file that is listed has all its content.
pub async fn upload(
    client: &Client,
    files: &View<Files>,
    filename: &str,
    purpose: &str,
    bytes: &[u8],
) -> Result<StoredFile, ClientError> {
    let id = new_file_id();
    let channel = content_channel(&id);
    let mut chunks = 0u64;
    for (index, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
        let tags = HashMap::from([(CHUNK_TAG.to_owned(), index.to_string())]);
        store::publish(client, &channel, chunk.to_vec(), tags).await?;
        chunks += 1;
    }
    let file = StoredFile {
        id,
        bytes: bytes.len() as u64,
        created_at: job::unix_seconds(),
        filename: filename.to_owned(),
        purpose: purpose.to_owned(),
        chunks,
    };
    let event = serde_json::to_vec(&FileEvent::Created(file.clone()))
        .map_err(|e| ClientError::new(ErrorKind::Rejected, format!("file event: {e}")))?;
    files.store(client, event).await?;
    Ok(file)
}

/// An uploaded file's bytes. `max_bytes` bounds what is read and allocated: the record's
/// size comes from the broker, which anyone may write to.
pub async fn content(
    client: &Client,
    file: &StoredFile,
    max_bytes: u64,
) -> Result<Vec<u8>, ClientError> {
    let too_big = || {
        ClientError::new(
            ErrorKind::Rejected,
            format!(
                "{}: its record says {} bytes in {} chunks, over this gateway's {max_bytes}-byte file limit",
                file.id, file.bytes, file.chunks
            ),
        )
    };
    if file.bytes > max_bytes || file.chunks > max_bytes.div_ceil(CHUNK_BYTES as u64) {
        return Err(too_big());
    }
    let n = usize::try_from(file.chunks).map_err(|_| too_big())?;
    let mut events = store::first_n(client, &content_channel(&file.id), n).await?;
    let index = |e: &crate::kubemq::EventReceive| {
        e.tags
            .get(CHUNK_TAG)
            .and_then(|i| i.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    };
    events.sort_by_key(index);
    let capacity = usize::try_from(file.bytes).map_err(|_| too_big())?;
    let mut bytes = Vec::with_capacity(capacity);
    for (i, e) in events.iter().enumerate() {
        if index(e) != i as u64 {
            return Err(ClientError::new(
                ErrorKind::Rejected,
                format!("{}: chunk {i} is missing on the broker", file.id),
            ));
        }
        if (bytes.len() + e.body.len()) as u64 > file.bytes {
            return Err(ClientError::new(
                ErrorKind::Rejected,
                format!(
                    "{}: its chunks hold more than the {} bytes its record says",
                    file.id, file.bytes
                ),
            ));
        }
        bytes.extend_from_slice(&e.body);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_uploads_and_batch_files() {
        let upload = new_file_id();
        assert_eq!(parse_id(&upload), Some(FileId::Upload(upload.as_str())));
        let batch = job::new_job_id();
        let out = output_file_id(&batch);
        assert_eq!(parse_id(&out), Some(FileId::Output(batch.as_str())));
        let err = error_file_id(&batch);
        assert_eq!(parse_id(&err), Some(FileId::Errors(batch.as_str())));
        assert_eq!(parse_id("file-../../x"), None);
        assert_eq!(parse_id("file-batch_1-output"), None);
        assert_eq!(parse_id("batch_x"), None);
    }

    #[test]
    fn file_events_round_trip() {
        let file = StoredFile {
            id: new_file_id(),
            bytes: 3,
            created_at: 1,
            filename: "a.jsonl".into(),
            purpose: "batch".into(),
            chunks: 1,
        };
        let text = serde_json::to_string(&FileEvent::Created(file.clone())).unwrap_or_default();
        assert!(text.contains("\"type\":\"created\""), "{text}");
        let back: Option<FileEvent> = serde_json::from_str(&text).ok();
        assert_eq!(back, Some(FileEvent::Created(file.clone())));
        assert_eq!(file.object()["object"], "file");
    }

    #[test]
    fn inconsistent_file_records_are_skipped() {
        let file = |bytes: u64, chunks: u64| StoredFile {
            id: new_file_id(),
            bytes,
            created_at: 1,
            filename: "a.jsonl".into(),
            purpose: "batch".into(),
            chunks,
        };
        let mut files = Files::default();
        let good = file(CHUNK_BYTES as u64 + 1, 2);
        files.apply(FileEvent::Created(good.clone()));
        for bad in [file(10, u64::MAX), file(u64::MAX, 1), file(0, 1)] {
            files.apply(FileEvent::Created(bad));
        }
        let mut odd = file(1, 1);
        odd.id = "file-../x".into();
        files.apply(FileEvent::Created(odd));
        assert_eq!(files.newest_first(), [good]);
    }
}
