//! OpenAI Chat Completions (`POST {base}/v1/chat/completions`), and every server that
//! speaks it: vLLM, Ollama, Together, Groq, the simulated provider.
//!
//! Azure OpenAI works through its v1 API (base `https://RESOURCE.openai.azure.com/openai`,
//! the deployment name as the model); the older `deployments/{name}?api-version=` URLs and
//! the `api-key` header are deliberately not modelled.

use super::http;
use super::sse::SseReader;
use super::{ChatChunk, LlmRequest, LlmResponse, ProviderError};
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// A client for one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAi {
    /// The full chat-completions and embeddings URLs, computed once.
    chat_url: String,
    embeddings_url: String,
    api_key: Option<Secret>,
    http: reqwest::Client,
}

impl OpenAi {
    pub fn new(base_url: &str, api_key: Option<Secret>, http: reqwest::Client) -> Self {
        Self {
            chat_url: http::endpoint_url(base_url, "/v1/chat/completions"),
            embeddings_url: http::endpoint_url(base_url, "/v1/embeddings"),
            api_key,
            http,
        }
    }

    /// The POST of `body` to `url`, with the key as a bearer token if there is one.
    fn post(
        &self,
        url: &str,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut request = self.http.post(url).json(body);
        if let Some(key) = &self.api_key {
            let value = http::secret_header(&format!("Bearer {}", key.expose()))?;
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        Ok(request)
    }

    /// One attempt, bounded by `timeout` from sending to the last byte of the answer.
    /// The caller's body goes as it is (a `stream` flag aside: this is the whole answer).
    pub async fn chat(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<LlmResponse, ProviderError> {
        let key = self.api_key.as_ref();
        let request = self.post(&self.chat_url, &WholeAnswer(req.body()))?;
        let bytes = http::execute(request, timeout, key).await?;
        let answer: Value = http::decode(&bytes, key)?;
        match answer.get("choices").and_then(Value::as_array) {
            Some(choices) if !choices.is_empty() => Ok(LlmResponse::new(answer)),
            _ => Err(ProviderError::Decode("the response has no choices".into())),
        }
    }

    /// One embeddings call, the body as the caller wrote it.
    pub async fn embed(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<LlmResponse, ProviderError> {
        let key = self.api_key.as_ref();
        let request = self.post(&self.embeddings_url, req.body())?;
        let bytes = http::execute(request, timeout, key).await?;
        let answer: Value = http::decode(&bytes, key)?;
        if !answer.get("data").is_some_and(Value::is_array) {
            return Err(ProviderError::Decode(
                "the response has no `data` list".into(),
            ));
        }
        Ok(LlmResponse::new(answer))
    }

    /// One streaming attempt, bounded by `timeout` up to the response head. Asks for
    /// usage (limits and metrics need it) whatever the caller's `stream_options` say.
    pub async fn stream(
        &self,
        req: &LlmRequest,
        timeout: Duration,
    ) -> Result<EventStream, ProviderError> {
        let key = self.api_key.as_ref();
        let request = self.post(&self.chat_url, &stream_body(req))?;
        let response = http::open(request, timeout, key).await?;
        Ok(EventStream {
            reader: SseReader::new(response),
            key: self.api_key.clone(),
            finished: false,
            done: false,
        })
    }
}

/// The caller's body without its stream fields, serialized in place (the request path is
/// hot; no copy of the body is made).
struct WholeAnswer<'a>(&'a Map<String, Value>);

impl serde::Serialize for WholeAnswer<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self
            .0
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "stream" | "stream_options"));
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The caller's body with `stream: true` and `stream_options.include_usage: true`, the
/// caller's other stream options kept.
fn stream_body(req: &LlmRequest) -> Map<String, Value> {
    let mut body = req.body().clone();
    body.insert("stream".into(), Value::Bool(true));
    let options = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    if let Value::Object(options) = options {
        options.insert("include_usage".into(), Value::Bool(true));
    }
    body
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
            let body = match http::decode::<Value>(event.data.as_bytes(), self.key.as_ref()) {
                Ok(body) => body,
                Err(e) => return self.fail(e),
            };
            if let Some(error) = body.get("error").filter(|e| !e.is_null()) {
                let error =
                    serde_json::from_value::<WireStreamError>(error.clone()).unwrap_or_default();
                return self.fail(error.into_neutral(self.key.as_ref()));
            }
            let chunk = ChatChunk::new(body);
            self.finished |= chunk.finishes();
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

/// An error sent inside the stream (`data: {"error": {...}}`).
#[derive(Deserialize, Default)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Api;
    use serde_json::json;

    #[test]
    fn stream_requests_ask_for_usage_and_keep_the_rest() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_obfuscation": false}, "n": 2});
        let Value::Object(body) = body else {
            unreachable!()
        };
        let req = LlmRequest::new(Api::Chat, body).expect("valid");
        let sent = Value::Object(stream_body(&req));
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["stream_options"]["include_obfuscation"], false);
        assert_eq!(sent["n"], 2);
    }

    #[test]
    fn whole_answers_are_asked_without_stream_fields() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stream": true, "stream_options": {"include_usage": true}, "seed": 7});
        let Value::Object(body) = body else {
            unreachable!()
        };
        let sent = serde_json::to_value(WholeAnswer(&body)).unwrap_or_default();
        assert_eq!(
            sent,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 7})
        );
    }

    #[test]
    fn stream_errors_are_statuses() {
        let error: WireStreamError =
            serde_json::from_value(json!({"message": "overloaded", "type": "server_error"}))
                .unwrap_or_default();
        assert!(matches!(
            error.into_neutral(None),
            ProviderError::Status { status: 500, .. }
        ));
        let limited: WireStreamError =
            serde_json::from_value(json!({"message": "slow down", "code": "rate_limit_exceeded"}))
                .unwrap_or_default();
        assert!(matches!(
            limited.into_neutral(None),
            ProviderError::Status { status: 429, .. }
        ));
    }
}
