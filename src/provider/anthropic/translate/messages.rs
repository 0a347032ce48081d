//! OpenAI chat messages to Anthropic `system` and `messages`: system and developer
//! messages move to the top, tool results become `user` content, and consecutive
//! messages of one role merge, since Anthropic wants the roles to alternate.

use super::{str_at, RequestError};
use serde_json::{json, Value};

/// The Anthropic `system` (if any) and `messages` of OpenAI `messages`.
pub(super) fn to_anthropic(
    messages: Option<&Value>,
) -> Result<(Option<Value>, Value), RequestError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| RequestError::invalid("messages", "must be a list of messages"))?;
    let mut system = Vec::new();
    let mut turns = Turns::default();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let content = message.get("content").unwrap_or(&Value::Null);
        match str_at(message, "role") {
            Some("system" | "developer") => system.extend(texts(content, &at)?),
            Some("user") => turns.push("user", user_blocks(content, &at)?),
            Some("assistant") => turns.push("assistant", assistant_blocks(message, &at)?),
            Some("tool") => turns.push("user", vec![tool_result(message, &at)?]),
            Some(role) => {
                let problem = format!(
                    "role `{role}` cannot be sent to Anthropic; use system, developer, user, \
                     assistant or tool"
                );
                return Err(RequestError::invalid(at, problem));
            }
            None => return Err(RequestError::invalid(at, "the message has no `role`")),
        }
    }
    Ok((system_value(system), turns.into_value()))
}

/// Anthropic messages under construction; a push of the last role's role merges.
#[derive(Default)]
struct Turns(Vec<(&'static str, Vec<Value>)>);

impl Turns {
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => self.0.push((role, blocks)),
        }
    }

    fn into_value(self) -> Value {
        let messages = self
            .0
            .into_iter()
            .map(|(role, blocks)| json!({"role": role, "content": plain_if_single_text(blocks)}));
        Value::Array(messages.collect())
    }
}

/// One text block as a plain string, anything else as the block list.
pub(super) fn plain_if_single_text(blocks: Vec<Value>) -> Value {
    match <[Value; 1]>::try_from(blocks) {
        Ok([block]) if block["type"] == "text" => block["text"].clone(),
        Ok([block]) => Value::Array(vec![block]),
        Err(blocks) => Value::Array(blocks),
    }
}

fn system_value(texts: Vec<String>) -> Option<Value> {
    let blocks: Vec<Value> = texts.into_iter().map(text_block).collect();
    (!blocks.is_empty()).then(|| plain_if_single_text(blocks))
}

fn text_block(text: String) -> Value {
    json!({"type": "text", "text": text})
}

/// The non-empty texts of a string, null or list-of-text-parts content.
fn texts(content: &Value, at: &str) -> Result<Vec<String>, RequestError> {
    let texts = match content {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(
                |(j, part)| match (str_at(part, "type"), str_at(part, "text")) {
                    (Some("text"), Some(text)) => Ok(text.to_owned()),
                    _ => Err(part_error(part, &format!("{at}.content[{j}]"), "`text`")),
                },
            )
            .collect::<Result<_, _>>()?,
        _ => return Err(content_error(at)),
    };
    Ok(texts.into_iter().filter(|t| !t.is_empty()).collect())
}

fn content_error(at: &str) -> RequestError {
    RequestError::invalid(
        format!("{at}.content"),
        "must be a string or a list of parts",
    )
}

fn part_error(part: &Value, at: &str, allowed: &str) -> RequestError {
    let problem = match str_at(part, "type") {
        Some(kind) => format!("part type `{kind}` cannot be sent to Anthropic here; use {allowed}"),
        None => format!("the part has no `type`; use {allowed}"),
    };
    RequestError::invalid(at, problem)
}

fn user_blocks(content: &Value, at: &str) -> Result<Vec<Value>, RequestError> {
    let Value::Array(parts) = content else {
        return Ok(texts(content, at)?.into_iter().map(text_block).collect());
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match (str_at(part, "type"), str_at(part, "text")) {
            (Some("text"), Some("")) => {}
            (Some("text"), Some(text)) => blocks.push(text_block(text.to_owned())),
            (Some("image_url"), _) => blocks.push(image_block(part, &at)?),
            _ => return Err(part_error(part, &at, "`text` or `image_url`")),
        }
    }
    Ok(blocks)
}

/// An `image_url` part as an Anthropic image: a base64 data URL stays base64 (the text
/// is passed through, not decoded), an http(s) URL becomes a URL source.
fn image_block(part: &Value, at: &str) -> Result<Value, RequestError> {
    let image = &part["image_url"];
    let url = image
        .as_str()
        .or_else(|| str_at(image, "url"))
        .ok_or_else(|| RequestError::invalid(at, "the image part has no `image_url.url`"))?;
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    let (media_type, data) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)))
        .filter(|(media_type, _)| !media_type.is_empty())
        .ok_or_else(|| {
            RequestError::invalid(
                at,
                "the image URL must be http(s) or a base64 data URL \
                 (`data:image/png;base64,...`)",
            )
        })?;
    Ok(json!({"type": "image", "source":
        {"type": "base64", "media_type": media_type, "data": data}}))
}

/// An assistant message's text (content and `refusal`) and `tool_use` blocks.
fn assistant_blocks(message: &Value, at: &str) -> Result<Vec<Value>, RequestError> {
    let content = message.get("content").unwrap_or(&Value::Null);
    let mut texts_found = match content {
        Value::Array(parts) => assistant_parts(parts, at)?,
        _ => texts(content, at)?,
    };
    texts_found.extend(
        str_at(message, "refusal")
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
    );
    let mut blocks: Vec<Value> = texts_found.into_iter().map(text_block).collect();
    if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
        let calls = calls
            .as_array()
            .ok_or_else(|| RequestError::invalid(format!("{at}.tool_calls"), "must be a list"))?;
        for (j, call) in calls.iter().enumerate() {
            blocks.push(tool_use(call, &format!("{at}.tool_calls[{j}]"))?);
        }
    }
    Ok(blocks)
}

/// Assistant parts: `text` and `refusal`, both sent as text.
fn assistant_parts(parts: &[Value], at: &str) -> Result<Vec<String>, RequestError> {
    let mut texts = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let text = match str_at(part, "type") {
            Some("text") => str_at(part, "text"),
            Some("refusal") => str_at(part, "refusal"),
            _ => None,
        };
        let at = format!("{at}.content[{j}]");
        let text = text.ok_or_else(|| part_error(part, &at, "`text` or `refusal`"))?;
        if !text.is_empty() {
            texts.push(text.to_owned());
        }
    }
    Ok(texts)
}

/// An OpenAI tool call as a `tool_use` block; `arguments` must hold a JSON object.
fn tool_use(call: &Value, at: &str) -> Result<Value, RequestError> {
    let id =
        str_at(call, "id").ok_or_else(|| RequestError::invalid(at, "the tool call has no `id`"))?;
    let function = &call["function"];
    let name = str_at(function, "name").ok_or_else(|| {
        RequestError::invalid(at, format!("tool call `{id}` has no `function.name`"))
    })?;
    let input = match function.get("arguments") {
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            RequestError::invalid(
                at,
                format!("tool call `{id}` has arguments that are not JSON: {e}"),
            )
        })?,
        Some(other) => other.clone(),
        None => json!({}),
    };
    if !input.is_object() {
        let problem = format!("tool call `{id}` has arguments that are not a JSON object");
        return Err(RequestError::invalid(at, problem));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// A `tool` message as a `tool_result` block; its content stays a string, or text blocks.
fn tool_result(message: &Value, at: &str) -> Result<Value, RequestError> {
    let id = str_at(message, "tool_call_id")
        .ok_or_else(|| RequestError::invalid(at, "the tool message has no `tool_call_id`"))?;
    let content = match message.get("content").unwrap_or(&Value::Null) {
        Value::String(s) => Value::String(s.clone()),
        content => Value::Array(texts(content, at)?.into_iter().map(text_block).collect()),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}
