//! The wire format on route channels: how a request body becomes a [`LlmRequest`] and
//! how an outcome becomes a response body.
//!
//! - Seed mode (default, the article's): a plain UTF-8 prompt in; `{"response": text}` out,
//!   or `{"error": text}` with `Executed=false`.
//! - JSON mode (tag `content-type: application/json`, or Metadata `application/json`): an
//!   OpenAI chat-completions request in; an OpenAI chat completion out, with an
//!   `llm_router` extension field naming the endpoint and the attempts.

use crate::config::models::{ModelError, ModelNames, ModelRoute};
use crate::provider::{Api, LlmRequest};
use crate::routing::{Completion, MidStreamError, RouteError};
use serde_json::{json, Value};
use std::collections::HashMap;

pub use crate::protocol::tags::{tag, API_TAG, JSON_CONTENT_TYPE, PIN_MODEL_TAG, REQUEST_ID_TAG};
use crate::protocol::FailureCode;

/// The API a query's tags name; chat when they name none.
pub fn api(tags: &HashMap<String, String>) -> Result<Api, BodyError> {
    crate::protocol::tags::api(tags).map_err(BodyError::UnknownApi)
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
    #[error("request body is not a valid OpenAI {api} request: {message}")]
    BadJson { api: &'static str, message: String },
    #[error("unknown API '{0}' in the llm-router-api tag: use chat or embeddings")]
    UnknownApi(String),
    #[error("embeddings cannot be sent as plain text: send an OpenAI embeddings request tagged content-type: application/json and llm-router-api: embeddings")]
    EmbeddingsNeedJson,
    #[error("embeddings do not stream: drop the stream tag")]
    EmbeddingsDoNotStream,
}

/// Reads a request body in `mode` for `api`.
pub fn decode(mode: Mode, api: Api, body: &[u8]) -> Result<LlmRequest, BodyError> {
    match (mode, api) {
        (Mode::Seed, Api::Chat) => decode_prompt(body),
        (Mode::Seed, Api::Embeddings) => Err(BodyError::EmbeddingsNeedJson),
        (Mode::Json, api) => LlmRequest::from_slice(api, body).map_err(|e| BodyError::BadJson {
            api: api.name(),
            message: e.message,
        }),
    }
}

/// Where a query goes. The gateway's pin tag says it all; otherwise a JSON body's
/// `model` is read as everywhere else (the channel's `route` first among the routes that
/// serve a model), and a body without one, or a seed prompt, stays on `route`.
pub fn destination(
    names: &ModelNames,
    route: &str,
    tags: &HashMap<String, String>,
    req: &LlmRequest,
) -> Result<ModelRoute, ModelError> {
    let stay = |pin: Option<&str>| ModelRoute {
        route: route.to_owned(),
        pin: pin.map(str::to_owned),
    };
    if let Some(pin) = tag(tags, PIN_MODEL_TAG) {
        return Ok(stay(Some(pin)));
    }
    match req.model() {
        "" => Ok(stay(None)),
        model => names.resolve(model, Some(route)),
    }
}

fn decode_prompt(body: &[u8]) -> Result<LlmRequest, BodyError> {
    let prompt = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    if prompt.trim().is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(LlmRequest::prompt(prompt))
}

/// Why a request failed: its body, or the route.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The body's `model` names no route, pin or served model.
    #[error(transparent)]
    Model(#[from] ModelError),
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
        self.failure_code().as_str()
    }

    pub fn failure_code(&self) -> FailureCode {
        match self {
            Failure::Body(_) => FailureCode::BadRequest,
            Failure::Route(RouteError::UnknownRoute(_))
            | Failure::Model(ModelError::Unknown { .. }) => FailureCode::UnknownRoute,
            Failure::Model(ModelError::NotOnRoute { .. }) => FailureCode::UnknownModel,
            Failure::Route(RouteError::UnknownModel { .. }) => FailureCode::UnknownModel,
            Failure::Route(RouteError::BadRequest { .. }) => FailureCode::BadRequest,
            Failure::Route(RouteError::RateLimited { .. }) => FailureCode::RateLimited,
            Failure::Route(RouteError::AllFailed {
                timed_out: true, ..
            }) => FailureCode::UpstreamTimeout,
            Failure::Route(RouteError::AllFailed { .. }) => FailureCode::UpstreamFailed,
            Failure::MidStream(_) => FailureCode::MidStreamError,
            Failure::Cancelled => FailureCode::Cancelled,
            Failure::Publish(_) => FailureCode::StreamFailed,
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
pub fn encode(mode: Mode, outcome: Result<Completion, Failure>, created: i64) -> Reply {
    match outcome {
        Ok(done) => Reply {
            executed: true,
            error: String::new(),
            body: serde_json::to_vec(&success_body(mode, done, created)).unwrap_or_default(),
        },
        Err(failure) => Reply {
            executed: false,
            error: failure.to_string(),
            body: failure_body(mode, &failure).to_string().into_bytes(),
        },
    }
}

/// The answer body of a completion in `mode`, as JSON (the batch path embeds it in an
/// output line without a round trip through bytes): the seed's `{"response": text}`, or
/// the provider's answer whole (taken, not copied) with the `llm_router` extension.
pub fn success_body(mode: Mode, done: Completion, created: i64) -> Value {
    match mode {
        Mode::Seed => json!({ "response": done.response.text() }),
        Mode::Json => {
            let mut body = done.response.body;
            if let Value::Object(map) = &mut body {
                if map.contains_key("choices")
                    && !map
                        .get("created")
                        .and_then(Value::as_i64)
                        .is_some_and(|c| c > 0)
                {
                    map.insert("created".into(), json!(created));
                }
                map.insert(
                    "llm_router".into(),
                    json!({ "endpoint": done.endpoint, "attempts": done.attempts }),
                );
            }
            body
        }
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
    use crate::provider::LlmResponse;

    fn completion() -> Completion {
        Completion {
            response: LlmResponse::new(json!({
                "id": "c1", "object": "chat.completion", "model": "m", "system_fingerprint": "fp",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                    "message": {"role": "assistant", "content": "hi there", "refusal": null}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                    "prompt_tokens_details": {"cached_tokens": 1}},
            })),
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
    fn api_from_tags() {
        let mut tags = HashMap::new();
        assert_eq!(api(&tags), Ok(Api::Chat));
        tags.insert(API_TAG.into(), "embeddings".into());
        assert_eq!(api(&tags), Ok(Api::Embeddings));
        tags.insert(API_TAG.into(), "images".into());
        assert!(matches!(api(&tags), Err(BodyError::UnknownApi(_))));
    }

    #[test]
    fn seed_round_trip() {
        let req = decode(Mode::Seed, Api::Chat, "What is KubeMQ?".as_bytes()).expect("prompt");
        assert_eq!(req.messages()[0]["content"], "What is KubeMQ?");
        let reply = encode(Mode::Seed, Ok(completion()), 0);
        assert!(reply.executed);
        assert_eq!(body(&reply), json!({"response": "hi there"}));
        assert_eq!(
            decode(Mode::Seed, Api::Embeddings, b"x"),
            Err(BodyError::EmbeddingsNeedJson)
        );
    }

    #[test]
    fn seed_bad_bodies() {
        assert_eq!(
            decode(Mode::Seed, Api::Chat, &[0xff, 0xfe]),
            Err(BodyError::NotUtf8)
        );
        assert_eq!(decode(Mode::Seed, Api::Chat, b"  "), Err(BodyError::Empty));
        let reply = encode(Mode::Seed, Err(BodyError::NotUtf8.into()), 0);
        assert!(!reply.executed);
        assert!(reply.error.contains("UTF-8"));
        assert_eq!(body(&reply)["error"], json!(reply.error));
    }

    #[test]
    fn json_answers_pass_whole_with_the_extension() {
        let req = decode(
            Mode::Json,
            Api::Chat,
            br#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stop":"\n","seed":7}"#,
        )
        .expect("valid");
        assert_eq!(req.model(), "x");
        assert_eq!(req.body()["seed"], 7);
        let reply = encode(Mode::Json, Ok(completion()), 42);
        let b = body(&reply);
        assert_eq!(b["object"], "chat.completion");
        assert_eq!(b["created"], 42);
        assert_eq!(b["system_fingerprint"], "fp");
        assert_eq!(b["choices"][0]["message"]["content"], "hi there");
        assert_eq!(b["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        assert_eq!(b["llm_router"]["endpoint"], "sim");
    }

    #[test]
    fn json_bad_bodies() {
        assert!(matches!(
            decode(Mode::Json, Api::Chat, b"{not json"),
            Err(BodyError::BadJson { .. })
        ));
        assert!(matches!(
            decode(Mode::Json, Api::Chat, br#"{"messages":[]}"#),
            Err(BodyError::BadJson { .. })
        ));
        let failure = Failure::Route(RouteError::UnknownRoute("nope".into()));
        let reply = encode(Mode::Json, Err(failure), 0);
        assert_eq!(body(&reply)["error"]["code"], "unknown_route");
    }
}
