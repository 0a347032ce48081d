//! The sim's OpenAI wire format: Chat Completions (parsing and validation in `request`,
//! whole answers in `answer`, SSE chunks in `stream`, token logprobs in `logprobs`) and
//! the pieces every OpenAI route shares: the key header, error bodies, usage.

mod answer;
mod logprobs;
mod request;
mod stream;

pub(super) use answer::answer;
pub(super) use request::parse;
pub(super) use stream::stream_frames;

use super::digest;
use super::echo::Finish;
use super::prompt::Rejection;
use super::reply::Reply;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The key from `Authorization: Bearer KEY`.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let (kind, code) = match status.as_u16() {
        400 | 404 | 422 => ("invalid_request_error", Value::Null),
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("requests", json!("rate_limit_exceeded")),
        _ => ("server_error", Value::Null),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}

/// A 400 naming the offending parameter, as OpenAI's validation does.
pub(super) fn invalid(r: &Rejection) -> Response {
    let body = json!({"error": {"message": r.message, "type": "invalid_request_error",
        "param": r.param, "code": r.code}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// OpenAI's finish reason for how the answer ended.
fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::End | Finish::StopSequence(_) => "stop",
        Finish::Length => "length",
        Finish::ToolUse => "tool_calls",
    }
}

/// The usage object, with the detail counters the sim never spends (no cache, no
/// reasoning) at 0 so that clients reading them find numbers.
fn usage(reply: &Reply) -> Value {
    let completion = reply.completion_tokens();
    json!({
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": reply.prompt_tokens.saturating_add(completion),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

/// A stable fingerprint per model: the sim's "backend configuration" never changes.
fn fingerprint(model: &str) -> String {
    format!("fp_{:010x}", digest::fnv1a(model.as_bytes()) >> 24)
}

/// `call_` and 24 hex digits: a tool call's id.
fn call_id(key: u64) -> String {
    digest::id("call_", key)
}
