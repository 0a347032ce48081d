//! OpenAI Chat Completions (`POST {base}/v1/chat/completions`), and every server that
//! speaks it: vLLM, Ollama, Together, Groq, the simulated provider.
//!
//! Azure OpenAI works through its v1 API (base `https://RESOURCE.openai.azure.com/openai`,
//! the deployment name as the model); the older `deployments/{name}?api-version=` URLs and
//! the `api-key` header are deliberately not modelled.

use super::http;
use super::{ChatMessage, ChatRequest, ChatResponse, ProviderError, Usage};
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

    /// One attempt, bounded by `timeout` from sending to the last byte of the answer.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let key = self.api_key.as_ref();
        let mut request = self.http.post(&self.url).json(&WireRequest::from(req));
        if let Some(key) = key {
            let value = http::secret_header(&format!("Bearer {}", key.expose()))?;
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let body = http::execute(request, timeout, key).await?;
        http::decode::<WireResponse>(&body, key)?.into_neutral()
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
