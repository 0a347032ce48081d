//! OpenAI `chat.completion.chunk` objects to Anthropic Messages stream events.

use super::str_at;
use super::usage::{stop_reason, Tokens};
use serde_json::{json, Value};
use std::collections::HashMap;

/// One Anthropic stream event: its `event:` name and its `data:` JSON (whose `type` is
/// the same name).
pub type AnthropicEvent = (&'static str, Value);

/// Turns OpenAI chunks into Anthropic events: `message_start` before the first,
/// `content_block_start`/`_delta`/`_stop` as text, reasoning and tool calls come, and on
/// [`finish`](Self::finish) (the OpenAI stream's end, `[DONE]`) `message_delta` with the
/// stop reason and usage and `message_stop`. The end waits for `finish` because OpenAI
/// sends the usage chunk after the chunk with the finish reason.
#[derive(Debug, Default)]
pub struct StreamToAnthropic {
    started: bool,
    finished: bool,
    /// The block being written: its Anthropic index and kind.
    open: Option<(u64, Open)>,
    /// The index the next content block gets.
    next_block: u64,
    /// The Anthropic block index of each OpenAI tool call index.
    tools: HashMap<u64, u64>,
    stop_reason: Option<&'static str>,
    tokens: Tokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool,
}

impl StreamToAnthropic {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events for one chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<AnthropicEvent> {
        let mut events = Vec::new();
        if !self.started {
            self.started = true;
            events.push(message_start(chunk));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.tokens = Tokens::from_openai(usage);
        }
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        if let Some(text) = str_at(delta, "reasoning_content").filter(|t| !t.is_empty()) {
            self.text(Open::Thinking, text, &mut events);
        }
        if let Some(text) = str_at(delta, "content").filter(|t| !t.is_empty()) {
            self.text(Open::Text, text, &mut events);
        }
        for call in delta["tool_calls"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            self.tool_call(call, &mut events);
        }
        if let Some(finish) = str_at(choice, "finish_reason") {
            self.stop_reason = Some(stop_reason(finish));
            self.close(&mut events);
        }
        events
    }

    /// The closing events; nothing once called before.
    pub fn finish(&mut self) -> Vec<AnthropicEvent> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        let mut events = Vec::new();
        if !self.started {
            self.started = true;
            events.push(message_start(&Value::Null));
        }
        self.close(&mut events);
        let delta = json!({"stop_reason": self.stop_reason.unwrap_or("end_turn"),
            "stop_sequence": null});
        let usage = self.tokens.to_anthropic();
        events.push(event(
            "message_delta",
            json!({"delta": delta, "usage": usage}),
        ));
        events.push(event("message_stop", json!({})));
        events
    }

    fn text(&mut self, kind: Open, text: &str, events: &mut Vec<AnthropicEvent>) {
        let index = match self.open {
            Some((index, open)) if open == kind => index,
            _ => {
                let block = match kind {
                    Open::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                    _ => json!({"type": "text", "text": ""}),
                };
                self.start_block(kind, block, events)
            }
        };
        let delta = match kind {
            Open::Thinking => json!({"type": "thinking_delta", "thinking": text}),
            _ => json!({"type": "text_delta", "text": text}),
        };
        events.push(event(
            "content_block_delta",
            json!({"index": index, "delta": delta}),
        ));
    }

    /// A tool call delta: its first piece opens a `tool_use` block, argument pieces
    /// become `input_json_delta`s of the block that tool call index opened.
    fn tool_call(&mut self, call: &Value, events: &mut Vec<AnthropicEvent>) {
        let tool_index = call["index"].as_u64().unwrap_or(0);
        let index = match self.tools.get(&tool_index) {
            Some(&index) => index,
            None => {
                let function = &call["function"];
                let block = json!({"type": "tool_use", "id": str_at(call, "id").unwrap_or_default(),
                    "name": str_at(function, "name").unwrap_or_default(), "input": {}});
                let index = self.start_block(Open::Tool, block, events);
                self.tools.insert(tool_index, index);
                index
            }
        };
        if let Some(partial) = str_at(&call["function"], "arguments").filter(|a| !a.is_empty()) {
            let delta = json!({"type": "input_json_delta", "partial_json": partial});
            events.push(event(
                "content_block_delta",
                json!({"index": index, "delta": delta}),
            ));
        }
    }

    fn start_block(&mut self, kind: Open, block: Value, events: &mut Vec<AnthropicEvent>) -> u64 {
        self.close(events);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        let data = json!({"index": index, "content_block": block});
        events.push(event("content_block_start", data));
        index
    }

    fn close(&mut self, events: &mut Vec<AnthropicEvent>) {
        if let Some((index, _)) = self.open.take() {
            events.push(event("content_block_stop", json!({"index": index})));
        }
    }
}

fn message_start(chunk: &Value) -> AnthropicEvent {
    let message = json!({
        "id": str_at(chunk, "id").unwrap_or_default(),
        "type": "message",
        "role": "assistant",
        "model": str_at(chunk, "model").unwrap_or_default(),
        "content": [],
        "stop_reason": null,
        "stop_sequence": null,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    });
    event("message_start", json!({ "message": message }))
}

/// `data` with its `type` set to `name`.
fn event(name: &'static str, mut data: Value) -> AnthropicEvent {
    data["type"] = name.into();
    (name, data)
}
