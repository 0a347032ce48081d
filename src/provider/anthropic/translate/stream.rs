//! Anthropic Messages stream events to OpenAI `chat.completion.chunk` objects.

use super::usage::{finish_reason, Tokens};
use super::{str_at, ReplyError, ResponseContext};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Turns the parsed `data:` JSON of each Anthropic event into OpenAI chunks.
///
/// `message_start` gives the first chunk (`delta.role`), text, thinking and tool input
/// deltas give content, `reasoning_content` and `tool_calls` deltas, `message_delta` the
/// finish reason, and `message_stop` a last chunk with `choices: []` and the `usage`
/// (the shape OpenAI sends with `stream_options.include_usage`; drop it if unwanted).
#[derive(Debug)]
pub struct StreamFromAnthropic {
    cx: ResponseContext,
    id: String,
    model: String,
    /// What each Anthropic content block (by its `index`) turns into.
    blocks: HashMap<u64, Block>,
    /// The OpenAI `tool_calls` index the next `tool_use` block gets.
    next_tool: u64,
    /// Whether the forced JSON tool was called, making `tool_use` a plain `stop`.
    json_called: bool,
    /// Counts from `message_start`, updated by `message_delta`.
    tokens: Option<Tokens>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// A tool call, with its OpenAI index.
    Tool(u64),
    /// The forced JSON tool, whose input is the answer's content.
    Json,
    /// Blocks an OpenAI caller has no use for (redacted thinking, server tools).
    Other,
}

impl StreamFromAnthropic {
    pub fn new(cx: ResponseContext) -> Self {
        Self {
            model: cx.model.clone(),
            cx,
            id: String::new(),
            blocks: HashMap::new(),
            next_tool: 0,
            json_called: false,
            tokens: None,
        }
    }

    /// The chunks for one event; `ping`, `content_block_stop` and unknown event types
    /// give none. An `error` event gives [`ReplyError::Upstream`].
    pub fn event(&mut self, data: &Value) -> Result<Vec<Value>, ReplyError> {
        let kind = str_at(data, "type")
            .ok_or_else(|| ReplyError::Malformed("a stream event without `type`".into()))?;
        let delta = match kind {
            "message_start" => Some(self.start(&data["message"])),
            "content_block_start" => self.block_start(data),
            "content_block_delta" => self.block_delta(data),
            "message_delta" => return Ok(vec![self.message_delta(data)]),
            "message_stop" => return Ok(vec![self.usage_chunk()]),
            "error" => return Err(ReplyError::upstream(data)),
            _ => None,
        };
        Ok(delta.map(|d| self.chunk(d, None)).into_iter().collect())
    }

    /// `(prompt_tokens, completion_tokens)` so far, once `message_start` was seen.
    pub fn usage(&self) -> Option<(u32, u32)> {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        self.tokens.map(|t| (narrow(t.prompt()), narrow(t.output)))
    }

    fn start(&mut self, message: &Value) -> Value {
        self.id = str_at(message, "id").unwrap_or_default().to_owned();
        if let Some(model) = str_at(message, "model") {
            self.model = model.to_owned();
        }
        self.tokens = Some(Tokens::from_anthropic(&message["usage"]));
        json!({"role": "assistant"})
    }

    fn block_start(&mut self, data: &Value) -> Option<Value> {
        let block = &data["content_block"];
        let kind = match str_at(block, "type") {
            Some("text") => Block::Text,
            Some("thinking") => Block::Thinking,
            Some("tool_use") if self.is_json_tool(block) => Block::Json,
            Some("tool_use") => {
                self.next_tool += 1;
                Block::Tool(self.next_tool - 1)
            }
            _ => Block::Other,
        };
        self.blocks
            .insert(data["index"].as_u64().unwrap_or(0), kind);
        match kind {
            Block::Text => text_delta("content", str_at(block, "text")),
            Block::Thinking => text_delta("reasoning_content", str_at(block, "thinking")),
            Block::Tool(index) => Some(json!({"tool_calls": [{"index": index,
                "id": str_at(block, "id").unwrap_or_default(), "type": "function",
                "function": {"name": str_at(block, "name").unwrap_or_default(),
                    "arguments": ""}}]})),
            Block::Json => {
                self.json_called = true;
                None
            }
            Block::Other => None,
        }
    }

    fn is_json_tool(&self, block: &Value) -> bool {
        self.cx.json_tool.is_some() && str_at(block, "name") == self.cx.json_tool.as_deref()
    }

    fn block_delta(&self, data: &Value) -> Option<Value> {
        let block = data["index"].as_u64().and_then(|i| self.blocks.get(&i));
        let delta = &data["delta"];
        match (str_at(delta, "type")?, block) {
            ("text_delta", _) => text_delta("content", str_at(delta, "text")),
            ("thinking_delta", _) => text_delta("reasoning_content", str_at(delta, "thinking")),
            ("input_json_delta", Some(Block::Json)) => {
                text_delta("content", str_at(delta, "partial_json"))
            }
            ("input_json_delta", Some(Block::Tool(index))) => {
                let partial = str_at(delta, "partial_json").filter(|p| !p.is_empty())?;
                Some(json!({"tool_calls": [{"index": index,
                    "function": {"arguments": partial}}]}))
            }
            // Signatures and citations have no OpenAI counterpart.
            _ => None,
        }
    }

    fn message_delta(&mut self, data: &Value) -> Value {
        if let Some(tokens) = &mut self.tokens {
            tokens.update(&data["usage"]);
        } else {
            self.tokens = Some(Tokens::from_anthropic(&data["usage"]));
        }
        let finish = match str_at(&data["delta"], "stop_reason") {
            Some("tool_use") if self.json_called => Some("stop"),
            stop => stop.map(finish_reason),
        };
        self.chunk(json!({}), finish)
    }

    fn usage_chunk(&self) -> Value {
        let mut chunk = self.envelope();
        chunk["choices"] = json!([]);
        chunk["usage"] = self.tokens.unwrap_or_default().to_openai();
        chunk
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        let mut chunk = self.envelope();
        chunk["choices"] =
            json!([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]);
        chunk
    }

    fn envelope(&self) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.cx.created,
            "model": self.model})
    }
}

/// `{field: text}`, or nothing for a missing or empty text.
fn text_delta(field: &str, text: Option<&str>) -> Option<Value> {
    let text = text.filter(|t| !t.is_empty())?;
    let mut delta = serde_json::Map::new();
    delta.insert(field.into(), text.into());
    Some(Value::Object(delta))
}
