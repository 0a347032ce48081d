//! The sim's Anthropic Messages wire format: parsing and validation in `request`, whole
//! answers in `answer`, the SSE event sequence in `stream`, and here what they share: the
//! key header, error bodies, stop reasons, content blocks and usage.

mod answer;
mod request;
mod stream;

pub(super) use answer::answer;
pub(super) use request::parse;
pub(super) use stream::stream_frames;

use super::digest;
use super::echo::Finish;
use super::reply::Content;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The key from `x-api-key`.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, Json(body)).into_response()
}

/// Anthropic's stop reason and stop sequence for how the answer ended.
fn stop(finish: &Finish) -> (&'static str, Option<String>) {
    match finish {
        Finish::End => ("end_turn", None),
        Finish::Length => ("max_tokens", None),
        Finish::StopSequence(s) => ("stop_sequence", Some(s.clone())),
        Finish::ToolUse => ("tool_use", None),
    }
}

/// The answer's content blocks, complete.
fn blocks(content: &Content) -> Vec<Value> {
    match content {
        Content::Text(text) => vec![json!({"type": "text", "text": text})],
        Content::Calls(calls) => calls
            .iter()
            .map(|c| {
                json!({"type": "tool_use", "id": digest::id("toolu_", c.key),
                "name": c.name, "input": c.arguments})
            })
            .collect(),
    }
}

/// Usage with the prompt-cache counters, which the sim never uses, at 0.
fn usage(input_tokens: u32, output_tokens: u32) -> Value {
    json!({"input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}
