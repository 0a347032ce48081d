//! OpenAI `chat.completion` to Anthropic message response, for an Anthropic-shaped
//! front door.

use super::str_at;
use super::usage::{stop_reason, Tokens};
use serde_json::{json, Value};

/// The first choice of an OpenAI completion as an Anthropic message: reasoning as a
/// `thinking` block (with an empty signature: none exists), the text as one text block,
/// then a `tool_use` block per tool call. Arguments that are not a JSON object give an
/// empty input, since Anthropic's `input` must be an object.
pub fn response_to_anthropic(openai_completion: &Value) -> Value {
    let choice = &openai_completion["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(reasoning) = str_at(message, "reasoning_content").filter(|r| !r.is_empty()) {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    let text = message_text(message);
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = message["tool_calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    content.extend(calls.iter().map(tool_use));
    json!({
        "id": str_at(openai_completion, "id").unwrap_or_default(),
        "type": "message",
        "role": "assistant",
        "model": str_at(openai_completion, "model").unwrap_or_default(),
        "content": content,
        "stop_reason": str_at(choice, "finish_reason").map(stop_reason),
        "stop_sequence": null,
        "usage": Tokens::from_openai(&openai_completion["usage"]).to_anthropic(),
    })
}

/// The content (a string or text parts) and any refusal, joined.
fn message_text(message: &Value) -> String {
    let mut text = match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| str_at(p, "text")).collect(),
        _ => String::new(),
    };
    text.push_str(str_at(message, "refusal").unwrap_or_default());
    text
}

fn tool_use(call: &Value) -> Value {
    let function = &call["function"];
    let input = str_at(function, "arguments")
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({
        "type": "tool_use",
        "id": str_at(call, "id").unwrap_or_default(),
        "name": str_at(function, "name").unwrap_or_default(),
        "input": input,
    })
}
