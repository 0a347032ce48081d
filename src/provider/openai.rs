//! OpenAI Chat Completions (`POST {base}/v1/chat/completions`), and every server that
//! speaks it: vLLM, Ollama, Together, Groq, the simulated provider.
//!
//! Azure OpenAI works through its v1 API (base `https://RESOURCE.openai.azure.com/openai`,
//! the deployment name as the model); the older `deployments/{name}?api-version=` URLs and
//! the `api-key` header are deliberately not modelled.

use super::http;
use super::sse::SseReader;
use super::{ChatChunk, ChatMessage, ChatRequest, ChatResponse, ProviderError, Usage};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A client for one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAi {
    /// The full chat-completions URL, computed once.
    url: String,
    api_key: Option<Secret>,
    http: reqwest::Client,
}

impl OpenAi {
    pub fn new(base_url: &str, api_key: Option<Secret>, http: reqwest::Client) -> Self {
        Self {
            url: http::endpoint_url(base_url, "/v1/chat/completions"),
            api_key,
            http,
        }
    }

    /// The POST of `wire` to the endpoint, with the key as a bearer token if there is one.
    fn post(&self, wire: &WireRequest) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut request = self.http.post(&self.url).json(wire);
        if let Some(key) = &self.api_key {
            let value = http::secret_header(&format!("Bearer {}", key.expose()))?;
            request = request.header(reqwest::header::AUTHORIZATION, value);
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
        http::decode::<WireResponse>(&body, key)?.into_neutral()
    }

    /// One streaming attempt (`stream: true`, usage included), bounded by `timeout` up
    /// to the response head.
    pub async fn stream(
        &self,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<EventStream, ProviderError> {
        let key = self.api_key.as_ref();
        let mut wire = WireRequest::from(req);
        wire.stream = true;
        wire.stream_options = Some(StreamOptions {
            include_usage: true,
        });
        let request = self.post(&wire)?;
        let response = http::open(request, timeout, key).await?;
        Ok(EventStream {
            reader: SseReader::new(response),
            key: self.api_key.clone(),
            finished: false,
            done: false,
        })
    }
}

/// An OpenAI SSE stream: `data: {chunk}` events, then `data: [DONE]`.
#[derive(Debug)]
pub struct EventStream {
    reader: SseReader,
    key: Option<Secret>,
    /// A chunk carried a finish reason, so a close without `[DONE]` lost nothing.
    finished: bool,
    /// The stream ended (cleanly or not); nothing more comes.
    done: bool,
}

impl EventStream {
    pub async fn next(&mut self) -> Option<Result<ChatChunk, ProviderError>> {
        while !self.done {
            let event = match self.reader.next().await {
                Ok(Some(event)) => event,
                Ok(None) => return self.closed(),
                Err(e) => return self.fail(e),
            };
            if event.data.trim() == "[DONE]" {
                self.done = true;
                return None;
            }
            let wire = match http::decode::<WireChunk>(event.data.as_bytes(), self.key.as_ref()) {
                Ok(wire) => wire,
                Err(e) => return self.fail(e),
            };
            if let Some(error) = wire.error {
                return self.fail(error.into_neutral(self.key.as_ref()));
            }
            let chunk = wire.into_neutral();
            self.finished |= chunk.finish_reason.is_some();
            if !chunk.is_empty() {
                return Some(Ok(chunk));
            }
        }
        None
    }

    fn closed(&mut self) -> Option<Result<ChatChunk, ProviderError>> {
        if self.finished {
            self.done = true;
            return None;
        }
        self.fail(ProviderError::Connect(
            "the stream closed before the answer was finished".into(),
        ))
    }

    fn fail(&mut self, error: ProviderError) -> Option<Result<ChatChunk, ProviderError>> {
        self.done = true;
        Some(Err(error))
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireStreamError>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: WireDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
}

/// An error sent inside the stream (`data: {"error": {...}}`).
#[derive(Deserialize)]
struct WireStreamError {
    #[serde(default)]
    message: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

impl WireStreamError {
    /// A rate-limit error is a 429, the rest are the server's trouble (500).
    fn into_neutral(self, key: Option<&Secret>) -> ProviderError {
        let code = self.code.as_ref().and_then(|c| c.as_str()).unwrap_or("");
        let limited = code == "rate_limit_exceeded" || self.kind.as_deref() == Some("requests");
        let message = http::clean(&self.message, key);
        ProviderError::Status {
            status: if limited { 429 } else { 500 },
            retry_after: None,
            message: if message.is_empty() {
                "the provider sent an error in the stream".into()
            } else {
                message
            },
        }
    }
}

impl WireChunk {
    fn into_neutral(self) -> ChatChunk {
        let choice = self.choices.into_iter().next();
        let (delta, finish_reason) = match choice {
            Some(c) => (c.delta.content.unwrap_or_default(), c.finish_reason),
            None => (String::new(), None),
        };
        ChatChunk {
            id: self.id,
            model: self.model,
            delta,
            finish_reason,
            usage: self.usage.map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            }),
        }
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'a str,
    content: &'a str,
}

impl<'a> From<&'a ChatRequest> for WireRequest<'a> {
    fn from(req: &'a ChatRequest) -> Self {
        Self {
            model: &req.model,
            messages: req.messages.iter().map(WireMessage::from).collect(),
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            stop: &req.stop,
            stream: false,
            stream_options: None,
        }
    }
}

impl<'a> From<&'a ChatMessage> for WireMessage<'a> {
    fn from(m: &'a ChatMessage) -> Self {
        Self {
            role: &m.role,
            content: &m.content,
        }
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireAnswer,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireAnswer {
    /// `null` when the model answered with tool calls only.
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl WireResponse {
    fn into_neutral(self) -> Result<ChatResponse, ProviderError> {
        let choice = self
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::Decode("the response has no choices".into()))?;
        let usage = self.usage.map_or(Usage::default(), |u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        });
        Ok(ChatResponse {
            id: self.id,
            model: self.model,
            content: choice.message.content.unwrap_or_default(),
            finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".into()),
            usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_only_set_fields() {
        let req = ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            max_tokens: Some(5),
            ..ChatRequest::default()
        };
        let json = serde_json::to_value(WireRequest::from(&req)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}]})
        );
    }

    #[test]
    fn chunks_map_text_finish_usage_and_errors() {
        let c = |json: &str| serde_json::from_str::<WireChunk>(json).unwrap();
        let first = c(r#"{"id":"x","model":"m","choices":[{"index":0,
            "delta":{"role":"assistant","content":""},"finish_reason":null}]}"#);
        assert!(first.into_neutral().is_empty());
        let text = c(r#"{"id":"x","model":"m","choices":[{"delta":{"content":"Hi"}}]}"#);
        assert_eq!(text.into_neutral().delta, "Hi");
        let last = c(r#"{"id":"x","choices":[{"delta":{},"finish_reason":"length"}]}"#);
        assert_eq!(last.into_neutral().finish_reason.as_deref(), Some("length"));
        let usage =
            c(r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#);
        assert_eq!(
            usage.into_neutral().usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            })
        );
        let error = c(r#"{"error":{"message":"overloaded","type":"server_error"}}"#);
        let error = error.error.unwrap().into_neutral(None);
        assert!(matches!(error, ProviderError::Status { status: 500, .. }));
    }

    #[test]
    fn stream_requests_ask_for_usage() {
        let req = ChatRequest::default();
        let mut wire = WireRequest::from(&req);
        wire.stream = true;
        wire.stream_options = Some(StreamOptions {
            include_usage: true,
        });
        let json = serde_json::to_value(wire).unwrap();
        assert_eq!(json["stream"], true);
        assert_eq!(json["stream_options"]["include_usage"], true);
    }

    #[test]
    fn response_maps_and_tolerates_nulls() {
        let body = br#"{"id":"x","model":"m","choices":[{"index":0,
            "message":{"role":"assistant","content":null},"finish_reason":"tool_calls"}]}"#;
        let wire: WireResponse = serde_json::from_slice(body).unwrap();
        let r = wire.into_neutral().unwrap();
        assert_eq!(
            (r.content.as_str(), r.finish_reason.as_str()),
            ("", "tool_calls")
        );
        assert_eq!(r.usage, Usage::default());
        let empty: WireResponse = serde_json::from_slice(br#"{"choices":[]}"#).unwrap();
        assert!(matches!(
            empty.into_neutral(),
            Err(ProviderError::Decode(_))
        ));
    }
}
