//! `/v1/batches`: create, retrieve, list (newest first, `limit`/`after`) and cancel.
//! The work is in [`super::batchapi`]; these handlers read the request and the histories.

use super::app::AppState;
use super::batchapi::create::{self, CreateBatch};
use super::batchapi::error::BatchApiError;
use super::batchapi::view;
use crate::batch::history;
use crate::batch::job::{self, JobEvent};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
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
    body: Bytes,
) -> Result<Json<Value>, BatchApiError> {
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

/// `GET /v1/batches/{id}`. An open batch gets a collector here if it has none (its
/// creating replica may be gone).
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, BatchApiError> {
    let api = &state.batches;
    let (batches, jobs) = api.histories().await?;
    let batch = batches.get(&id).ok_or(BatchApiError::NoBatch(id.clone()))?;
    let job = jobs.get(&id);
    if let Some(job) = job.filter(|_| view::is_open(batch, job)) {
        api.collectors.ensure(api.client()?, api.queues()?, job);
    }
    Ok(Json(view::object(batch, job)))
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
    let (batches, jobs) = state.batches.histories().await?;
    let all = batches.newest_first();
    let start = match &query.after {
        Some(after) => all
            .iter()
            .position(|b| &b.id == after)
            .map_or(all.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|b| view::object(b, jobs.get(&b.id)))
        .collect();
    let has_more = all.len() > start + page.len();
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
    let (batches, mut jobs) = api.histories().await?;
    let batch = batches.get(&id).ok_or(BatchApiError::NoBatch(id.clone()))?;
    let status = view::status(batch, jobs.get(&id));
    match status {
        "cancelling" | "cancelled" => return Ok(Json(view::object(batch, jobs.get(&id)))),
        "in_progress" | "finalizing" | "validating" => {}
        _ => return Err(BatchApiError::NotCancellable { id, status }),
    }
    let event = JobEvent::Cancelled {
        job: id.clone(),
        at: job::unix_seconds(),
    };
    history::publish(api.client()?, &event).await?;
    jobs.apply(event);
    tracing::info!(batch = %id, "batch cancelled");
    Ok(Json(view::object(batch, jobs.get(&id))))
}
