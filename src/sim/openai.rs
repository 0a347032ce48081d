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
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
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
        stream: req.stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
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
    let finish_reason = finish_reason(&c.finish);
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

/// OpenAI's finish reason for how the answer ended.
fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::End | Finish::StopSequence(_) => "stop",
        Finish::Length => "length",
    }
}

/// The streamed answer as SSE frames, one piece of text each (sent apart): chunks, the
/// finish chunk, the usage chunk when asked for, `[DONE]`; or, when `cut`, a few chunks
/// and an error.
pub(super) fn stream_frames(n: u64, prompt: &Prompt, c: &Completion, cut: bool) -> Vec<String> {
    let created = super::server::unix_now();
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let body = json!({
            "id": format!("chatcmpl-sim-{n}"),
            "object": "chat.completion.chunk",
            "created": created,
            "model": prompt.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {body}\n\n")
    };
    let pieces = super::echo::pieces(&c.text);
    let mut frames: Vec<String> = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| match i {
            0 => chunk(json!({"role": "assistant", "content": piece}), json!(null)),
            _ => chunk(json!({"content": piece}), json!(null)),
        })
        .collect();
    if cut {
        frames.truncate(super::stream::cut_after(pieces.len()));
        let error = json!({"error": {"message": "injected mid-stream failure",
            "type": "server_error", "param": null, "code": null}});
        frames.push(format!("data: {error}\n\n"));
        return frames;
    }
    let mut end = chunk(json!({}), json!(finish_reason(&c.finish)));
    if prompt.include_usage {
        let usage = json!({
            "id": format!("chatcmpl-sim-{n}"),
            "object": "chat.completion.chunk",
            "created": created,
            "model": prompt.model,
            "choices": [],
            "usage": {
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens.saturating_add(c.completion_tokens),
            },
        });
        end.push_str(&format!("data: {usage}\n\n"));
    }
    end.push_str("data: [DONE]\n\n");
    if let Some(last) = frames.last_mut() {
        last.push_str(&end);
    }
    frames
}
