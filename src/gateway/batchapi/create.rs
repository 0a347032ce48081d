//! `POST /v1/batches`: the input file is checked with the batch format's rules plus one of
//! our own (every line's `body.model` names a route, `route/model` or a served model), then queued as a
//! batch job. A file with bad lines gives a `failed` batch whose `errors.data` names every
//! line, as OpenAI does; nothing of it is queued.

use super::error::BatchApiError;
use super::files::{self, FileId};
use super::lines::{self, Checked};
use super::record::{BatchEvent, BatchRecord, LineProblem};
use super::{view, BatchApi};
use crate::batch::format::{CHAT_URL, EMBEDDINGS_URL};
use crate::batch::job::{self, JobRecord};
use crate::batch::submit::{self, SubmitOptions};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The only completion window offered (OpenAI's).
pub const COMPLETION_WINDOW: &str = "24h";
/// Provider attempts per line before it is dead-lettered (the CLI's default).
const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The request body.
#[derive(Debug, Deserialize)]
pub struct CreateBatch {
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Creates the batch and returns its object.
pub async fn create(api: &BatchApi, request: CreateBatch) -> Result<Value, BatchApiError> {
    check_request(&request)?;
    let client = api.client()?;
    let file = match files::parse_id(&request.input_file_id) {
        Some(FileId::Upload(id)) => api.file(id).await?,
        _ => None,
    }
    .ok_or_else(|| BatchApiError::NoFile(request.input_file_id.clone()))?;
    if file.purpose != "batch" {
        return Err(BatchApiError::bad_request(
            format!(
                "file {} was uploaded with purpose '{}'; upload it with purpose 'batch'",
                file.id, file.purpose
            ),
            Some("input_file_id"),
        ));
    }
    api.limits
        .check_size(file.bytes)
        .map_err(|e| BatchApiError::bad_request(e.to_string(), Some("input_file_id")))?;
    let bytes = files::content(client, &file, api.limits.max_file_bytes).await?;
    let checked = lines::check_blocking(
        bytes,
        request.endpoint.clone(),
        api.table.clone(),
        api.limits,
    )
    .await?;
    let (id, job) = match checked {
        Ok(checked) => queue(api, checked, &file.id).await?,
        Err(problems) => (job::new_job_id(), Err(problems)),
    };
    let created = BatchEvent::Created {
        batch: id.clone(),
        endpoint: request.endpoint.clone(),
        input_file_id: file.id.clone(),
        completion_window: request.completion_window.clone(),
        created_at: job::unix_seconds(),
        metadata: request.metadata.clone(),
    };
    api.record(&created).await?;
    let mut batch = BatchRecord {
        id: id.clone(),
        endpoint: request.endpoint,
        input_file_id: file.id,
        completion_window: request.completion_window,
        created_at: job::unix_seconds(),
        metadata: request.metadata,
        ..BatchRecord::default()
    };
    match job {
        Ok(job) => {
            api.collectors.ensure(client, api.queues()?, &job);
            Ok(view::object(&batch, Some(&job)))
        }
        Err(errors) => {
            let at = job::unix_seconds();
            let failed = BatchEvent::Failed {
                batch: id,
                at,
                errors: errors.clone(),
            };
            api.record(&failed).await?;
            batch.failed = Some((at, errors));
            Ok(view::object(&batch, None))
        }
    }
}

/// Queues the checked lines; returns the job id and its record. Returns once this
/// replica's jobs view holds the job, so its next read shows it in progress.
async fn queue(
    api: &BatchApi,
    checked: Checked,
    input: &str,
) -> Result<(String, Result<JobRecord, Vec<LineProblem>>), BatchApiError> {
    let options = SubmitOptions {
        route: checked.route.clone(),
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        skip_invalid: false,
        input: input.to_owned(),
    };
    let client = api.client()?;
    let done = submit::queue_lines(client, api.queues()?, &checked.lines, &options).await?;
    api.views()?.jobs.synced(client, |_| ()).await?;
    let record = JobRecord {
        id: done.job.clone(),
        route: checked.route,
        routes: done.routes,
        total: done.total,
        created_at: job::unix_seconds(),
        input: input.to_owned(),
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        ..JobRecord::default()
    };
    Ok((done.job, Ok(record)))
}

/// The fields OpenAI checks at create time (400s).
fn check_request(request: &CreateBatch) -> Result<(), BatchApiError> {
    if request.endpoint != CHAT_URL && request.endpoint != EMBEDDINGS_URL {
        return Err(BatchApiError::bad_request(
            format!(
                "endpoint '{}' is not supported: this gateway runs batches of {CHAT_URL} and {EMBEDDINGS_URL}",
                request.endpoint
            ),
            Some("endpoint"),
        ));
    }
    if request.completion_window != COMPLETION_WINDOW {
        return Err(BatchApiError::bad_request(
            format!(
                "completion_window '{}' is not supported: use '{COMPLETION_WINDOW}'",
                request.completion_window
            ),
            Some("completion_window"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fields_are_checked() {
        let request = |endpoint: &str, window: &str| CreateBatch {
            input_file_id: "file-x".into(),
            endpoint: endpoint.into(),
            completion_window: window.into(),
            metadata: None,
        };
        assert!(check_request(&request(CHAT_URL, "24h")).is_ok());
        assert!(check_request(&request(EMBEDDINGS_URL, "24h")).is_ok());
        let e = check_request(&request("/v1/completions", "24h")).err();
        assert!(matches!(
            e,
            Some(BatchApiError::BadRequest {
                param: Some("endpoint"),
                ..
            })
        ));
        let e = check_request(&request(CHAT_URL, "1h")).err();
        assert!(matches!(
            e,
            Some(BatchApiError::BadRequest {
                param: Some("completion_window"),
                ..
            })
        ));
    }
}
