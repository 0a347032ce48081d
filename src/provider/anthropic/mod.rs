//! Anthropic Messages (`POST {base}/v1/messages`). The caller's OpenAI request is
//! translated on the way out and the answer (whole or streamed) on the way back, by
//! [`translate`]; nothing else in the router sees Anthropic's format.

pub mod translate;

use super::http;
use super::sse::SseReader;
use super::{ChatChunk, LlmRequest, LlmResponse, ProviderError};
use crate::secret::Secret;
use serde_json::{Map, Value};
use std::time::Duration;
use translate::{ResponseContext, StreamFromAnthropic, Unhonoured};

/// The API version this translation is written against.
const API_VERSION: &str = "2023-06-01";

/// A client for one Anthropic endpoint.
#[derive(Debug, Clone)]
pub struct Anthropic {
    /// The full messages URL, computed once.
    url: String,
    api_key: Option<Secret>,
    http: reqwest::Client,
    /// What to do with OpenAI parameters Anthropic cannot honour.
    unhonoured: Unhonoured,
}

impl Anthropic {
    pub fn new(base_url: &str, api_key: Option<Secret>, http: reqwest::Client) -> Self {
        Self {
            url: http::endpoint_url(base_url, "/v1/messages"),
            api_key,
            http,
            unhonoured: Unhonoured::Refuse,
        }
    }

    /// Drops the parameters Anthropic cannot honour instead of refusing the request.
    pub fn dropping_unsupported(mut self) -> Self {
        self.unhonoured = Unhonoured::Drop;
        self
    }

    /// Why this endpoint cannot honour `req`, if it cannot (a parameter Anthropic lacks,
    /// unless the endpoint is configured to drop such parameters).
    pub fn refusal(&self, req: &LlmRequest) -> Option<String> {
        if matches!(self.unhonoured, Unhonoured::Drop) {
            return None;
        }
        let unhonoured = translate::unhonoured_parameters(req.body());
        if unhonoured.is_empty() {
            return None;
        }
        let list = unhonoured
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "Anthropic endpoints cannot honour {list} (set drop_unsupported_params on the endpoint to drop such parameters instead)"
        ))
    }

    /// The Messages body for `req`, and what reading the answer needs to know.
    fn translate(
        &self,
        req: &LlmRequest,
        stream: bool,
    ) -> Result<(Map<String, Value>, ResponseContext), ProviderError> {
        let out = translate::request_to_anthropic(req.body(), req.model(), stream, self.unhonoured)
            .map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        Ok((out.body, out.context))
    }

    /// The POST of `body` to the Messages API, with the version and the key headers.
    fn post(&self, body: &Map<String, Value>) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut request = self
            .http
            .post(&self.url)
            .header("anthropic-version", API_VERSION)
            .json(body);
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", http::secret_header(key.expose())?);
        }
        Ok(request)
    }

    /// One attempt, bounded by `timeout` from sending to the last byte of the answer.
    pub async fn chat(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<LlmResponse, ProviderError> {
        let key = self.api_key.as_ref();
        let (body, context) = self.translate(req, false)?;
        let bytes = http::execute(self.post(&body)?, timeout, key).await?;
        let answer: Value = http::decode(&bytes, key)?;
        let openai = translate::response_from_anthropic(&answer, &context)
            .map_err(|e| reply_error(&e, key))?;
        Ok(LlmResponse::new(openai))
    }

    /// One streaming attempt (`stream: true`), bounded by `timeout` up to the response
    /// head.
    pub async fn stream(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<EventStream, ProviderError> {
        let key = self.api_key.as_ref();
        let (body, context) = self.translate(req, true)?;
        let response = http::open(self.post(&body)?, timeout, key).await?;
        Ok(EventStream {
            reader: SseReader::new(response),
            key: self.api_key.clone(),
            translator: StreamFromAnthropic::new(context),
            pending: std::collections::VecDeque::new(),
            done: false,
        })
    }
}

/// An Anthropic Messages event stream read as OpenAI chunks: `message_start`, content
/// block events, `message_delta` (stop reason, usage), `message_stop`; `ping` and
/// `error` anywhere.
#[derive(Debug)]
pub struct EventStream {
    reader: SseReader,
    key: Option<Secret>,
    translator: StreamFromAnthropic,
    /// Chunks translated from one event and not yet handed out.
    pending: std::collections::VecDeque<Value>,
    done: bool,
}

impl EventStream {
    pub async fn next(&mut self) -> Option<Result<ChatChunk, ProviderError>> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                let chunk = ChatChunk::new(chunk);
                if chunk.is_empty() {
                    continue;
                }
                return Some(Ok(chunk));
            }
            if self.done {
                return None;
            }
            let event = match self.reader.next().await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    return self.fail(ProviderError::Connect(
                        "the stream closed before message_stop".into(),
                    ))
                }
                Err(e) => return self.fail(e),
            };
            let data: Value = match http::decode(event.data.as_bytes(), self.key.as_ref()) {
                Ok(data) => data,
                Err(e) => return self.fail(e),
            };
            if data.get("type").and_then(Value::as_str) == Some("message_stop")
                || event.event == "message_stop"
            {
                self.done = true;
            }
            match self.translator.event(&data) {
                Ok(chunks) => self.pending.extend(chunks),
                Err(e) => return self.fail(reply_error(&e, self.key.as_ref())),
            }
        }
    }

    fn fail(&mut self, error: ProviderError) -> Option<Result<ChatChunk, ProviderError>> {
        self.done = true;
        self.pending.clear();
        Some(Err(error))
    }
}

/// An Anthropic `error` (event or body) as the status Anthropic would have answered
/// with; a reply that cannot be read is a decode error.
fn reply_error(error: &translate::ReplyError, key: Option<&Secret>) -> ProviderError {
    let (kind, message) = match error {
        translate::ReplyError::Upstream { kind, message } => (kind, message),
        translate::ReplyError::Malformed(why) => return ProviderError::Decode(why.clone()),
    };
    let status = match kind.as_str() {
        "overloaded_error" => 529,
        "rate_limit_error" => 429,
        "invalid_request_error" => 400,
        _ => 500,
    };
    let message = http::clean(message, key);
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
