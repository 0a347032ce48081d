//! The sim's Anthropic Messages wire format: request parsing (strict where Anthropic is:
//! `max_tokens` required, no `system` role among the messages), answers, error bodies.

use super::echo::{Completion, Finish, Prompt};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Request {
    model: String,
    #[serde(default)]
    system: Option<Content>,
    messages: Vec<Message>,
    max_tokens: u32,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Content,
}

/// A string, or an array of blocks of which the text ones count.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
struct Block {
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn text(self) -> String {
        match self {
            Content::Text(t) => t,
            Content::Blocks(blocks) => blocks.into_iter().filter_map(|b| b.text).collect(),
        }
    }
}

/// The key from `x-api-key`.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

pub(super) fn parse(body: &[u8]) -> Result<Prompt, String> {
    let req: Request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut prompt = Prompt {
        model: req.model,
        max_tokens: Some(req.max_tokens),
        stop: req.stop_sequences,
        stream: req.stream,
        texts: req.system.map(Content::text).into_iter().collect(),
        ..Prompt::default()
    };
    for m in req.messages {
        let user = match m.role.as_str() {
            "user" => true,
            "assistant" => false,
            other => return Err(format!("messages: Unexpected role \"{other}\"; use the top-level `system` parameter for system prompts")),
        };
        let text = m.content.text();
        if user {
            prompt.last_user.clone_from(&text);
        }
        prompt.texts.push(text);
    }
    Ok(prompt)
}

pub(super) fn answer(n: u64, prompt: &Prompt, c: Completion) -> Response {
    let (stop_reason, stop_sequence) = stop(&c.finish);
    Json(json!({
        "id": format!("msg_sim_{n}"),
        "type": "message",
        "role": "assistant",
        "model": prompt.model,
        "content": [{"type": "text", "text": c.text}],
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {"input_tokens": c.prompt_tokens, "output_tokens": c.completion_tokens},
    }))
    .into_response()
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

/// One SSE frame: `event: NAME` and its JSON.
fn event(name: &str, data: &serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The streamed answer as SSE frames sent apart: `message_start` (with the first text
/// delta), one `content_block_delta` per piece, then the block's end, `message_delta` and
/// `message_stop`; or, when `cut`, a few deltas and an `error` event.
pub(super) fn stream_frames(n: u64, prompt: &Prompt, c: &Completion, cut: bool) -> Vec<String> {
    let start = json!({"type": "message_start", "message": {
        "id": format!("msg_sim_{n}"), "type": "message", "role": "assistant",
        "model": prompt.model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": c.prompt_tokens, "output_tokens": 1}}});
    let block = json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}});
    let head = event("message_start", &start)
        + &event("content_block_start", &block)
        + &event("ping", &json!({"type": "ping"}));
    let pieces = super::echo::pieces(&c.text);
    let mut frames: Vec<String> = pieces
        .iter()
        .map(|piece| {
            let delta = json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}});
            event("content_block_delta", &delta)
        })
        .collect();
    if let Some(first) = frames.first_mut() {
        first.insert_str(0, &head);
    }
    if cut {
        frames.truncate(super::stream::cut_after(pieces.len()));
        let error = json!({"type": "error", "error": {"type": "overloaded_error",
            "message": "injected mid-stream failure"}});
        frames.push(event("error", &error));
        return frames;
    }
    let (stop_reason, stop_sequence) = stop(&c.finish);
    let end = event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ) + &event(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": c.completion_tokens}}),
    ) + &event("message_stop", &json!({"type": "message_stop"}));
    if let Some(last) = frames.last_mut() {
        last.push_str(&end);
    }
    frames
}

/// Anthropic's stop reason and stop sequence for how the answer ended.
fn stop(finish: &Finish) -> (&'static str, Option<String>) {
    match finish {
        Finish::End => ("end_turn", None),
        Finish::Length => ("max_tokens", None),
        Finish::StopSequence(s) => ("stop_sequence", Some(s.clone())),
    }
}
