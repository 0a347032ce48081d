//! Anthropic message response to OpenAI `chat.completion`.

use super::usage::{finish_reason, Tokens};
use super::{str_at, ReplyError, ResponseContext};
use serde_json::{json, Value};

/// An Anthropic message as an OpenAI `chat.completion` with one choice. Text blocks are
/// joined into `content` (null when there is none but tool calls), `thinking` blocks
/// into `reasoning_content`; the forced JSON tool of `cx` becomes the content itself.
/// An Anthropic error body gives [`ReplyError::Upstream`].
pub fn response_from_anthropic(
    anthropic: &Value,
    cx: &ResponseContext,
) -> Result<Value, ReplyError> {
    if str_at(anthropic, "type") == Some("error") {
        return Err(ReplyError::upstream(anthropic));
    }
    let blocks = anthropic
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| ReplyError::Malformed("the message has no `content` list".into()))?;
    let parts = Parts::collect(blocks, cx.json_tool.as_deref());
    let stop = str_at(anthropic, "stop_reason");
    let finish = match (stop, &parts.json) {
        (Some("tool_use"), Some(_)) => Some("stop"),
        _ => stop.map(finish_reason),
    };
    let model = str_at(anthropic, "model").unwrap_or(&cx.model);
    Ok(json!({
        "id": str_at(anthropic, "id").unwrap_or_default(),
        "object": "chat.completion",
        "created": cx.created,
        "model": model,
        "choices": [{"index": 0, "message": parts.message(), "finish_reason": finish,
            "logprobs": null}],
        "usage": Tokens::from_anthropic(&anthropic["usage"]).to_openai(),
    }))
}

/// The content blocks of a message, sorted by what they become.
#[derive(Default)]
struct Parts {
    text: String,
    reasoning: String,
    tool_calls: Vec<Value>,
    /// The forced JSON tool's input, as compact JSON.
    json: Option<String>,
}

impl Parts {
    fn collect(blocks: &[Value], json_tool: Option<&str>) -> Self {
        let mut parts = Self::default();
        for block in blocks {
            match str_at(block, "type") {
                Some("text") => parts
                    .text
                    .push_str(str_at(block, "text").unwrap_or_default()),
                Some("thinking") => parts
                    .reasoning
                    .push_str(str_at(block, "thinking").unwrap_or_default()),
                Some("tool_use") if json_tool.is_some() && str_at(block, "name") == json_tool => {
                    parts.json = Some(block["input"].to_string());
                }
                Some("tool_use") => parts.tool_calls.push(tool_call(block)),
                // Redacted thinking, server tool blocks: nothing an OpenAI caller can use.
                _ => {}
            }
        }
        parts
    }

    fn message(self) -> Value {
        let content = match (
            self.json,
            self.text.is_empty() && !self.tool_calls.is_empty(),
        ) {
            // Text next to the forced tool would break the JSON the caller asked for.
            (Some(json), _) => Value::String(json),
            (None, true) => Value::Null,
            (None, false) => Value::String(self.text),
        };
        let mut message = json!({"role": "assistant", "content": content});
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = self.tool_calls.into();
        }
        if !self.reasoning.is_empty() {
            message["reasoning_content"] = self.reasoning.into();
        }
        message
    }
}

/// A `tool_use` block as an OpenAI tool call, its input as compact JSON arguments.
pub(super) fn tool_call(block: &Value) -> Value {
    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
    json!({
        "id": str_at(block, "id").unwrap_or_default(),
        "type": "function",
        "function": {"name": str_at(block, "name").unwrap_or_default(),
            "arguments": input.to_string()},
    })
}
