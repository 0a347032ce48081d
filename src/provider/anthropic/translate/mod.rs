//! Pure translation between the OpenAI Chat Completions wire format and the Anthropic
//! Messages wire format, on `serde_json` values: no I/O, no clock, no async.
//!
//! # Directions
//! - An OpenAI-shaped caller served by an Anthropic endpoint: [`request_to_anthropic`],
//!   [`response_from_anthropic`], [`StreamFromAnthropic`].
//! - An Anthropic-shaped caller (a future Messages front door) served by an
//!   OpenAI-compatible endpoint: [`request_from_anthropic`], [`response_to_anthropic`],
//!   [`StreamToAnthropic`].
//!
//! # Choices the APIs leave open
//! - **Unhonoured parameters.** A parameter Anthropic cannot honour (`n` > 1, `seed`,
//!   penalties, any unknown field, ...) is refused or dropped as the caller's
//!   [`Unhonoured`] says; [`unhonoured_parameters`] lists them all, so a router can pick
//!   a target that honours them instead. Refusal names the first one in a fixed order.
//! - **JSON responses.** Anthropic has no `response_format`, so `json_schema` and
//!   `json_object` use the forced-tool technique: one tool whose `input_schema` is the
//!   schema, forced by `tool_choice`. [`ResponseContext::json_tool`] remembers its name
//!   and the response side turns that tool's input back into the message `content` with
//!   finish reason `stop`. The caller's own `tools` cannot be combined with it (the model
//!   could no longer choose among them), so that pair is an unhonoured `response_format`.
//! - **`created`.** This module reads no clock: [`ResponseContext::created`] is 0 until
//!   the caller stamps it, and every response and chunk carries it.
//! - **Thinking.** Anthropic `thinking` blocks become a `reasoning_content` string on the
//!   OpenAI message or delta, the field OpenAI-compatible servers (vLLM, DeepSeek) use.
//!   `reasoning_effort` becomes a thinking budget; see [`THINKING_BUDGETS`].
//! - **Plain strings.** A content of exactly one text block travels as a plain string
//!   in both directions; several blocks stay blocks, so no separator is invented.
//! - **Roles.** Anthropic wants alternating roles, so consecutive messages of one role
//!   (tool results count as `user`) are merged into one; messages left without any
//!   content (empty texts are skipped) are left out.

mod error;
mod messages;
mod params;
mod request;
mod response;
mod reverse_messages;
mod reverse_request;
mod reverse_response;
mod reverse_stream;
mod stream;
mod tools;
mod usage;

#[cfg(test)]
mod tests;

pub use error::{ReplyError, RequestError, Unsupported};
pub use params::unhonoured_parameters;
pub use request::{request_to_anthropic, THINKING_BUDGETS};
pub use response::response_from_anthropic;
pub use reverse_request::request_from_anthropic;
pub use reverse_response::response_to_anthropic;
pub use reverse_stream::{AnthropicEvent, StreamToAnthropic};
pub use stream::StreamFromAnthropic;

use serde_json::{Map, Value};

/// Anthropic requires `max_tokens`; sent when the OpenAI request set neither
/// `max_completion_tokens` nor `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// What to do with an OpenAI parameter Anthropic cannot honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhonoured {
    /// Fail with [`RequestError::Unsupported`] naming the first such parameter.
    Refuse,
    /// Leave it out of the Anthropic request.
    Drop,
}

/// A translated request and what its response translation needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct ToAnthropic {
    /// The Anthropic Messages request body.
    pub body: Map<String, Value>,
    pub context: ResponseContext,
}

/// What the translation of a response needs from its request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseContext {
    /// The forced tool that stands for `response_format`, whose input is the answer.
    pub json_tool: Option<String>,
    /// The provider model requested; used when a response does not name one.
    pub model: String,
    /// Unix seconds for `created`; 0 until the caller stamps it.
    pub created: i64,
}

/// The `target` of an [`Unsupported`] from the OpenAI to Anthropic direction.
const ANTHROPIC: &str = "Anthropic";
/// The `target` of an [`Unsupported`] from the Anthropic to OpenAI direction.
const OPENAI: &str = "OpenAI-compatible";

/// The string at `key`, if it is one.
fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}
