//! `/v1/files`: upload (multipart `file` + `purpose`), metadata, content and list. Uploads
//! have their own body cap ([`super::batchapi::DEFAULT_MAX_UPLOAD`] by default, 413 beyond),
//! larger than the chat body cap, and a file must be within the batch limits (400 naming
//! the limit); only `purpose=batch` is taken, as batch input is what they are for.

use super::app::AppState;
use super::batchapi::error::BatchApiError;
use super::batchapi::files::{self, FileId};
use super::batchapi::{output, BatchApi};
use crate::batch::limits::LimitError;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// The only purpose accepted for uploads.
pub const PURPOSE: &str = "batch";

/// `POST /v1/files`.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, BatchApiError> {
    let api = &state.batches;
    let mut multipart = multipart.map_err(|e| {
        BatchApiError::bad_request(
            format!(
                "send the file as multipart/form-data with fields 'file' and 'purpose': {}",
                e.body_text()
            ),
            None,
        )
    })?;
    let (mut file, mut purpose) = (None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| read_error(&e, api))?
    {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("upload.jsonl").to_owned();
                let bytes = field.bytes().await.map_err(|e| read_error(&e, api))?;
                file = Some((name, bytes));
            }
            Some("purpose") => purpose = Some(field.text().await.map_err(|e| read_error(&e, api))?),
            _ => {}
        }
    }
    let purpose = purpose.ok_or_else(|| {
        BatchApiError::bad_request("missing 'purpose': send purpose=batch", Some("purpose"))
    })?;
    if purpose != PURPOSE {
        return Err(BatchApiError::bad_request(
            format!("purpose '{purpose}' is not supported: this gateway takes files for batches only (purpose=batch)"),
            Some("purpose"),
        ));
    }
    let (name, bytes) = file.ok_or_else(|| {
        BatchApiError::bad_request(
            "missing 'file': attach the JSONL file as the 'file' field",
            Some("file"),
        )
    })?;
    check_limits(api, &bytes)?;
    let stored = files::upload(api.client()?, &api.views()?.files, &name, &purpose, &bytes).await?;
    tracing::info!(file = %stored.id, bytes = stored.bytes, "file uploaded");
    Ok(Json(stored.object()))
}

/// A file the Batch API could never run is refused at upload, naming the limit.
fn check_limits(api: &BatchApi, bytes: &[u8]) -> Result<(), BatchApiError> {
    let refuse = |e: LimitError| BatchApiError::bad_request(e.to_string(), Some("file"));
    api.limits.check_size(bytes.len() as u64).map_err(refuse)?;
    // Not UTF-8: batch creation names that, with the line, as OpenAI does.
    if let Ok(text) = std::str::from_utf8(bytes) {
        api.limits.check_lines(text).map_err(refuse)?;
    }
    Ok(())
}

fn read_error(e: &MultipartError, api: &BatchApi) -> BatchApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        BatchApiError::TooLarge {
            limit: api.max_upload,
        }
    } else {
        BatchApiError::bad_request(format!("cannot read the upload: {}", e.body_text()), None)
    }
}

/// `GET /v1/files`: uploaded files, newest first.
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, BatchApiError> {
    let all = state.batches.files()?;
    let data: Vec<Value> = all.iter().map(files::StoredFile::object).collect();
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": false}),
    ))
}

/// `GET /v1/files/{id}`.
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, BatchApiError> {
    let api = &state.batches;
    match files::parse_id(&id) {
        Some(FileId::Upload(_)) => {
            let file = api.file(&id).await?;
            file.map(|f| Json(f.object()))
                .ok_or(BatchApiError::NoFile(id))
        }
        Some(FileId::Output(batch) | FileId::Errors(batch)) => {
            let (bytes, created_at, name) = batch_file(api, &id, batch).await?;
            let object =
                files::file_object(&id, bytes.len() as u64, created_at, &name, "batch_output");
            Ok(Json(object))
        }
        None => Err(BatchApiError::NoFile(id)),
    }
}

/// `GET /v1/files/{id}/content`.
pub async fn content(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, BatchApiError> {
    let api = &state.batches;
    let client = api.client()?;
    let bytes = match files::parse_id(&id) {
        Some(FileId::Upload(_)) => {
            let file = api
                .file(&id)
                .await?
                .ok_or_else(|| BatchApiError::NoFile(id.clone()))?;
            files::content(client, &file, api.limits.max_file_bytes).await?
        }
        Some(FileId::Output(batch) | FileId::Errors(batch)) => batch_file(api, &id, batch).await?.0,
        None => return Err(BatchApiError::NoFile(id)),
    };
    let octets = [(header::CONTENT_TYPE, "application/octet-stream")];
    Ok((StatusCode::OK, octets, bytes).into_response())
}

/// The bytes, creation time and name of a batch's output or error file (`id`).
async fn batch_file(
    api: &BatchApi,
    id: &str,
    batch: &str,
) -> Result<(Vec<u8>, i64, String), BatchApiError> {
    let client = api.client()?;
    let (record, _) = api
        .batch(batch)
        .await?
        .ok_or_else(|| BatchApiError::NoFile(id.to_owned()))?;
    let created_at = record.finished.map_or(record.created_at, |f| f.at);
    let log = output::read(client, batch).await?;
    Ok(match files::parse_id(id) {
        Some(FileId::Errors(_)) => (log.errors, created_at, format!("{batch}_error.jsonl")),
        _ => (log.ok, created_at, format!("{batch}_output.jsonl")),
    })
}
