//! Submitting a job: check the whole file, queue one message per line in batched sends,
//! then record the job in its history.
//!
//! Lines are queued before the job is recorded: a submit that dies half way leaves lines
//! that workers answer into a results queue nobody collects, which costs provider calls but
//! never reports a job whose lines are missing.

use super::format::{self, JobLine, LineError};
use super::history;
use super::job::{self, tag, JobEvent};
use crate::config::models::ModelNames;
use crate::kubemq::client::{Client, Error as ClientError};
use crate::kubemq::queues::QueueClient;
use crate::kubemq::{QueueMessage, QueueMessagePolicy};
use std::collections::{BTreeMap, HashMap};

/// Lines per batch send.
const SEND_CHUNK: usize = 500;

/// How a job is submitted.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// The job's route; a line's `body.model` may name another.
    pub route: String,
    /// Provider attempts per line before it is dead-lettered.
    pub max_attempts: u32,
    /// Queue the valid lines of a file that has bad ones.
    pub skip_invalid: bool,
    /// The file's name, for the status.
    pub input: String,
}

/// A queued job.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub job: String,
    pub total: u64,
    pub routes: BTreeMap<String, u64>,
    /// Bad lines left out (only with `skip_invalid`).
    pub skipped: Vec<LineError>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("unknown route '{route}': configured routes are {known}")]
    UnknownRoute { route: String, known: String },
    #[error("the file has {count} bad line(s); nothing was queued. Fix them, or pass --skip-invalid to queue the valid lines:\n{summary}")]
    Invalid { count: usize, summary: String },
    #[error("the file has no valid lines; nothing was queued:\n{summary}")]
    NothingValid { summary: String },
    #[error("the broker did not take the job: {0}")]
    Broker(#[from] ClientError),
}

/// Validates `text` and queues its lines. `names` are the configured routes and models.
pub async fn submit(
    client: &Client,
    queues: &QueueClient,
    text: &str,
    names: &ModelNames,
    options: &SubmitOptions,
) -> Result<Submitted, SubmitError> {
    if names.models_of(&options.route).is_empty() {
        return Err(SubmitError::UnknownRoute {
            route: options.route.clone(),
            known: names.route_names(),
        });
    }
    let parsed = format::parse(text, &format::job_routes(names, &options.route));
    if parsed.lines.is_empty() {
        return Err(SubmitError::NothingValid {
            summary: format::summary(&parsed.errors, usize::MAX),
        });
    }
    if !parsed.errors.is_empty() && !options.skip_invalid {
        return Err(SubmitError::Invalid {
            count: parsed.errors.len(),
            summary: format::summary(&parsed.errors, usize::MAX),
        });
    }
    let queued = queue_lines(client, queues, &parsed.lines, options).await?;
    Ok(Submitted {
        skipped: parsed.errors,
        ..queued
    })
}

/// Queues checked `lines` as a new job and records it; for callers that parsed the file
/// themselves (the gateway's Batch API), so it is parsed once.
pub async fn queue_lines(
    client: &Client,
    queues: &QueueClient,
    lines: &[JobLine],
    options: &SubmitOptions,
) -> Result<Submitted, ClientError> {
    let job = job::new_job_id();
    let mut per_route: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines {
        *per_route.entry(line.route.clone()).or_default() += 1;
    }
    for chunk in lines.chunks(SEND_CHUNK) {
        let messages = chunk
            .iter()
            .map(|line| message(&job, line, options.max_attempts))
            .collect();
        queues.send_all(messages).await?;
    }
    let total = lines.len() as u64;
    history::publish(
        client,
        &JobEvent::Submitted {
            job: job.clone(),
            route: options.route.clone(),
            routes: per_route.clone(),
            total,
            created_at: job::unix_seconds(),
            input: options.input.clone(),
            max_attempts: options.max_attempts,
        },
    )
    .await?;
    Ok(Submitted {
        job,
        total,
        routes: per_route,
        skipped: Vec::new(),
    })
}

/// One line as a queue message: the body as sent, identity (and a pinned model) in tags,
/// and a policy that dead-letters it into the job's own queue if it keeps coming back.
fn message(job: &str, line: &JobLine, max_attempts: u32) -> QueueMessage {
    let mut tags = HashMap::from([
        (tag::JOB.to_owned(), job.to_owned()),
        (tag::CUSTOM_ID.to_owned(), line.custom_id.clone()),
        (tag::LINE.to_owned(), line.line.to_string()),
        (tag::MAX_ATTEMPTS.to_owned(), max_attempts.to_string()),
        (
            crate::protocol::tags::API_TAG.to_owned(),
            line.api.name().to_owned(),
        ),
        (
            "content-type".to_owned(),
            crate::protocol::tags::JSON_CONTENT_TYPE.to_owned(),
        ),
    ]);
    if let Some(pin) = &line.pin {
        tags.insert(crate::protocol::tags::PIN_MODEL_TAG.to_owned(), pin.clone());
    }
    QueueMessage {
        channel: job::line_queue(&line.route),
        metadata: line.custom_id.clone(),
        body: line.body.to_string().into_bytes(),
        tags,
        policy: Some(QueueMessagePolicy {
            max_receive_count: i32::try_from(max_attempts)
                .unwrap_or(i32::MAX)
                .clamp(1, 1024),
            max_receive_queue: job::dead_letter_queue(job),
            ..QueueMessagePolicy::default()
        }),
        ..QueueMessage::default()
    }
}
