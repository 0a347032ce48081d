//! Anthropic Messages (`POST {base}/v1/messages`), translated to and from the router's
//! OpenAI-shaped types: system messages become the top-level `system`, `max_tokens` is
//! always sent, `stop` becomes `stop_sequences`, text blocks are joined, stop reasons and
//! usage are renamed.

use super::http;
use super::{ChatMessage, ChatRequest, ChatResponse, ProviderError, Usage};
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

    /// One attempt, bounded by `timeout` from sending to the last byte of the answer.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let key = self.api_key.as_ref();
        let mut request = self
            .http
            .post(&self.url)
            .header("anthropic-version", API_VERSION)
            .json(&WireRequest::from(req));
        if let Some(key) = key {
            request = request.header("x-api-key", http::secret_header(key.expose())?);
        }
        let body = http::execute(request, timeout, key).await?;
        Ok(http::decode::<WireResponse>(&body, key)?.into_neutral())
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

#[derive(Deserialize, Default)]
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
