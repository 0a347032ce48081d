//! Anthropic Messages (`POST {base}/v1/messages`), translated to and from the router's
//! OpenAI-shaped types: system messages become the top-level `system`, `max_tokens` is
//! always sent, `stop` becomes `stop_sequences`, text blocks are joined, stop reasons and
//! usage are renamed.

use super::http;
use super::sse::{SseEvent, SseReader};
use super::{ChatChunk, ChatMessage, ChatRequest, ChatResponse, ProviderError, Usage};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The API version this translation is written against.
const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the caller set none.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// A client for one Anthropic endpoint.
#[derive(Debug, Clone)]
pub struct Anthropic {
    /// The full messages URL, computed once.
    url: String,
    api_key: Option<Secret>,
    http: reqwest::Client,
}

impl Anthropic {
    pub fn new(base_url: &str, api_key: Option<Secret>, http: reqwest::Client) -> Self {
        Self {
            url: http::endpoint_url(base_url, "/v1/messages"),
            api_key,
            http,
        }
    }

    /// The POST of `wire` to the Messages API, with the version and the key headers.
    fn post(&self, wire: &WireRequest) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut request = self
            .http
            .post(&self.url)
            .header("anthropic-version", API_VERSION)
            .json(wire);
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", http::secret_header(key.expose())?);
        }
        Ok(request)
    }

    /// One attempt, bounded by `timeout` from sending to the last byte of the answer.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let key = self.api_key.as_ref();
        let request = self.post(&WireRequest::from(req))?;
        let body = http::execute(request, timeout, key).await?;
        Ok(http::decode::<WireResponse>(&body, key)?.into_neutral())
    }

    /// One streaming attempt (`stream: true`), bounded by `timeout` up to the response
    /// head.
    pub async fn stream(
        &self,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<EventStream, ProviderError> {
        let key = self.api_key.as_ref();
        let mut wire = WireRequest::from(req);
        wire.stream = true;
        let request = self.post(&wire)?;
        let response = http::open(request, timeout, key).await?;
        Ok(EventStream {
            reader: SseReader::new(response),
            key: self.api_key.clone(),
            state: StreamState::default(),
        })
    }
}

/// An Anthropic Messages event stream: `message_start`, content block events,
/// `message_delta` (stop reason, usage), `message_stop`; `ping` and `error` anywhere.
#[derive(Debug)]
pub struct EventStream {
    reader: SseReader,
    key: Option<Secret>,
    state: StreamState,
}

/// What the events so far said.
#[derive(Debug, Default)]
struct StreamState {
    id: String,
    model: String,
    /// Prompt tokens, from `message_start`.
    input: WireUsage,
    done: bool,
}

impl EventStream {
    pub async fn next(&mut self) -> Option<Result<ChatChunk, ProviderError>> {
        while !self.state.done {
            let event = match self.reader.next().await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    return self.fail(ProviderError::Connect(
                        "the stream closed before message_stop".into(),
                    ))
                }
                Err(e) => return self.fail(e),
            };
            match self.state.apply(&event, self.key.as_ref()) {
                Ok(Some(chunk)) => return Some(Ok(chunk)),
                Ok(None) => {}
                Err(e) => return self.fail(e),
            }
        }
        None
    }

    fn fail(&mut self, error: ProviderError) -> Option<Result<ChatChunk, ProviderError>> {
        self.state.done = true;
        Some(Err(error))
    }
}

#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: Option<WireStart>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireStart {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

impl StreamState {
    /// Takes one event; gives a chunk when it carries text or the end of the answer.
    fn apply(
        &mut self,
        event: &SseEvent,
        key: Option<&Secret>,
    ) -> Result<Option<ChatChunk>, ProviderError> {
        let wire: WireEvent = http::decode(event.data.as_bytes(), key)?;
        let kind = if event.event.is_empty() {
            wire.kind.as_str()
        } else {
            event.event.as_str()
        };
        match kind {
            "message_start" => {
                if let Some(start) = wire.message {
                    self.id = start.id;
                    self.model = start.model;
                    self.input = start.usage;
                }
                Ok(None)
            }
            "content_block_delta" => Ok(wire
                .delta
                .filter(|d| d.kind == "text_delta" && !d.text.is_empty())
                .map(|d| self.chunk(d.text, None, None))),
            "message_delta" => Ok(Some(self.end_chunk(wire))),
            "message_stop" => {
                self.done = true;
                Ok(None)
            }
            "error" => Err(stream_error(wire.error, key)),
            _ => Ok(None),
        }
    }

    /// The stop reason and the usage: prompt tokens from the start, output from here.
    fn end_chunk(&mut self, wire: WireEvent) -> ChatChunk {
        let stop_reason = wire.delta.and_then(|d| d.stop_reason);
        let output = wire.usage.map_or(0, |u| u.output_tokens);
        let mut usage = std::mem::take(&mut self.input).into_neutral();
        usage.completion_tokens = output;
        let finish = finish_reason(stop_reason.as_deref()).to_owned();
        self.chunk(String::new(), Some(finish), Some(usage))
    }

    fn chunk(&self, delta: String, finish: Option<String>, usage: Option<Usage>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            model: self.model.clone(),
            delta,
            finish_reason: finish,
            usage,
        }
    }
}

/// An `error` event as the status Anthropic would have answered with.
fn stream_error(error: Option<WireError>, key: Option<&Secret>) -> ProviderError {
    let (kind, message) = error.map_or((String::new(), String::new()), |e| (e.kind, e.message));
    let status = match kind.as_str() {
        "overloaded_error" => 529,
        "rate_limit_error" => 429,
        "invalid_request_error" => 400,
        _ => 500,
    };
    let message = http::clean(&message, key);
    ProviderError::Status {
        status,
        retry_after: None,
        message: if message.is_empty() {
            format!("the stream sent an error event ({kind})")
        } else {
            message
        },
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

impl<'a> From<&'a ChatRequest> for WireRequest<'a> {
    fn from(req: &'a ChatRequest) -> Self {
        Self {
            model: &req.model,
            system: system_prompt(&req.messages),
            messages: req.messages.iter().filter_map(turn).collect(),
            max_tokens: req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            temperature: req.temperature,
            top_p: req.top_p,
            stop_sequences: &req.stop,
            stream: false,
        }
    }
}

fn is_system(m: &ChatMessage) -> bool {
    matches!(m.role.as_str(), "system" | "developer")
}

/// All system (and OpenAI `developer`) messages, in order, one paragraph each.
fn system_prompt(messages: &[ChatMessage]) -> Option<String> {
    let parts: Vec<&str> = messages
        .iter()
        .filter(|m| is_system(m))
        .map(|m| m.content.as_str())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// A conversation turn; Anthropic knows only `user` and `assistant`.
fn turn(m: &ChatMessage) -> Option<WireMessage<'_>> {
    let role = match m.role.as_str() {
        _ if is_system(m) => return None,
        "assistant" => "assistant",
        _ => "user",
    };
    Some(WireMessage {
        role,
        content: &m.content,
    })
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize, Default, Debug)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
}

impl WireResponse {
    fn into_neutral(self) -> ChatResponse {
        let content = self
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .map(|b| b.text.as_str())
            .collect();
        ChatResponse {
            id: self.id,
            model: self.model,
            content,
            finish_reason: finish_reason(self.stop_reason.as_deref()).into(),
            usage: self.usage.into_neutral(),
        }
    }
}

impl WireUsage {
    /// Cached prompt tokens are prompt tokens too; Anthropic counts them apart.
    fn into_neutral(self) -> Usage {
        let cached = self.cache_creation_input_tokens.unwrap_or(0)
            + self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: self.input_tokens.saturating_add(cached),
            completion_tokens: self.output_tokens,
        }
    }
}

/// Anthropic's stop reasons in OpenAI's vocabulary.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn system_moves_to_the_top_and_max_tokens_defaults() {
        let req = ChatRequest {
            model: "claude-3-5-haiku-latest".into(),
            messages: vec![
                msg("system", "be brief"),
                msg("user", "hi"),
                msg("assistant", "hello"),
                msg("developer", "no emoji"),
                msg("user", "again"),
            ],
            stop: vec!["END".into()],
            ..ChatRequest::default()
        };
        let json = serde_json::to_value(WireRequest::from(&req)).unwrap();
        assert_eq!(
            json,
            json!({"model": "claude-3-5-haiku-latest", "system": "be brief\n\nno emoji",
                "max_tokens": 1024, "stop_sequences": ["END"],
                "messages": [{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "again"}]})
        );
    }

    #[test]
    fn response_joins_text_and_renames() {
        let body = json!({"id": "msg_1", "type": "message", "model": "claude",
            "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t"},
                {"type": "text", "text": "b"}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 4}});
        let wire: WireResponse = serde_json::from_value(body).unwrap();
        let r = wire.into_neutral();
        assert_eq!(
            (r.content.as_str(), r.finish_reason.as_str()),
            ("ab", "tool_calls")
        );
        assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (7, 2));
    }

    #[test]
    fn stream_events_map_to_chunks() {
        let mut state = StreamState::default();
        let mut apply = |event: &str, data: serde_json::Value| {
            let e = SseEvent {
                event: event.into(),
                data: data.to_string(),
            };
            state.apply(&e, None)
        };
        let start = json!({"type": "message_start", "message": {"id": "msg_1",
            "model": "claude", "usage": {"input_tokens": 7, "output_tokens": 1}}});
        assert_eq!(apply("message_start", start), Ok(None));
        assert_eq!(apply("ping", json!({"type": "ping"})), Ok(None));
        let delta = json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Hel"}});
        let chunk = apply("content_block_delta", delta).unwrap().unwrap();
        assert_eq!((chunk.id.as_str(), chunk.delta.as_str()), ("msg_1", "Hel"));
        let end = json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 5}});
        let last = apply("message_delta", end).unwrap().unwrap();
        assert_eq!(last.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            last.usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 5
            })
        );
        let error = json!({"type": "error", "error": {"type": "overloaded_error",
            "message": "Overloaded"}});
        assert!(matches!(
            apply("error", error),
            Err(ProviderError::Status { status: 529, .. })
        ));
        assert_eq!(
            apply("message_stop", json!({"type": "message_stop"})),
            Ok(None)
        );
        assert!(state.done);
    }

    #[test]
    fn stop_reasons() {
        let f = finish_reason;
        assert_eq!(f(Some("end_turn")), "stop");
        assert_eq!(f(Some("stop_sequence")), "stop");
        assert_eq!(f(Some("max_tokens")), "length");
        assert_eq!(f(Some("tool_use")), "tool_calls");
        assert_eq!(f(Some("refusal")), "content_filter");
        assert_eq!(f(None), "stop");
    }
}
