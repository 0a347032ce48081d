//! One delivery of one batch line: what it becomes (a result, a delayed retry, a dead
//! letter, a dropped line of a cancelled job) and whether its message may be acked.
//!
//! The rule that makes a crash lose nothing: whatever a line produces is stored on the
//! broker first; only then is the line acked. A crash in between delivers the line again,
//! and the collector drops the duplicate result by custom_id.

use super::metrics::{self, Outcome};
use super::results::Store;
use crate::kubemq::QueueMessage;
use crate::protocol::batch::OutputLine;
use crate::protocol::batch::{self as job, tag};
use crate::protocol::tags::PIN_MODEL_TAG;
use crate::routing::{BatchFailure, Router};
use crate::worker::wire::{self, Mode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Where a line's message goes after this delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Whatever it produced is stored: ack it.
    Ack,
    /// Untried: put it back at the tail as it is.
    Requeue,
    /// Nothing could be stored: leave it unsettled, so it comes back.
    Leave,
}

/// What a line task needs.
pub struct Context<'a> {
    pub router: &'a Router,
    pub store: &'a Store,
    pub route: &'a str,
    /// Whether the line's job was cancelled.
    pub cancelled: &'a (dyn Fn(&str) -> bool + Sync),
    /// Longest wait for capacity once a line is in hand.
    pub reserve_wait: Duration,
    /// Longest provider call.
    pub call_timeout: Duration,
}

/// The tags a line carries, read once.
struct Line<'a> {
    job: &'a str,
    custom_id: &'a str,
    attempts: u32,
    max_attempts: u32,
}

impl<'a> Line<'a> {
    fn of(m: &'a QueueMessage) -> Option<Self> {
        let tags = &m.tags;
        let job = tags.get(tag::JOB).map(String::as_str)?;
        let custom_id = tags.get(tag::CUSTOM_ID).map(String::as_str)?;
        if !job::is_job_id(job) || custom_id.is_empty() {
            return None;
        }
        let number = |k: &str, default: u32| {
            tags.get(k)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(default)
        };
        Some(Self {
            job,
            custom_id,
            attempts: number(tag::ATTEMPTS, 0),
            max_attempts: number(tag::MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS).max(1),
        })
    }
}

/// Attempts per line when the message does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Handles one delivered line.
pub async fn handle(cx: &Context<'_>, m: &QueueMessage) -> Settle {
    let _in_flight = metrics::InFlight::start(cx.route);
    let Some(line) = Line::of(m) else {
        return unreadable(cx, m).await;
    };
    let receive_count = m.attributes.as_ref().map_or(1, |a| a.receive_count);
    if line.attempts > 0 || receive_count > 1 {
        metrics::redelivery(cx.route);
    }
    let (settle, outcome) = fate(cx, m, &line).await;
    if settle != Settle::Leave {
        metrics::item(cx.route, line.job, outcome);
    }
    settle
}

async fn fate(cx: &Context<'_>, m: &QueueMessage, line: &Line<'_>) -> (Settle, Outcome) {
    if (cx.cancelled)(line.job) {
        return cancelled(cx, m, line).await;
    }
    let request = match wire::api(&m.tags).and_then(|api| wire::decode(Mode::Json, api, &m.body)) {
        Ok(r) => r,
        Err(e) => {
            let out = OutputLine::http_error(
                line.custom_id,
                &m.message_id,
                400,
                error_body(&e.to_string(), "invalid_request_error", "bad_request"),
            );
            return (stored(cx, output(m, line, &out)).await, Outcome::Failed);
        }
    };
    // The model the file named (the submitter's reading of `body.model`), if any.
    let pin = m.tags.get(PIN_MODEL_TAG).map(String::as_str);
    if let Some(refused) = cx.router.refusal_pinned(cx.route, &request, pin) {
        let out = OutputLine::http_error(
            line.custom_id,
            &m.message_id,
            400,
            error_body(
                &refused.to_string(),
                "invalid_request_error",
                "unsupported_parameter",
            ),
        );
        return (stored(cx, output(m, line, &out)).await, Outcome::Failed);
    }
    let deadline = Instant::now() + cx.reserve_wait;
    let Some(reservation) = cx
        .router
        .reserve_pinned(cx.route, &request, deadline, pin)
        .await
    else {
        return (Settle::Requeue, Outcome::Requeued);
    };
    // The wait for capacity can be long; a cancel that came meanwhile still drops the line.
    if (cx.cancelled)(line.job) {
        drop(reservation);
        return cancelled(cx, m, line).await;
    }
    match cx
        .router
        .complete_reserved(reservation, request, cx.call_timeout)
        .await
    {
        Ok(done) => {
            let body = wire::success_body(Mode::Json, done, unix_seconds());
            let out = OutputLine::ok(line.custom_id, &m.message_id, body);
            (stored(cx, output(m, line, &out)).await, Outcome::Ok)
        }
        Err(failure) if !failure.retryable => {
            let out = OutputLine::http_error(
                line.custom_id,
                &m.message_id,
                failure.status.unwrap_or(400),
                error_body(
                    &failure.message,
                    "invalid_request_error",
                    "upstream_rejected",
                ),
            );
            (stored(cx, output(m, line, &out)).await, Outcome::Failed)
        }
        Err(failure) => retry_or_dead_letter(cx, m, line, &failure).await,
    }
}

/// A line of a cancelled job: dropped, with a marker so the collector can account for it.
async fn cancelled(cx: &Context<'_>, m: &QueueMessage, line: &Line<'_>) -> (Settle, Outcome) {
    let marker = result(
        m,
        line,
        "cancelled",
        json!({"custom_id": line.custom_id, "cancelled": true}),
    );
    (stored(cx, marker).await, Outcome::Cancelled)
}

/// A retryable failure: the line goes back with a delay, or, after its last allowed
/// attempt, to the job's dead-letter queue with the reason.
async fn retry_or_dead_letter(
    cx: &Context<'_>,
    m: &QueueMessage,
    line: &Line<'_>,
    failure: &BatchFailure,
) -> (Settle, Outcome) {
    let attempts = line.attempts + 1;
    let mut copy = resend(m, attempts);
    if attempts >= line.max_attempts {
        copy.channel = job::dead_letter_queue(line.job);
        copy.tags.insert(
            tag::ERROR.to_owned(),
            format!("{} (after {attempts} attempts)", failure.message),
        );
        return (stored(cx, copy).await, Outcome::DeadLettered);
    }
    copy.channel = job::line_queue(cx.route);
    let delay = failure.retry_after.unwrap_or_else(|| backoff(attempts));
    let policy = copy.policy.get_or_insert_with(Default::default);
    policy.delay_seconds = i32::try_from(delay.as_secs_f64().ceil() as u64)
        .unwrap_or(MAX_DELAY_SECONDS)
        .clamp(1, MAX_DELAY_SECONDS);
    (stored(cx, copy).await, Outcome::Retried)
}

/// Longest delay KubeMQ accepts.
const MAX_DELAY_SECONDS: i32 = 43_200;

/// Delay before retry `n` (1-based) when the provider named none: 1 s doubling to 60 s,
/// jittered so a burst of failures does not come back as a burst.
fn backoff(n: u32) -> Duration {
    let base = Duration::from_secs(1u64 << n.saturating_sub(1).min(6)).min(Duration::from_secs(60));
    base.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

/// A fresh copy of the line for its next attempt, with its attempts so far.
fn resend(m: &QueueMessage, attempts: u32) -> QueueMessage {
    let mut tags = m.tags.clone();
    tags.insert(tag::ATTEMPTS.to_owned(), attempts.to_string());
    QueueMessage {
        channel: m.channel.clone(),
        metadata: m.metadata.clone(),
        body: m.body.clone(),
        tags,
        policy: m
            .policy
            .as_ref()
            .map(|p| crate::kubemq::QueueMessagePolicy {
                max_receive_count: p.max_receive_count,
                max_receive_queue: p.max_receive_queue.clone(),
                ..Default::default()
            }),
        ..QueueMessage::default()
    }
}

/// A line nobody can report on (no job or custom_id tag): kept, not lost, in the route's
/// dead-letter queue for a person to look at.
async fn unreadable(cx: &Context<'_>, m: &QueueMessage) -> Settle {
    tracing::warn!(route = cx.route, message_id = %m.message_id, "batch line without job and custom-id tags, moved to {}", invalid_queue(cx.route));
    let mut copy = resend(m, 0);
    copy.channel = invalid_queue(cx.route);
    metrics::item(cx.route, "", Outcome::DeadLettered);
    stored(cx, copy).await
}

/// Where lines that are not ours go.
pub fn invalid_queue(route: &str) -> String {
    format!("{}.invalid", job::line_queue(route))
}

fn output(m: &QueueMessage, line: &Line<'_>, out: &OutputLine) -> QueueMessage {
    let outcome = if out.is_error() { "error" } else { "ok" };
    let body = serde_json::to_value(out).unwrap_or(Value::Null);
    result(m, line, outcome, body)
}

fn result(m: &QueueMessage, line: &Line<'_>, outcome: &str, body: Value) -> QueueMessage {
    let mut tags = HashMap::new();
    tags.insert(tag::JOB.to_owned(), line.job.to_owned());
    tags.insert(tag::CUSTOM_ID.to_owned(), line.custom_id.to_owned());
    if let Some(n) = m.tags.get(tag::LINE) {
        tags.insert(tag::LINE.to_owned(), n.clone());
    }
    tags.insert(tag::OUTCOME.to_owned(), outcome.to_owned());
    QueueMessage {
        channel: job::results_queue(line.job),
        metadata: line.custom_id.to_owned(),
        body: body.to_string().into_bytes(),
        tags,
        ..QueueMessage::default()
    }
}

fn error_body(message: &str, kind: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "code": code}})
}

async fn stored(cx: &Context<'_>, message: QueueMessage) -> Settle {
    match cx.store.store(vec![message]).await {
        Ok(()) => Settle::Ack,
        Err(e) => {
            tracing::warn!(
                route = cx.route,
                "batch result not stored, the line will come back: {e}"
            );
            Settle::Leave
        }
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        for n in 1..10 {
            let d = backoff(n);
            let base = Duration::from_secs(1u64 << (n - 1).min(6)).min(Duration::from_secs(60));
            assert!(d >= base / 2 && d <= base, "retry {n}: {d:?} vs {base:?}");
        }
    }

    #[test]
    fn tags_are_read_with_defaults() {
        let mut m = QueueMessage::default();
        assert!(Line::of(&m).is_none());
        m.tags.insert(tag::JOB.into(), job::new_job_id());
        m.tags.insert(tag::CUSTOM_ID.into(), "a".into());
        let line = Line::of(&m).map(|l| (l.attempts, l.max_attempts));
        assert_eq!(line, Some((0, DEFAULT_MAX_ATTEMPTS)));
        m.tags.insert(tag::ATTEMPTS.into(), "2".into());
        m.tags.insert(tag::MAX_ATTEMPTS.into(), "0".into());
        let line = Line::of(&m).map(|l| (l.attempts, l.max_attempts));
        assert_eq!(line, Some((2, 1)));
        m.tags.insert(tag::JOB.into(), "../etc".into());
        assert!(Line::of(&m).is_none());
    }

    #[test]
    fn a_resent_line_keeps_its_identity_and_counts_attempts() {
        let mut m = QueueMessage {
            channel: "llm-router.batch.r".into(),
            metadata: "a".into(),
            body: b"{}".to_vec(),
            message_id: "m1".into(),
            ..QueueMessage::default()
        };
        m.tags.insert(tag::CUSTOM_ID.into(), "a".into());
        m.policy = Some(crate::kubemq::QueueMessagePolicy {
            max_receive_count: 5,
            max_receive_queue: "dlq".into(),
            delay_seconds: 9,
            ..Default::default()
        });
        let copy = resend(&m, 3);
        assert_eq!(copy.tags.get(tag::ATTEMPTS).map(String::as_str), Some("3"));
        assert_eq!(copy.tags.get(tag::CUSTOM_ID).map(String::as_str), Some("a"));
        assert!(copy.message_id.is_empty(), "a new send gets a new id");
        let policy = copy.policy.unwrap_or_default();
        assert_eq!((policy.max_receive_count, policy.delay_seconds), (5, 0));
        assert_eq!(copy.body, m.body);
    }
}
