//! LLM providers: one contract, one module per wire format. The router's lingua franca is
//! OpenAI's JSON, kept whole ([`request`]): OpenAI-format endpoints get the caller's body
//! with only `model` changed, and Anthropic's wire format never leaves its module.
//!
//! - `openai`: Chat Completions (`/v1/chat/completions`) and Embeddings (`/v1/embeddings`);
//!   also Azure OpenAI, vLLM, Ollama, Together, Groq and the simulated provider.
//! - `anthropic`: Messages API (`/v1/messages`), translated both ways.

use serde::{Deserialize, Serialize};
use std::time::Duration;

pub mod assemble;
mod request;
pub use request::{Api, ChatChunk, Invalid, LlmRequest, LlmResponse, Usage};

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
    /// The endpoint cannot do what the request asks (caught by the router before sending
    /// wherever it can be).
    #[error("{0}")]
    Unsupported(String),
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
            ProviderError::Decode(_) | ProviderError::Unsupported(_) => FailureKind::Fatal,
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

    /// The same client, dropping parameters its API cannot honour instead of refusing
    /// the request (the endpoint's `drop-unsupported-params`).
    pub fn dropping_unsupported(self, drop: bool) -> Self {
        match self {
            Provider::Anthropic(p) if drop => Provider::Anthropic(p.dropping_unsupported()),
            other => other,
        }
    }

    /// One attempt: sends `req` and waits at most `timeout` for the whole answer.
    pub async fn call(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<LlmResponse, ProviderError> {
        match (self, req.api()) {
            (Provider::Openai(p), Api::Chat) => p.chat(req, timeout).await,
            (Provider::Openai(p), Api::Embeddings) => p.embed(req, timeout).await,
            (Provider::Anthropic(p), Api::Chat) => p.chat(req, timeout).await,
            (Provider::Anthropic(_), Api::Embeddings) => Err(ProviderError::Unsupported(
                "Anthropic has no embeddings API".into(),
            )),
        }
    }

    /// Why this endpoint cannot honour `req` as written, if it cannot: the router then
    /// tries a target that can, or refuses the request naming the parameter.
    pub fn refusal(&self, req: &LlmRequest) -> Option<String> {
        match (self, req.api()) {
            (Provider::Openai(_), _) => None,
            (Provider::Anthropic(_), Api::Embeddings) => {
                Some("Anthropic endpoints cannot embed (Anthropic has no embeddings API)".into())
            }
            (Provider::Anthropic(p), Api::Chat) => p.refusal(req),
        }
    }

    /// One streaming attempt: sends `req` asking for a stream and waits at most `timeout`
    /// for the response head. A failure here is an ordinary [`ProviderError`]; failures
    /// while reading come out of [`ChatStream::next`].
    pub async fn stream(
        &self,
        req: &LlmRequest,
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

// One per open stream, never moved in a hot loop: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
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
