//! OpenAI `tools`, `tool_choice`, `parallel_tool_calls` and `response_format` to
//! Anthropic `tools` and `tool_choice`. A JSON `response_format` becomes one forced tool.

use super::request::Fields;
use super::{params, str_at, RequestError};
use serde_json::{json, Map, Value};

/// The forced tool's name when the JSON schema has none.
const JSON_TOOL: &str = "json_response";

/// Puts `tools` and `tool_choice` into `body`; gives the name of the forced JSON tool
/// when `response_format` asked for JSON.
pub(super) fn to_anthropic(
    fields: &Fields,
    body: &mut Map<String, Value>,
) -> Result<Option<String>, RequestError> {
    let mut tools = match fields.get("tools") {
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(i, tool)| tool_definition(tool, &format!("tools[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(RequestError::invalid("tools", "must be a list of tools")),
        None => Vec::new(),
    };
    let forced = fields.get("response_format").and_then(json_tool);
    let choice = match &forced {
        Some(tool) => {
            let name = tool["name"].clone();
            tools.push(tool.clone());
            Some(json!({"type": "tool", "name": name}))
        }
        None => tool_choice(fields)?,
    };
    // Anthropic refuses a `tool_choice` without tools, and it means nothing then.
    if tools.is_empty() {
        return Ok(None);
    }
    body.insert("tools".into(), tools.into());
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }
    Ok(forced.and_then(|t| t["name"].as_str().map(str::to_owned)))
}

/// `{type: function, function: {name, description, parameters}}` as
/// `{name, description, input_schema}`; `strict` has no Anthropic counterpart.
fn tool_definition(tool: &Value, at: &str) -> Result<Value, RequestError> {
    if str_at(tool, "type").is_some_and(|t| t != "function") {
        let problem = "only `function` tools can be sent to Anthropic";
        return Err(RequestError::invalid(at, problem));
    }
    let function = &tool["function"];
    let name = str_at(function, "name")
        .ok_or_else(|| RequestError::invalid(at, "the tool has no `function.name`"))?;
    let schema = match function.get("parameters") {
        Some(Value::Null) | None => json!({"type": "object", "properties": {}}),
        Some(schema) => schema.clone(),
    };
    let mut out = json!({"name": name, "input_schema": schema});
    if let Some(description) = function.get("description").filter(|d| !d.is_null()) {
        out["description"] = description.clone();
    }
    Ok(out)
}

/// The forced tool standing for a JSON `response_format`, if it asks for JSON.
fn json_tool(format: &Value) -> Option<Value> {
    let schema = match params::json_format(format)? {
        "json_schema" => &format["json_schema"],
        _ => &Value::Null,
    };
    let name = str_at(schema, "name").unwrap_or(JSON_TOOL);
    let input_schema = match schema.get("schema") {
        Some(Value::Null) | None => json!({"type": "object"}),
        Some(s) => s.clone(),
    };
    let description = str_at(schema, "description")
        .unwrap_or("Give your answer as this tool's input: a JSON object matching the schema.");
    Some(json!({"name": name, "description": description, "input_schema": input_schema}))
}

/// `tool_choice` with `parallel_tool_calls: false` as `disable_parallel_tool_use`.
fn tool_choice(fields: &Fields) -> Result<Option<Value>, RequestError> {
    let choice = match fields.get("tool_choice") {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            _ => return Err(choice_error()),
        }),
        Some(choice) => match (str_at(choice, "type"), str_at(&choice["function"], "name")) {
            (Some("function"), Some(name)) => Some(json!({"type": "tool", "name": name})),
            _ => return Err(choice_error()),
        },
    };
    let serial = fields.get("parallel_tool_calls") == Some(&Value::Bool(false));
    if !serial {
        return Ok(choice);
    }
    let mut choice = choice.unwrap_or_else(|| json!({"type": "auto"}));
    // Anthropic's `none` choice takes no other field; no tool use is never parallel.
    if choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = true.into();
    }
    Ok(Some(choice))
}

fn choice_error() -> RequestError {
    RequestError::invalid(
        "tool_choice",
        "must be `auto`, `none`, `required` or {\"type\": \"function\", \"function\": {\"name\": ...}}",
    )
}
