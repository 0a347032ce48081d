//! A parsed chat request, whichever wire format it came in: everything the answer is
//! built from, and the shape of a refusal.

use super::digest;
use super::tools::{Tool, ToolChoice, ToolResult};

/// A parsed chat request.
#[derive(Debug)]
pub(super) struct Prompt {
    pub model: String,
    /// Every text of the request (system and tool results included), for the prompt
    /// token count and the ids derived from the conversation.
    pub texts: Vec<String>,
    /// The last user message, which a plain answer echoes.
    pub last_user: String,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    /// `stream: true`: answer as server-sent events.
    pub stream: bool,
    /// OpenAI's `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
    /// The tools offered, in request order.
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    /// OpenAI's `parallel_tool_calls`, Anthropic's `!disable_parallel_tool_use`.
    pub parallel_tool_calls: bool,
    /// The tool results the conversation ends with, which the answer then reports.
    pub tool_results: Vec<ToolResult>,
    pub output: Output,
    /// How many choices to answer with (OpenAI's `n`).
    pub n: u32,
    /// With `logprobs: true`, how many alternatives each token lists.
    pub top_logprobs: Option<u32>,
}

impl Default for Prompt {
    fn default() -> Self {
        Self {
            model: String::new(),
            texts: Vec::new(),
            last_user: String::new(),
            max_tokens: None,
            stop: Vec::new(),
            stream: false,
            include_usage: false,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            parallel_tool_calls: true,
            tool_results: Vec::new(),
            output: Output::Text,
            n: 1,
            top_logprobs: None,
        }
    }
}

impl Prompt {
    /// A hash of the conversation: the same messages give the same tool call ids,
    /// streamed or not.
    pub fn digest(&self) -> u64 {
        digest::of_parts(self.texts.iter().map(String::as_bytes))
    }
}

/// What the answer's text must be.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Output {
    /// Free text (the echo).
    Text,
    /// OpenAI's `response_format: {"type": "json_object"}`.
    JsonObject,
    /// OpenAI's `response_format: {"type": "json_schema"}`: a document valid for it.
    JsonSchema(serde_json::Value),
}

/// Why a request is refused with 400: OpenAI names the offending parameter and may add
/// a code; Anthropic shows only the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rejection {
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl Rejection {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

impl From<serde_json::Error> for Rejection {
    fn from(e: serde_json::Error) -> Self {
        Self::new(e.to_string())
    }
}
