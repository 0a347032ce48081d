//! A streamed chat answer put back together as the `chat.completion` it streams: the
//! query that asked for a stream is still answered whole, and a batch or a log wants the
//! same shape either way. Every choice is kept, with its text, refusal, reasoning, tool
//! calls (arguments joined by index) and logprobs.

use super::{ChatChunk, LlmResponse};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Collects chunks in arrival order.
#[derive(Debug, Default)]
pub struct Assembler {
    head: Map<String, Value>,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
}

#[derive(Debug, Default)]
struct Choice {
    role: Option<Value>,
    /// Joined text fields: `content`, `refusal`, `reasoning_content`.
    texts: BTreeMap<String, String>,
    tool_calls: BTreeMap<u64, Map<String, Value>>,
    logprobs: Vec<Value>,
    finish_reason: Option<Value>,
}

/// Text fields of a delta that stream in pieces.
const JOINED: [&str; 3] = ["content", "refusal", "reasoning_content"];

impl Assembler {
    pub fn add(&mut self, chunk: &ChatChunk) {
        let Some(body) = chunk.body.as_object() else {
            return;
        };
        for field in [
            "id",
            "model",
            "created",
            "system_fingerprint",
            "service_tier",
        ] {
            if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
                self.head.entry(field).or_insert_with(|| v.clone());
            }
        }
        if let Some(usage) = body.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        for c in body
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            self.choices.entry(index).or_default().add(c);
        }
    }

    /// The answer so far as one `chat.completion`.
    pub fn finish(self) -> LlmResponse {
        let mut body = self.head;
        body.insert("object".into(), json!("chat.completion"));
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| c.finish(index))
            .collect();
        body.insert("choices".into(), Value::Array(choices));
        if let Some(usage) = self.usage {
            body.insert("usage".into(), usage);
        }
        LlmResponse::new(Value::Object(body))
    }
}

impl Choice {
    fn add(&mut self, c: &Value) {
        if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
            self.finish_reason = Some(f.clone());
        }
        if let Some(content) = c.pointer("/logprobs/content").and_then(Value::as_array) {
            self.logprobs.extend(content.iter().cloned());
        }
        let Some(delta) = c.get("delta").and_then(Value::as_object) else {
            return;
        };
        if let Some(role) = delta.get("role").filter(|r| !r.is_null()) {
            self.role.get_or_insert_with(|| role.clone());
        }
        for field in JOINED {
            if let Some(text) = delta.get(field).and_then(Value::as_str) {
                self.texts
                    .entry(field.to_owned())
                    .or_default()
                    .push_str(text);
            }
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            merge_call(self.tool_calls.entry(index).or_default(), call);
        }
    }

    fn finish(self, index: u64) -> Value {
        let mut message = Map::new();
        message.insert(
            "role".into(),
            self.role.unwrap_or_else(|| json!("assistant")),
        );
        let content = self.texts.get("content").cloned();
        let has_calls = !self.tool_calls.is_empty();
        message.insert(
            "content".into(),
            match content {
                Some(text) if !(text.is_empty() && has_calls) => Value::String(text),
                _ if has_calls => Value::Null,
                _ => json!(""),
            },
        );
        for field in ["refusal", "reasoning_content"] {
            if let Some(text) = self.texts.get(field) {
                message.insert(field.into(), Value::String(text.clone()));
            }
        }
        if has_calls {
            let calls: Vec<Value> = self.tool_calls.into_values().map(Value::Object).collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        let mut choice = json!({
            "index": index,
            "message": message,
            "finish_reason": self.finish_reason.unwrap_or_else(|| json!("stop")),
        });
        if !self.logprobs.is_empty() {
            choice["logprobs"] = json!({"content": self.logprobs});
        }
        choice
    }
}

/// One tool-call delta into the call so far: id, type and name once, arguments joined.
fn merge_call(call: &mut Map<String, Value>, delta: &Value) {
    for field in ["id", "type"] {
        if let Some(v) = delta.get(field).filter(|v| !v.is_null()) {
            call.entry(field).or_insert_with(|| v.clone());
        }
    }
    let Some(f) = delta.get("function").and_then(Value::as_object) else {
        return;
    };
    let function = call
        .entry("function")
        .or_insert_with(|| json!({"name": "", "arguments": ""}));
    if let Some(name) = f.get("name").and_then(Value::as_str) {
        if function["name"].as_str().map_or(true, str::is_empty) {
            function["name"] = json!(name);
        }
    }
    if let Some(piece) = f.get("arguments").and_then(Value::as_str) {
        let joined = format!("{}{piece}", function["arguments"].as_str().unwrap_or(""));
        function["arguments"] = Value::String(joined);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(v: Value) -> ChatChunk {
        ChatChunk::new(v)
    }

    #[test]
    fn tool_call_deltas_and_choices_come_back_whole() {
        let mut a = Assembler::default();
        for c in [
            json!({"id": "x", "model": "m", "created": 5, "choices": [{"index": 0, "delta": {"role": "assistant", "content": null,
                "tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "get", "arguments": ""}}]}}]}),
            json!({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]}),
            json!({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "c2", "type": "function", "function": {"name": "put", "arguments": "{}"}}]}}]}),
            json!({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
            json!({"id": "x", "choices": [{"index": 1, "delta": {"content": "he"}}]}),
            json!({"id": "x", "choices": [{"index": 1, "delta": {"content": "llo"}, "finish_reason": "stop"}]}),
            json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"id": "x", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}}),
        ] {
            a.add(&chunk(c));
        }
        let r = a.finish();
        assert_eq!(r.body["object"], "chat.completion");
        assert_eq!(r.body["created"], 5);
        let calls = &r.body["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(calls[0]["id"], "c1");
        assert_eq!(calls[1]["function"]["name"], "put");
        assert!(r.body["choices"][0]["message"]["content"].is_null());
        assert_eq!(r.body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(r.body["choices"][1]["message"]["content"], "hello");
        assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (4, 6));
    }
}
