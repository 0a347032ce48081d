//! What travels to a provider and back: the caller's JSON, kept whole.
//!
//! A request is the OpenAI body as the caller wrote it (chat completions or embeddings),
//! every field kept, fields this version does not know included. The router reads only
//! what it needs from it (the model, message sizes for token estimates, the output cap for
//! limits) and changes only `model`. An answer is the provider's JSON in OpenAI's shape
//! (Anthropic's translated), also whole, with the usage read out for limits and metrics.

use serde_json::{json, Map, Value};

/// Which OpenAI API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Api {
    /// The OpenAI path of this API (also a batch line's `url`).
    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Embeddings => "/v1/embeddings",
        }
    }

    /// The API a batch line's `url` names.
    pub fn of_path(path: &str) -> Option<Self> {
        match path {
            "/v1/chat/completions" => Some(Api::Chat),
            "/v1/embeddings" => Some(Api::Embeddings),
            _ => None,
        }
    }

    /// The name used in tags and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Embeddings => "embeddings",
        }
    }

    pub fn of_name(name: &str) -> Option<Self> {
        match name {
            "chat" => Some(Api::Chat),
            "embeddings" => Some(Api::Embeddings),
            _ => None,
        }
    }
}

/// One request to a model, as the caller wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRequest {
    api: Api,
    body: Map<String, Value>,
}

/// Why a body is not a request of its API; the text is what the caller sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub message: String,
    /// The offending top-level field, when there is one (OpenAI's `param`).
    pub param: Option<&'static str>,
}

fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Invalid {
    Invalid {
        message: message.into(),
        param,
    }
}

impl LlmRequest {
    /// Checks the fields the router itself reads; the rest is the provider's to judge.
    pub fn new(api: Api, body: Map<String, Value>) -> Result<Self, Invalid> {
        match body.get("model") {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(_) => return Err(invalid("`model` must be a string", Some("model"))),
        }
        match api {
            Api::Chat => check_chat(&body)?,
            Api::Embeddings => check_embeddings(&body)?,
        }
        for field in ["max_tokens", "max_completion_tokens"] {
            match body.get(field) {
                None | Some(Value::Null) => {}
                Some(v) if v.as_u64().is_some() => {}
                Some(_) => {
                    return Err(invalid(
                        format!("`{field}` must be a non-negative integer"),
                        Some(field),
                    ))
                }
            }
        }
        Ok(Self { api, body })
    }

    /// Reads `bytes` as a JSON object request of `api`.
    pub fn from_slice(api: Api, bytes: &[u8]) -> Result<Self, Invalid> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not valid JSON: {e}"), None))?;
        match value {
            Value::Object(body) => Self::new(api, body),
            _ => Err(invalid(
                format!(
                    "the body must be a JSON object (an OpenAI {} request)",
                    api.name()
                ),
                None,
            )),
        }
    }

    /// A chat request of one user message.
    pub fn prompt(text: &str) -> Self {
        let body = json!({"messages": [{"role": "user", "content": text}]});
        Self {
            api: Api::Chat,
            body: match body {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// The body, as the provider gets it (OpenAI format).
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    pub fn into_body(self) -> Map<String, Value> {
        self.body
    }

    /// The model asked for; empty when the route decides.
    pub fn model(&self) -> &str {
        self.body.get("model").and_then(Value::as_str).unwrap_or("")
    }

    /// The one field the router changes: the target's model.
    pub fn set_model(&mut self, model: &str) {
        self.body
            .insert("model".to_owned(), Value::String(model.to_owned()));
    }

    /// Whether the caller asked for a stream.
    pub fn streamed(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// The cap on output tokens the caller set (`max_completion_tokens`, else the older
    /// `max_tokens`).
    pub fn max_output_tokens(&self) -> Option<u32> {
        ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|f| self.body.get(*f).and_then(Value::as_u64))
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The messages (chat), empty for embeddings.
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// Characters of text the prompt carries: message texts, tool calls and tool
    /// definitions, or the embeddings input. An image part counts as a fixed 1,000
    /// characters, about what a small image costs.
    pub fn prompt_chars(&self) -> usize {
        match self.api {
            Api::Chat => {
                let messages: usize = self.messages().iter().map(text_chars).sum();
                let tools = self.body.get("tools").map_or(0, |t| t.to_string().len());
                messages + tools
            }
            Api::Embeddings => self.body.get("input").map_or(0, input_chars),
        }
    }

    /// The body as bytes, for a provider or a queue.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

const IMAGE_CHARS: usize = 1000;

/// Text characters in one message: its role, its content (a string or parts), and any
/// tool calls.
fn text_chars(message: &Value) -> usize {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    let content = match message.get("content") {
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(parts)) => parts.iter().map(part_chars).sum(),
        _ => 0,
    };
    let calls = message.get("tool_calls").map_or(0, |c| c.to_string().len());
    role + content + calls
}

fn part_chars(part: &Value) -> usize {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => part.get("text").and_then(Value::as_str).map_or(0, str::len),
        Some("image_url" | "input_audio" | "file") => IMAGE_CHARS,
        _ => part.to_string().len(),
    }
}

/// Embeddings input: strings count their characters, token arrays four per token.
fn input_chars(input: &Value) -> usize {
    match input {
        Value::String(s) => s.len(),
        Value::Number(_) => 4,
        Value::Array(items) => items.iter().map(input_chars).sum(),
        _ => 0,
    }
}

fn check_chat(body: &Map<String, Value>) -> Result<(), Invalid> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return Err(invalid(
                "`messages` is empty: send at least one message",
                Some("messages"),
            ))
        }
        Some(_) => {
            return Err(invalid(
                "`messages` must be an array of {role, content} objects",
                Some("messages"),
            ))
        }
        None => {
            return Err(invalid(
                "missing `messages`: send at least one message",
                Some("messages"),
            ))
        }
    };
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(invalid(
                format!("`messages[{i}]` must be an object with a `role`"),
                Some("messages"),
            ));
        };
        if !m.get("role").is_some_and(Value::is_string) {
            return Err(invalid(
                format!("`messages[{i}]` has no `role` (system, user, assistant or tool)"),
                Some("messages"),
            ));
        }
        let calls = m.contains_key("tool_calls") || m.contains_key("function_call");
        match m.get("content") {
            Some(Value::String(_) | Value::Array(_)) => {}
            // Only an assistant turn that calls tools may go without content.
            None | Some(Value::Null) if calls && m["role"] == "assistant" => {}
            None | Some(Value::Null) => {
                return Err(invalid(
                    format!("`messages[{i}].content` is missing: give the message text or parts"),
                    Some("messages"),
                ))
            }
            Some(_) => {
                return Err(invalid(
                    format!("`messages[{i}].content` must be a string, a list of parts or null"),
                    Some("messages"),
                ))
            }
        }
    }
    match body.get("stream") {
        None | Some(Value::Null | Value::Bool(_)) => Ok(()),
        Some(_) => Err(invalid("`stream` must be true or false", Some("stream"))),
    }
}

fn check_embeddings(body: &Map<String, Value>) -> Result<(), Invalid> {
    let ok = match body.get("input") {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(items)) => {
            !items.is_empty()
                && (items
                    .iter()
                    .all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
                    || items.iter().all(Value::is_u64)
                    || items.iter().all(|i| {
                        i.as_array()
                            .is_some_and(|t| !t.is_empty() && t.iter().all(Value::is_u64))
                    }))
        }
        _ => false,
    };
    if !ok {
        return Err(invalid(
            "`input` must be a non-empty string, a list of non-empty strings, a token array or a list of token arrays",
            Some("input"),
        ));
    }
    match body.get("encoding_format").map(|v| v.as_str()) {
        None | Some(Some("float" | "base64")) => {}
        _ => {
            return Err(invalid(
                "`encoding_format` must be \"float\" or \"base64\"",
                Some("encoding_format"),
            ))
        }
    }
    match body.get("dimensions") {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_u64().is_some_and(|n| n > 0) => Ok(()),
        Some(_) => Err(invalid(
            "`dimensions` must be a positive integer",
            Some("dimensions"),
        )),
    }
}

/// Token counts read from every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    /// OpenAI's `usage` object; absent fields count 0.
    pub fn of(usage: &Value) -> Self {
        let n = |f: &str| {
            usage
                .get(f)
                .and_then(Value::as_u64)
                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        Self {
            prompt_tokens: n("prompt_tokens"),
            completion_tokens: n("completion_tokens"),
        }
    }
}

/// An answer in OpenAI's shape (a `chat.completion` or an embeddings `list`), whole.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmResponse {
    pub body: Value,
    pub usage: Usage,
}

impl LlmResponse {
    /// Reads the usage out of `body`.
    pub fn new(body: Value) -> Self {
        let usage = body.get("usage").map_or(Usage::default(), Usage::of);
        Self { body, usage }
    }

    /// The model that answered, as the provider reports it.
    pub fn model(&self) -> &str {
        self.body.get("model").and_then(Value::as_str).unwrap_or("")
    }

    /// The first choice's text (empty when it answered with tool calls only).
    pub fn text(&self) -> &str {
        self.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
    }

    /// The first choice's finish reason.
    pub fn finish_reason(&self) -> &str {
        self.body["choices"][0]["finish_reason"]
            .as_str()
            .unwrap_or("stop")
    }
}

/// One chunk of a streamed chat answer: a `chat.completion.chunk` as the provider sent
/// it (Anthropic's events translated).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatChunk {
    pub body: Value,
}

impl ChatChunk {
    pub fn new(body: Value) -> Self {
        Self { body }
    }

    /// The usage, on the chunk that reports it.
    pub fn usage(&self) -> Option<Usage> {
        self.body
            .get("usage")
            .filter(|u| u.is_object())
            .map(Usage::of)
    }

    /// Whether any choice finished with this chunk.
    pub fn finishes(&self) -> bool {
        self.choices()
            .iter()
            .any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null()))
    }

    fn choices(&self) -> &[Value] {
        self.body
            .get("choices")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// Whether the chunk says anything: providers send keep-alive chunks with empty
    /// choices and no usage.
    pub fn is_empty(&self) -> bool {
        self.usage().is_none()
            && self.choices().iter().all(|c| {
                c.get("finish_reason").map_or(true, Value::is_null)
                    && c.get("delta").map_or(true, |d| {
                        d.as_object().map_or(true, |d| {
                            d.iter().all(|(k, v)| {
                                v.is_null() || (k == "content" && v.as_str() == Some(""))
                            })
                        })
                    })
                    && c.get("logprobs").map_or(true, Value::is_null)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Result<LlmRequest, Invalid> {
        match body {
            Value::Object(m) => LlmRequest::new(Api::Chat, m),
            _ => Err(invalid("not an object", None)),
        }
    }

    #[test]
    fn unknown_fields_and_parts_are_kept() {
        let body = json!({
            "model": "r", "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "some_future_field": {"x": 1}, "max_completion_tokens": 7
        });
        let mut req = chat(body.clone()).expect("valid");
        req.set_model("m2");
        let mut expected = body;
        expected["model"] = json!("m2");
        assert_eq!(Value::Object(req.body().clone()), expected);
        assert_eq!(req.max_output_tokens(), Some(7));
        assert!(req.prompt_chars() > IMAGE_CHARS);
    }

    #[test]
    fn what_the_router_reads_is_checked() {
        for (body, needle) in [
            (json!({"messages": []}), "empty"),
            (json!({"messages": "hi"}), "array"),
            (json!({"messages": [{"content": "x"}]}), "role"),
            (
                json!({"messages": [{"role": "user", "content": 3}]}),
                "content",
            ),
            (
                json!({"messages": [{"role": "user"}]}),
                "content` is missing",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": null}]}),
                "content` is missing",
            ),
            (
                json!({"model": 1, "messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}),
                "max_tokens",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
                "stream",
            ),
        ] {
            let e = chat(body).expect_err(needle);
            assert!(e.message.contains(needle), "{e} lacks {needle}");
        }
    }

    #[test]
    fn embeddings_inputs() {
        let embed = |b: Value| match b {
            Value::Object(m) => LlmRequest::new(Api::Embeddings, m),
            _ => Err(invalid("x", None)),
        };
        for ok in [
            json!({"input": "a"}),
            json!({"input": ["a", "b"], "encoding_format": "base64", "dimensions": 8}),
            json!({"input": [1, 2, 3]}),
            json!({"input": [[1, 2], [3]]}),
        ] {
            assert!(embed(ok.clone()).is_ok(), "{ok}");
        }
        for bad in [
            json!({"input": ""}),
            json!({"input": []}),
            json!({"input": ["a", 1]}),
            json!({}),
            json!({"input": "a", "encoding_format": "int8"}),
            json!({"input": "a", "dimensions": 0}),
        ] {
            assert!(embed(bad.clone()).is_err(), "{bad}");
        }
        let req = embed(json!({"input": ["abcd", "ef"]})).expect("valid");
        assert_eq!(req.prompt_chars(), 6);
    }

    #[test]
    fn chunks_say_something_or_nothing() {
        let empty = ChatChunk::new(
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        );
        assert!(!empty.is_empty(), "the role chunk is passed on");
        let keep_alive =
            ChatChunk::new(json!({"choices": [{"index": 0, "delta": {"content": ""}}]}));
        assert!(keep_alive.is_empty());
        let tool = ChatChunk::new(
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}),
        );
        assert!(!tool.is_empty());
        let usage = ChatChunk::new(
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        );
        assert_eq!(usage.usage().map(|u| u.prompt_tokens), Some(3));
        let finish = ChatChunk::new(
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        );
        assert!(finish.finishes() && !finish.is_empty());
    }
}
