//! The errors of the translation: a parameter the target cannot honour, a request that
//! cannot be translated as written, and an Anthropic reply that reports or is an error.

use serde_json::Value;
use thiserror::Error;

/// How much of an offending value an error message quotes.
const QUOTED_CHARS: usize = 80;

/// A request parameter the target API has no way to honour. With
/// [`Unhonoured::Drop`](super::Unhonoured::Drop) it would have been left out instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{parameter}` = {value} is not supported by {target} endpoints: {detail}")]
pub struct Unsupported {
    pub parameter: String,
    /// The value sent, as compact JSON cut to a readable length.
    pub value: String,
    /// The API that cannot honour it, e.g. "Anthropic".
    pub target: &'static str,
    /// Why, and what the caller can do instead.
    pub detail: String,
}

impl Unsupported {
    pub(super) fn new(
        parameter: &str,
        value: &Value,
        target: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        let full = value.to_string();
        let mut quoted: String = full.chars().take(QUOTED_CHARS).collect();
        if quoted.len() < full.len() {
            quoted.push_str("...");
        }
        Self {
            parameter: parameter.to_owned(),
            value: quoted,
            target,
            detail: detail.into(),
        }
    }
}

/// Why a request could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// The request cannot be translated as written. `at` is a JSON path such as
    /// `messages[2].tool_calls[0]`.
    #[error("cannot translate `{at}`: {problem}")]
    Invalid { at: String, problem: String },
}

impl RequestError {
    pub(super) fn invalid(at: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            at: at.into(),
            problem: problem.into(),
        }
    }
}

/// An Anthropic response or stream event that cannot become an OpenAI one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    /// Anthropic reported an error: an `error` body or an `error` stream event.
    #[error("Anthropic error `{kind}`: {message}")]
    Upstream { kind: String, message: String },
    /// The reply is not shaped as the Messages API documents.
    #[error("malformed Anthropic reply: {0}")]
    Malformed(String),
}

impl ReplyError {
    /// The error of an Anthropic `{"type": "error", "error": {type, message}}` body or event.
    pub(super) fn upstream(body: &Value) -> Self {
        let error = &body["error"];
        Self::Upstream {
            kind: super::str_at(error, "type").unwrap_or("error").to_owned(),
            message: super::str_at(error, "message")
                .unwrap_or_default()
                .to_owned(),
        }
    }
}
