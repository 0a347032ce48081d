//! The sim's OpenAI Chat Completions wire format: request parsing, answers, error bodies.

use super::echo::{Completion, Finish, Prompt, DEFAULT_MODEL};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u32>,
    /// The newer name of `max_tokens`.
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<Stop>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// A string, or an array of parts of which the text ones count.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn text(self) -> String {
        match self {
            Content::Text(t) => t,
            Content::Parts(parts) => parts.into_iter().filter_map(|p| p.text).collect(),
        }
    }
}

/// The key from `Authorization: Bearer KEY`.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

pub(super) fn parse(body: &[u8]) -> Result<Prompt, String> {
    let req: Request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut prompt = Prompt {
        model: if req.model.is_empty() {
            DEFAULT_MODEL.into()
        } else {
            req.model
        },
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        stop: match req.stop {
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
            None => Vec::new(),
        },
        ..Prompt::default()
    };
    for m in req.messages {
        let text = m.content.map(Content::text).unwrap_or_default();
        if m.role == "user" {
            prompt.last_user.clone_from(&text);
        }
        prompt.texts.push(text);
    }
    Ok(prompt)
}

pub(super) fn answer(n: u64, prompt: &Prompt, c: Completion) -> Response {
    let finish_reason = match c.finish {
        Finish::End | Finish::StopSequence(_) => "stop",
        Finish::Length => "length",
    };
    Json(json!({
        "id": format!("chatcmpl-sim-{n}"),
        "object": "chat.completion",
        "created": super::server::unix_now(),
        "model": prompt.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": c.text},
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens.saturating_add(c.completion_tokens),
        },
    }))
    .into_response()
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let (kind, code) = match status.as_u16() {
        400 | 404 | 422 => ("invalid_request_error", serde_json::Value::Null),
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("requests", json!("rate_limit_exceeded")),
        _ => ("server_error", serde_json::Value::Null),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, Json(body)).into_response()
}
