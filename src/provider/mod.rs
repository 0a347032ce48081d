//! LLM providers: one contract, one file per wire format. Provider JSON never leaves the
//! provider's own file; the rest of the router sees only the neutral types below.
//!
//! - `openai`: Chat Completions (`/v1/chat/completions`); also Azure OpenAI, vLLM, Ollama,
//!   Together, Groq and the simulated provider, which speak the same format.
//! - `anthropic`: Messages API (`/v1/messages`), translated both ways.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One chat message, provider-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// A chat request in the OpenAI chat-completions shape, the router's lingua franca.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The provider's model name (the route decides it; callers may pin one). Null
    /// reads as empty.
    #[serde(default, deserialize_with = "lenient::model")]
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Read from a list, one string or null, as OpenAI accepts.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::stop"
    )]
    pub stop: Vec<String>,
}

/// Token counts read from every provider response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// A completed chat, provider-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The provider's response id.
    pub id: String,
    /// The model that answered, as the provider reports it.
    pub model: String,
    pub content: String,
    /// OpenAI's vocabulary: `stop`, `length`, `content_filter`, `tool_calls`.
    pub finish_reason: String,
    pub usage: Usage,
}

/// One piece of a streamed answer, provider-neutral.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatChunk {
    /// The provider's response id (the same on every chunk of one answer).
    pub id: String,
    pub model: String,
    /// The text this chunk adds.
    pub delta: String,
    /// Set on the last chunk, in OpenAI's vocabulary.
    pub finish_reason: Option<String>,
    /// Set when the provider reported it (OpenAI: a last chunk with no choices;
    /// Anthropic: `message_delta`).
    pub usage: Option<Usage>,
}

impl ChatChunk {
    /// Whether the chunk says anything (providers send role-only and keep-alive chunks).
    pub fn is_empty(&self) -> bool {
        self.delta.is_empty() && self.finish_reason.is_none() && self.usage.is_none()
    }
}

/// Why one call to one endpoint failed. Payload-free classification lives in
/// [`ProviderError::kind`]; the texts never contain keys.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("timed out after {}s", .0.as_secs_f32())]
    Timeout(Duration),
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        /// From the `Retry-After` header (seconds or HTTP date), when the provider sent one.
        retry_after: Option<Duration>,
        /// The provider's error message, shortened; never the request or a key.
        message: String,
    },
    #[error("unreadable response: {0}")]
    Decode(String),
}

/// What the router does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connect errors, timeouts, 408, 429, 5xx: retry this endpoint with backoff.
    Retryable,
    /// 401/403: this endpoint will not work; move to the next target at once.
    NextTarget,
    /// 400/404/422 and unreadable responses: the request itself is wrong; fail now.
    Fatal,
}

impl ProviderError {
    pub fn kind(&self) -> FailureKind {
        match self {
            ProviderError::Connect(_) | ProviderError::Timeout(_) => FailureKind::Retryable,
            ProviderError::Status { status, .. } => match status {
                408 | 429 | 500..=599 => FailureKind::Retryable,
                401 | 403 => FailureKind::NextTarget,
                _ => FailureKind::Fatal,
            },
            ProviderError::Decode(_) => FailureKind::Fatal,
        }
    }

    /// The provider's own advice on when to try again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub mod anthropic;
pub(crate) mod http;
pub use http::client as http_client;
mod lenient;
pub mod openai;
pub mod sse;

use crate::secret::Secret;

/// Which wire format an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI Chat Completions, and every compatible server.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// The built-in simulated provider (`llm-router sim-provider`), OpenAI format over HTTP.
    Sim,
}

/// A provider client for one endpoint. A closed set, so an enum, not a trait object.
#[derive(Debug, Clone)]
pub enum Provider {
    Openai(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
}

impl Provider {
    /// A client for `base_url` (e.g. `https://api.openai.com`, `http://127.0.0.1:8089`),
    /// sharing `http`'s connection pool.
    pub fn new(
        kind: ProviderKind,
        base_url: &str,
        api_key: Option<Secret>,
        http: reqwest::Client,
    ) -> Self {
        match kind {
            ProviderKind::Openai | ProviderKind::Sim => {
                Provider::Openai(openai::OpenAi::new(base_url, api_key, http))
            }
            ProviderKind::Anthropic => {
                Provider::Anthropic(anthropic::Anthropic::new(base_url, api_key, http))
            }
        }
    }

    /// One attempt: sends `req` and waits at most `timeout` for the whole answer.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        match self {
            Provider::Openai(p) => p.chat(req, timeout).await,
            Provider::Anthropic(p) => p.chat(req, timeout).await,
        }
    }
}

impl Provider {
    /// One streaming attempt: sends `req` asking for a stream and waits at most `timeout`
    /// for the response head. A failure here is an ordinary [`ProviderError`]; failures
    /// while reading come out of [`ChatStream::next`].
    pub async fn stream(
        &self,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatStream, ProviderError> {
        let inner = match self {
            Provider::Openai(p) => StreamInner::Openai(p.stream(req, timeout).await?),
            Provider::Anthropic(p) => StreamInner::Anthropic(p.stream(req, timeout).await?),
        };
        Ok(ChatStream { inner })
    }
}

/// A streamed answer being read. Dropping it closes the HTTP connection, which is how
/// an upstream call is cancelled.
#[derive(Debug)]
pub struct ChatStream {
    inner: StreamInner,
}

#[derive(Debug)]
enum StreamInner {
    Openai(openai::EventStream),
    Anthropic(anthropic::EventStream),
    /// Chunks known in advance: fakes in tests, and answers that did not stream.
    Replay(std::collections::VecDeque<Result<ChatChunk, ProviderError>>),
}

impl ChatStream {
    /// A stream that plays `items` back.
    pub fn replay(items: Vec<Result<ChatChunk, ProviderError>>) -> Self {
        Self {
            inner: StreamInner::Replay(items.into()),
        }
    }

    /// The next non-empty chunk; `None` at the clean end of the answer. An error ends
    /// the stream.
    pub async fn next(&mut self) -> Option<Result<ChatChunk, ProviderError>> {
        match &mut self.inner {
            StreamInner::Openai(s) => s.next().await,
            StreamInner::Anthropic(s) => s.next().await,
            StreamInner::Replay(items) => items.pop_front(),
        }
    }
}
