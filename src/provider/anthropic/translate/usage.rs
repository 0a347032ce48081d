//! Token counts and stop reasons, named the Anthropic way and the OpenAI way.

use serde_json::{json, Value};

/// Anthropic token counts. OpenAI's prompt tokens include cached ones; Anthropic's
/// `input_tokens` counts only what was neither read from nor written to the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tokens {
    pub input: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
    pub output: u64,
}

impl Tokens {
    /// The counts of an Anthropic `usage` object; missing ones are 0.
    pub fn from_anthropic(usage: &Value) -> Self {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
        Self {
            input: count("input_tokens"),
            cache_read: count("cache_read_input_tokens"),
            cache_creation: count("cache_creation_input_tokens"),
            output: count("output_tokens"),
        }
    }

    /// Takes the counts a later `usage` (a stream's `message_delta`) carries; Anthropic
    /// sends cumulative counts there.
    pub fn update(&mut self, usage: &Value) {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64);
        let fields = [
            (&mut self.input, "input_tokens"),
            (&mut self.cache_read, "cache_read_input_tokens"),
            (&mut self.cache_creation, "cache_creation_input_tokens"),
            (&mut self.output, "output_tokens"),
        ];
        for (field, key) in fields {
            if let Some(n) = count(key) {
                *field = n;
            }
        }
    }

    pub fn prompt(&self) -> u64 {
        self.input + self.cache_read + self.cache_creation
    }

    /// OpenAI `usage`, with the cache reads as `prompt_tokens_details.cached_tokens`.
    pub fn to_openai(self) -> Value {
        json!({
            "prompt_tokens": self.prompt(),
            "completion_tokens": self.output,
            "total_tokens": self.prompt() + self.output,
            "prompt_tokens_details": {"cached_tokens": self.cache_read},
        })
    }

    /// The Anthropic counts of an OpenAI `usage`; the cache writes are not told apart
    /// from the other input there.
    pub fn from_openai(usage: &Value) -> Self {
        let count = |v: &Value| v.as_u64().unwrap_or(0);
        let cache_read = count(&usage["prompt_tokens_details"]["cached_tokens"]);
        Self {
            input: count(&usage["prompt_tokens"]).saturating_sub(cache_read),
            cache_read,
            cache_creation: 0,
            output: count(&usage["completion_tokens"]),
        }
    }

    pub fn to_anthropic(self) -> Value {
        json!({
            "input_tokens": self.input,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": self.output,
        })
    }
}

/// OpenAI `finish_reason` for an Anthropic `stop_reason`. `pause_turn` (a server tool
/// paused the turn) ends the OpenAI answer as it stands.
pub(super) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic `stop_reason` for an OpenAI `finish_reason`.
pub(super) fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}
