//! The wire format on route channels: how a request body becomes a [`ChatRequest`] and
//! how an outcome becomes a response body.
//!
//! - Seed mode (default, the article's): a plain UTF-8 prompt in; `{"response": text}` out,
//!   or `{"error": text}` with `Executed=false`.
//! - JSON mode (tag `content-type: application/json`, or Metadata `application/json`): an
//!   OpenAI chat-completions request in; an OpenAI chat completion out, with an
//!   `llm_router` extension field naming the endpoint and the attempts.

use crate::provider::{ChatMessage, ChatRequest};
use crate::routing::{Completion, MidStreamError, RouteError};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The content type that selects JSON mode.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Query tag: only the route's targets with this model may answer (`route/model`).
pub const PIN_MODEL_TAG: &str = "llm-router-pin-model";
/// Query tag: the caller's request id, for the logs.
pub const REQUEST_ID_TAG: &str = "x-request-id";

/// A tag's value, the name compared without regard to case; empty counts as absent.
pub fn tag<'a>(tags: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// How a request's body is to be read and its answer written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Seed,
    Json,
}

impl Mode {
    /// JSON mode when tagged `content-type: application/json` (any case, parameters
    /// allowed) or when Metadata says `application/json`.
    pub fn of(tags: &HashMap<String, String>, metadata: &str) -> Self {
        let tagged = tags
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && is_json(v));
        if tagged || is_json(metadata) {
            Mode::Json
        } else {
            Mode::Seed
        }
    }
}

fn is_json(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(JSON_CONTENT_TYPE)
}

/// Why a request body could not be read; the text is what the caller sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is not valid UTF-8: send the prompt as plain UTF-8 text, or an OpenAI chat request tagged content-type: application/json")]
    NotUtf8,
    #[error("request body is empty: send a prompt")]
    Empty,
    #[error("request body is not a valid OpenAI chat request: {0}")]
    BadJson(String),
}

/// Reads a request body in `mode`.
pub fn decode(mode: Mode, body: &[u8]) -> Result<ChatRequest, BodyError> {
    match mode {
        Mode::Seed => decode_prompt(body),
        Mode::Json => decode_chat(body),
    }
}

fn decode_prompt(body: &[u8]) -> Result<ChatRequest, BodyError> {
    let prompt = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    if prompt.trim().is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(ChatRequest {
        messages: vec![ChatMessage {
            role: "user".to_owned(),
            content: prompt.to_owned(),
        }],
        ..ChatRequest::default()
    })
}

fn decode_chat(body: &[u8]) -> Result<ChatRequest, BodyError> {
    // ChatRequest itself takes OpenAI's looser shapes (`stop` as one string or null).
    let request: ChatRequest =
        serde_json::from_slice(body).map_err(|e| BodyError::BadJson(e.to_string()))?;
    if request.messages.is_empty() {
        return Err(BodyError::BadJson("`messages` is empty".to_owned()));
    }
    Ok(request)
}

/// Why a request failed: its body, or the route.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The stream broke after its first chunk; no other target may take over.
    #[error(transparent)]
    MidStream(#[from] MidStreamError),
    #[error("the caller cancelled the stream")]
    Cancelled,
    #[error("cannot publish the stream's chunks through the broker: {0}")]
    Publish(String),
}

impl Failure {
    /// A stable, payload-free code for JSON error bodies and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Body(_) => "bad_request",
            Failure::Route(RouteError::UnknownRoute(_)) => "unknown_route",
            Failure::Route(RouteError::UnknownModel { .. }) => "unknown_model",
            Failure::Route(RouteError::BadRequest { .. }) => "bad_request",
            Failure::Route(RouteError::RateLimited { .. }) => "rate_limited",
            Failure::Route(RouteError::AllFailed { .. }) => "upstream_failed",
            Failure::MidStream(_) => "mid_stream_error",
            Failure::Cancelled => "cancelled",
            Failure::Publish(_) => "stream_failed",
        }
    }

    pub fn publish(error: crate::kubemq::client::Error) -> Self {
        Failure::Publish(error.to_string())
    }
}

/// A response body and whether it reports success.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub executed: bool,
    pub error: String,
    pub body: Vec<u8>,
}

/// Writes the answer to a request in `mode`. `created` is the Unix time in seconds.
pub fn encode(mode: Mode, outcome: &Result<Completion, Failure>, created: i64) -> Reply {
    match outcome {
        Ok(done) => Reply {
            executed: true,
            error: String::new(),
            body: success_body(mode, done, created).to_string().into_bytes(),
        },
        Err(failure) => Reply {
            executed: false,
            error: failure.to_string(),
            body: failure_body(mode, failure).to_string().into_bytes(),
        },
    }
}

/// The answer body of a completion in `mode`, as JSON (the batch path embeds it in an
/// output line without a round trip through bytes).
pub fn success_body(mode: Mode, done: &Completion, created: i64) -> Value {
    let r = &done.response;
    match mode {
        Mode::Seed => json!({ "response": r.content }),
        Mode::Json => json!({
            "id": r.id,
            "object": "chat.completion",
            "created": created,
            "model": r.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": r.content },
                "finish_reason": r.finish_reason,
            }],
            "usage": {
                "prompt_tokens": r.usage.prompt_tokens,
                "completion_tokens": r.usage.completion_tokens,
                "total_tokens": r.usage.prompt_tokens + r.usage.completion_tokens,
            },
            "llm_router": { "endpoint": done.endpoint, "attempts": done.attempts },
        }),
    }
}

fn failure_body(mode: Mode, failure: &Failure) -> Value {
    match mode {
        Mode::Seed => json!({ "error": failure.to_string() }),
        Mode::Json => failure_json(failure),
    }
}

/// OpenAI's error shape, so OpenAI-style clients can read it.
pub fn failure_json(failure: &Failure) -> Value {
    json!({
        "error": {
            "message": failure.to_string(),
            "type": "llm_router_error",
            "code": failure.code(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ChatResponse, Usage};

    fn completion() -> Completion {
        Completion {
            response: ChatResponse {
                id: "c1".into(),
                model: "m".into(),
                content: "hi there".into(),
                finish_reason: "stop".into(),
                usage: Usage {
                    prompt_tokens: 3,
                    completion_tokens: 2,
                },
            },
            endpoint: "sim".into(),
            attempts: 1,
        }
    }

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
    }

    #[test]
    fn mode_from_tags_or_metadata() {
        let mut tags = HashMap::new();
        assert_eq!(Mode::of(&tags, ""), Mode::Seed);
        assert_eq!(Mode::of(&tags, "application/json"), Mode::Json);
        tags.insert(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        );
        assert_eq!(Mode::of(&tags, ""), Mode::Json);
        tags.insert("Content-Type".into(), "text/plain".into());
        assert_eq!(Mode::of(&tags, ""), Mode::Seed);
    }

    #[test]
    fn seed_round_trip() {
        let req = decode(Mode::Seed, "What is KubeMQ?".as_bytes());
        assert_eq!(
            req.map(|r| r.messages[0].content.clone()).ok().as_deref(),
            Some("What is KubeMQ?")
        );
        let reply = encode(Mode::Seed, &Ok(completion()), 0);
        assert!(reply.executed);
        assert_eq!(body(&reply), json!({"response": "hi there"}));
    }

    #[test]
    fn seed_bad_bodies() {
        assert_eq!(decode(Mode::Seed, &[0xff, 0xfe]), Err(BodyError::NotUtf8));
        assert_eq!(decode(Mode::Seed, b"  "), Err(BodyError::Empty));
        let reply = encode(Mode::Seed, &Err(BodyError::NotUtf8.into()), 0);
        assert!(!reply.executed);
        assert!(reply.error.contains("UTF-8"));
        assert_eq!(body(&reply)["error"], json!(reply.error));
    }

    #[test]
    fn json_round_trip() {
        let req = decode(
            Mode::Json,
            br#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stop":"\n","stream":false}"#,
        );
        let req = req.unwrap_or_default();
        assert_eq!(req.model, "x");
        assert_eq!(req.stop, vec!["\n".to_owned()]);
        let reply = encode(Mode::Json, &Ok(completion()), 42);
        let b = body(&reply);
        assert_eq!(b["object"], "chat.completion");
        assert_eq!(b["created"], 42);
        assert_eq!(b["choices"][0]["message"]["content"], "hi there");
        assert_eq!(b["usage"]["total_tokens"], 5);
        assert_eq!(b["llm_router"]["endpoint"], "sim");
    }

    #[test]
    fn json_bad_bodies() {
        assert!(matches!(
            decode(Mode::Json, b"{not json"),
            Err(BodyError::BadJson(_))
        ));
        assert!(matches!(
            decode(Mode::Json, br#"{"messages":[]}"#),
            Err(BodyError::BadJson(_))
        ));
        let failure = Failure::Route(RouteError::UnknownRoute("nope".into()));
        let reply = encode(Mode::Json, &Err(failure), 0);
        assert_eq!(body(&reply)["error"]["code"], "unknown_route");
    }
}
