//! Anthropic `system` and `messages` to OpenAI chat messages: `tool_result` blocks become
//! `tool` messages in place, images become `image_url` parts with data or http(s) URLs.

use super::messages::plain_if_single_text;
use super::response::tool_call;
use super::{str_at, RequestError};
use serde_json::{json, Value};

/// The OpenAI `messages` of an Anthropic request: the system first, then each message.
pub(super) fn to_openai(
    system: Option<&Value>,
    messages: Option<&Value>,
) -> Result<Value, RequestError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| RequestError::invalid("messages", "must be a list of messages"))?;
    let mut out = Vec::new();
    if let Some(system) = system {
        let content = match system {
            Value::String(s) => Value::String(s.clone()),
            blocks => plain_if_single_text(texts(blocks, "system")?),
        };
        out.push(json!({"role": "system", "content": content}));
    }
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let content = message.get("content").unwrap_or(&Value::Null);
        match str_at(message, "role") {
            Some("user") => user_messages(content, &at, &mut out)?,
            Some("assistant") => out.push(assistant_message(content, &at)?),
            _ => {
                return Err(RequestError::invalid(
                    at,
                    "the role must be `user` or `assistant`",
                ))
            }
        }
    }
    Ok(out.into())
}

/// The text blocks of a block list, as OpenAI text parts; anything else is refused.
fn texts(blocks: &Value, at: &str) -> Result<Vec<Value>, RequestError> {
    let blocks = blocks
        .as_array()
        .ok_or_else(|| RequestError::invalid(at, "must be a string or a list of blocks"))?;
    blocks
        .iter()
        .enumerate()
        .map(
            |(j, block)| match (str_at(block, "type"), str_at(block, "text")) {
                (Some("text"), Some(text)) => Ok(json!({"type": "text", "text": text})),
                _ => Err(block_error(block, &format!("{at}[{j}]"), "text")),
            },
        )
        .collect()
}

fn block_error(block: &Value, at: &str, allowed: &str) -> RequestError {
    let kind = str_at(block, "type").unwrap_or("(none)");
    RequestError::invalid(
        at,
        format!("block type `{kind}` cannot be sent here; use {allowed} blocks"),
    )
}

/// A user message: its `tool_result` blocks become `tool` messages, the blocks between
/// them user messages, in their order.
fn user_messages(content: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), RequestError> {
    let Value::Array(blocks) = content else {
        out.push(json!({"role": "user", "content": content}));
        return Ok(());
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match str_at(block, "type") {
            Some("text") => parts.push(json!({"type": "text", "text": str_at(block, "text")})),
            Some("image") => parts.push(image_part(block, &at)?),
            Some("tool_result") => {
                flush_user(&mut parts, out);
                out.push(tool_message(block, &at)?);
            }
            _ => return Err(block_error(block, &at, "text, image or tool_result")),
        }
    }
    flush_user(&mut parts, out);
    Ok(())
}

fn flush_user(parts: &mut Vec<Value>, out: &mut Vec<Value>) {
    if !parts.is_empty() {
        let content = plain_if_single_text(std::mem::take(parts));
        out.push(json!({"role": "user", "content": content}));
    }
}

/// An image block as an `image_url` part; base64 data goes into a data URL.
fn image_part(block: &Value, at: &str) -> Result<Value, RequestError> {
    let source = &block["source"];
    let url = match (str_at(source, "type"), str_at(source, "url")) {
        (Some("url"), Some(url)) => url.to_owned(),
        (Some("base64"), _) => format!(
            "data:{};base64,{}",
            str_at(source, "media_type").unwrap_or("image/png"),
            str_at(source, "data").unwrap_or_default()
        ),
        _ => {
            return Err(RequestError::invalid(
                at,
                "the image source must be `base64` or `url`",
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `tool_result` as a `tool` message; OpenAI tool messages take text only, and have no
/// `is_error` flag.
fn tool_message(block: &Value, at: &str) -> Result<Value, RequestError> {
    let id = str_at(block, "tool_use_id")
        .ok_or_else(|| RequestError::invalid(at, "the tool result has no `tool_use_id`"))?;
    let content = match block.get("content") {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(blocks) => texts(blocks, &format!("{at}.content"))?.into(),
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

/// An assistant message: text blocks as content, `tool_use` blocks as tool calls;
/// thinking blocks are left out (OpenAI requests have no place for them).
fn assistant_message(content: &Value, at: &str) -> Result<Value, RequestError> {
    let Value::Array(blocks) = content else {
        return Ok(json!({"role": "assistant", "content": content}));
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match str_at(block, "type") {
            Some("text") => parts.push(json!({"type": "text", "text": str_at(block, "text")})),
            Some("tool_use") => calls.push(tool_call(block)),
            Some("thinking" | "redacted_thinking") => {}
            _ => {
                return Err(block_error(
                    block,
                    &format!("{at}.content[{j}]"),
                    "text or tool_use",
                ))
            }
        }
    }
    let content = if !parts.is_empty() {
        plain_if_single_text(parts)
    } else if calls.is_empty() {
        Value::String(String::new())
    } else {
        Value::Null
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    Ok(message)
}
