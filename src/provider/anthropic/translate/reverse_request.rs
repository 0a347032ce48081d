//! Anthropic Messages request to OpenAI chat request, for an Anthropic-shaped front door
//! served by an OpenAI-compatible endpoint. The messages have their own module.

use super::request::THINKING_BUDGETS;
use super::{reverse_messages, str_at, RequestError, Unsupported, OPENAI};
use serde_json::{json, Map, Value};

/// Anthropic parameters this translation maps; `service_tier` only concerns Anthropic.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
    "stream",
    "thinking",
    "service_tier",
];

/// An Anthropic Messages request as an OpenAI chat request. `max_tokens` stays
/// `max_tokens` (every OpenAI-compatible server takes it), `top_k` is passed on for the
/// servers that take it, a thinking budget becomes the nearest `reasoning_effort`, and a
/// stream asks for usage. Unknown parameters are [`RequestError::Unsupported`].
pub fn request_from_anthropic(
    anthropic: &Map<String, Value>,
) -> Result<Map<String, Value>, RequestError> {
    refuse_unknown(anthropic)?;
    let field = |name: &str| anthropic.get(name).filter(|v| !v.is_null());
    let mut openai = Map::new();
    if let Some(model) = field("model") {
        openai.insert("model".into(), model.clone());
    }
    let messages = reverse_messages::to_openai(field("system"), field("messages"))?;
    openai.insert("messages".into(), messages);
    for name in ["max_tokens", "temperature", "top_p", "top_k"] {
        if let Some(value) = field(name) {
            openai.insert(name.into(), value.clone());
        }
    }
    if let Some(stop) =
        field("stop_sequences").filter(|s| s.as_array().is_some_and(|s| !s.is_empty()))
    {
        openai.insert("stop".into(), stop.clone());
    }
    tools(field("tools"), field("tool_choice"), &mut openai)?;
    if let Some(user) = field("metadata")
        .and_then(|m| m.get("user_id"))
        .filter(|u| !u.is_null())
    {
        openai.insert("user".into(), user.clone());
    }
    if field("stream") == Some(&Value::Bool(true)) {
        openai.insert("stream".into(), true.into());
        openai.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(effort) = field("thinking").and_then(reasoning_effort) {
        openai.insert("reasoning_effort".into(), effort.into());
    }
    Ok(openai)
}

fn refuse_unknown(anthropic: &Map<String, Value>) -> Result<(), RequestError> {
    let mut unknown: Vec<_> = anthropic
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .collect();
    unknown.sort_by_key(|(k, _)| *k);
    match unknown.first() {
        Some((name, value)) => Err(Unsupported::new(
            name,
            value,
            OPENAI,
            "llm-router does not translate this Anthropic parameter to OpenAI's Chat \
             Completions; remove it or route to an Anthropic endpoint",
        )
        .into()),
        None => Ok(()),
    }
}

/// The `reasoning_effort` whose budget is the largest not above the thinking budget.
fn reasoning_effort(thinking: &Value) -> Option<&'static str> {
    if str_at(thinking, "type") != Some("enabled") {
        return None;
    }
    let budget = thinking["budget_tokens"].as_u64().unwrap_or(0);
    let level = THINKING_BUDGETS
        .iter()
        .rev()
        .find(|(_, b)| *b <= budget)
        .map_or("low", |(level, _)| level);
    Some(level)
}

/// `tools` and `tool_choice`, with `disable_parallel_tool_use` as `parallel_tool_calls`.
fn tools(
    tools: Option<&Value>,
    choice: Option<&Value>,
    openai: &mut Map<String, Value>,
) -> Result<(), RequestError> {
    if let Some(tools) = tools {
        let tools = tools
            .as_array()
            .ok_or_else(|| RequestError::invalid("tools", "must be a list of tools"))?;
        let tools: Result<Vec<_>, _> = tools.iter().enumerate().map(function_tool).collect();
        openai.insert("tools".into(), tools?.into());
    }
    let Some(choice) = choice else { return Ok(()) };
    let mapped = match (str_at(choice, "type"), str_at(choice, "name")) {
        (Some("auto"), _) => json!("auto"),
        (Some("any"), _) => json!("required"),
        (Some("none"), _) => json!("none"),
        (Some("tool"), Some(name)) => json!({"type": "function", "function": {"name": name}}),
        _ => {
            let problem = "must be of type `auto`, `any`, `none` or `tool` with a `name`";
            return Err(RequestError::invalid("tool_choice", problem));
        }
    };
    openai.insert("tool_choice".into(), mapped);
    if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        openai.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

/// A client tool `{name, description, input_schema}` as an OpenAI function tool. Server
/// tools (`web_search_...`, `bash_...`) run at Anthropic and have no counterpart.
fn function_tool((i, tool): (usize, &Value)) -> Result<Value, RequestError> {
    if let Some(kind) = str_at(tool, "type").filter(|t| *t != "custom") {
        let detail =
            format!("`{kind}` is an Anthropic server tool; route to an Anthropic endpoint");
        return Err(Unsupported::new(&format!("tools[{i}]"), tool, OPENAI, detail).into());
    }
    let name = str_at(tool, "name")
        .ok_or_else(|| RequestError::invalid(format!("tools[{i}]"), "the tool has no `name`"))?;
    let mut function = json!({"name": name});
    if let Some(description) = tool.get("description").filter(|d| !d.is_null()) {
        function["description"] = description.clone();
    }
    if let Some(schema) = tool.get("input_schema").filter(|s| !s.is_null()) {
        function["parameters"] = schema.clone();
    }
    Ok(json!({"type": "function", "function": function}))
}
