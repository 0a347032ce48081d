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
    let (stop_reason, stop_sequence) = match c.finish {
        Finish::End => ("end_turn", None),
        Finish::Length => ("max_tokens", None),
        Finish::StopSequence(s) => ("stop_sequence", Some(s)),
    };
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
