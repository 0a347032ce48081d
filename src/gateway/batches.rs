//! `/v1/batches`: create, retrieve, list (newest first, `limit`/`after`) and cancel.
//! The work is in [`super::batchapi`]; these handlers read the request and the histories.

use super::app::AppState;
use super::batchapi::create::{self, CreateBatch};
use super::batchapi::error::BatchApiError;
use super::batchapi::view;
use crate::batch::job::{self, JobEvent, JobRecord};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// `limit` when none is given, and the largest accepted (OpenAI's).
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// `POST /v1/batches`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, BatchApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            BatchApiError::TooLarge {
                limit: state.batches.max_upload,
            }
        } else {
            BatchApiError::bad_request(format!("cannot read the body: {}", e.body_text()), None)
        }
    })?;
    let request: CreateBatch = serde_json::from_slice(&body).map_err(|e| {
        BatchApiError::bad_request(
            format!("the body must be a JSON object with input_file_id, endpoint and completion_window: {e}"),
            None,
        )
    })?;
    let batch = create::create(&state.batches, request).await?;
    tracing::info!(batch = %batch["id"], status = %batch["status"], "batch created");
    Ok(Json(batch))
}

/// `GET /v1/batches/{id}`: from this replica's views, no broker call (see
/// [`super::batchapi::BatchApi::batch`]). An open batch gets a collector here if it has
/// none (its creating replica may be gone).
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, BatchApiError> {
    let api = &state.batches;
    let (batch, job) = api.batch(&id).await?.ok_or(BatchApiError::NoBatch(id))?;
    if let Some(job) = job.as_ref().filter(|j| view::is_open(&batch, Some(j))) {
        api.collectors.ensure(api.client()?, api.queues()?, job);
    }
    Ok(Json(view::object(&batch, job.as_ref())))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

/// `GET /v1/batches`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, BatchApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(BatchApiError::bad_request(
            format!("limit must be between 1 and {MAX_LIMIT}"),
            Some("limit"),
        ));
    }
    let (page, has_more) = state.batches.page(query.after.as_deref(), limit)?;
    let page: Vec<Value> = page
        .iter()
        .map(|(b, job)| view::object(b, job.as_ref()))
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": page,
        "first_id": page.first().map(|b| b["id"].clone()),
        "last_id": page.last().map(|b| b["id"].clone()),
        "has_more": has_more,
    })))
}

/// `POST /v1/batches/{id}/cancel`: queued lines are dropped by the workers and listed in
/// the error file as `batch_cancelled`; finished lines are kept.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, BatchApiError> {
    let api = &state.batches;
    let (batch, job) = api
        .batch(&id)
        .await?
        .ok_or(BatchApiError::NoBatch(id.clone()))?;
    let status = view::status(&batch, job.as_ref());
    match status {
        "cancelling" | "cancelled" => return Ok(Json(view::object(&batch, job.as_ref()))),
        "in_progress" | "finalizing" | "validating" => {}
        _ => return Err(BatchApiError::NotCancellable { id, status }),
    }
    let at = job::unix_seconds();
    api.record_job(&JobEvent::Cancelled {
        job: id.clone(),
        at,
    })
    .await?;
    let mut job = job.unwrap_or_else(|| JobRecord {
        id: id.clone(),
        ..JobRecord::default()
    });
    job.cancelled_at.get_or_insert(at);
    tracing::info!(batch = %id, "batch cancelled");
    Ok(Json(view::object(&batch, Some(&job))))
}
