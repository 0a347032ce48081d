//! Chat Completions requests: the fields the sim acts on (any other field is accepted and
//! ignored) and OpenAI's 400s for inconsistent ones. `n` is bounded to 1..=8 here (the
//! real API allows more; eight choices are plenty for tests and keep answers small), and
//! `top_logprobs` to 0..=20 as in the real API.

use super::super::echo::DEFAULT_MODEL;
use super::super::prompt::{Output, Prompt, Rejection};
use super::super::tools::{Tool, ToolChoice, ToolResult};
use serde::Deserialize;
use serde_json::{json, Value};

/// The largest `n` the sim accepts.
pub(in crate::sim) const MAX_N: i64 = 8;

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u32>,
    /// The newer name of `max_tokens`.
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    tools: Option<Vec<ToolDef>>,
    #[serde(default)]
    tool_choice: Option<WireChoice>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<ResponseFormat>,
    #[serde(default)]
    n: Option<i64>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<i64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Message {
    role: String,
    /// Null for an assistant message that only calls tools.
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Option<Vec<CallMade>>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

impl Message {
    fn calls(&self) -> &[CallMade] {
        self.tool_calls.as_deref().unwrap_or_default()
    }
}

/// A string, or an array of parts (`text`, `image_url`, …) of which the text ones count.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts.iter().filter_map(|p| p.text.as_deref()).collect(),
        }
    }
}

/// A tool call of an earlier assistant message.
#[derive(Deserialize)]
struct CallMade {
    id: String,
    #[serde(default)]
    function: Option<FunctionCalled>,
}

#[derive(Deserialize)]
struct FunctionCalled {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct ToolDef {
    /// Absent for tool kinds other than `function`, which the sim never calls.
    #[serde(default)]
    function: Option<FunctionDef>,
}

#[derive(Deserialize)]
struct FunctionDef {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
}

/// `"none" | "auto" | "required"`, or `{"type": "function", "function": {"name"}}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireChoice {
    Mode(String),
    Named { function: Named },
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchema },
}

#[derive(Deserialize)]
struct JsonSchema {
    #[serde(default)]
    schema: Option<Value>,
}

pub(in crate::sim) fn parse(body: &[u8]) -> Result<Prompt, Rejection> {
    let req: Request = serde_json::from_slice(body)?;
    check_n(&req)?;
    check_tool_messages(&req.messages)?;
    let tools = tools(&req);
    let mut prompt = Prompt {
        model: if req.model.is_empty() {
            DEFAULT_MODEL.into()
        } else {
            req.model.clone()
        },
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        stop: match &req.stop {
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
            None => Vec::new(),
        },
        stream: req.stream,
        include_usage: req.stream_options.as_ref().is_some_and(|o| o.include_usage),
        tool_choice: tool_choice(req.tool_choice.as_ref(), &tools)?,
        tools,
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        tool_results: tool_results(&req.messages),
        output: output(req.response_format.as_ref())?,
        n: u32::try_from(req.n.unwrap_or(1)).unwrap_or(1),
        top_logprobs: top_logprobs(&req)?,
        ..Prompt::default()
    };
    for m in &req.messages {
        let text = m.content.as_ref().map(Content::text).unwrap_or_default();
        if m.role == "user" {
            prompt.last_user.clone_from(&text);
        }
        prompt.texts.push(text);
    }
    Ok(prompt)
}

fn check_n(req: &Request) -> Result<(), Rejection> {
    let n = req.n.unwrap_or(1);
    let (limit, code) = match n {
        ..=0 => (
            "integer below minimum value. Expected a value >= 1",
            "integer_below_min_value",
        ),
        1..=MAX_N => return Ok(()),
        _ => (
            "integer above maximum value. Expected a value <= 8",
            "integer_above_max_value",
        ),
    };
    let message = format!("Invalid 'n': {limit}, but got {n} instead.");
    Err(Rejection::new(message).param("n").code(code))
}

fn top_logprobs(req: &Request) -> Result<Option<u32>, Rejection> {
    let top = req.top_logprobs.unwrap_or(0);
    if !(0..=20).contains(&top) {
        let message = format!(
            "Invalid 'top_logprobs': expected a value between 0 and 20, but got {top} instead."
        );
        return Err(Rejection::new(message)
            .param("top_logprobs")
            .code("invalid_value"));
    }
    match req.logprobs {
        Some(true) => Ok(u32::try_from(top).ok()),
        _ if req.top_logprobs.is_some() => Err(Rejection::new(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true if 'top_logprobs' is used.",
        )
        .param("top_logprobs")
        .code("invalid_value")),
        _ => Ok(None),
    }
}

/// Every `tool` message must answer a call of the assistant message its run of tool
/// messages follows, as the real API demands.
fn check_tool_messages(messages: &[Message]) -> Result<(), Rejection> {
    let mut calls: Option<Vec<&str>> = None;
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_str() {
            "tool" => {
                let Some(ids) = &calls else {
                    return Err(Rejection::new("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.").param(format!("messages.[{i}].role")));
                };
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                if !ids.contains(&id) {
                    let message = format!("Invalid parameter: 'tool_call_id' of '{id}' not found in 'tool_calls' of previous message.");
                    return Err(
                        Rejection::new(message).param(format!("messages.[{i}].tool_call_id"))
                    );
                }
            }
            "assistant" if !m.calls().is_empty() => {
                calls = Some(m.calls().iter().map(|c| c.id.as_str()).collect());
            }
            _ => calls = None,
        }
    }
    Ok(())
}

/// The results of the tool messages the conversation ends with, named after the calls
/// they answer.
fn tool_results(messages: &[Message]) -> Vec<ToolResult> {
    let tail = messages
        .iter()
        .rev()
        .take_while(|m| m.role == "tool")
        .count();
    let (before, results) = messages.split_at(messages.len() - tail);
    let calls = before.last().map_or(&[][..], Message::calls);
    results
        .iter()
        .map(|m| {
            let id = m.tool_call_id.as_deref().unwrap_or_default();
            let call = calls.iter().find(|c| c.id == id);
            ToolResult {
                name: call
                    .and_then(|c| c.function.as_ref())
                    .map_or(id.to_owned(), |f| f.name.clone()),
                content: m.content.as_ref().map(Content::text).unwrap_or_default(),
            }
        })
        .collect()
}

fn tools(req: &Request) -> Vec<Tool> {
    let functions = req
        .tools
        .iter()
        .flatten()
        .filter_map(|t| t.function.as_ref());
    let tool = |f: &FunctionDef| Tool {
        name: f.name.clone(),
        schema: f
            .parameters
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    };
    functions.map(tool).collect()
}

fn tool_choice(wire: Option<&WireChoice>, tools: &[Tool]) -> Result<ToolChoice, Rejection> {
    let reject = |m: String| Err(Rejection::new(m).param("tool_choice").code("invalid_value"));
    match wire {
        None | Some(WireChoice::Other(_)) => Ok(ToolChoice::Auto),
        Some(WireChoice::Mode(m)) => match m.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => reject(format!(
                "Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."
            )),
        },
        Some(WireChoice::Named { function }) if tools.iter().any(|t| t.name == function.name) => {
            Ok(ToolChoice::Named(function.name.clone()))
        }
        Some(WireChoice::Named { function }) => reject(format!(
            "Invalid value for 'tool_choice': function '{}' is not in 'tools'.",
            function.name
        )),
    }
}

fn output(format: Option<&ResponseFormat>) -> Result<Output, Rejection> {
    match format {
        None | Some(ResponseFormat::Text) => Ok(Output::Text),
        Some(ResponseFormat::JsonObject) => Ok(Output::JsonObject),
        Some(ResponseFormat::JsonSchema { json_schema }) => match &json_schema.schema {
            Some(schema) => Ok(Output::JsonSchema(schema.clone())),
            None => Err(Rejection::new(
                "Missing required parameter: 'response_format.json_schema.schema'.",
            )
            .param("response_format.json_schema.schema")
            .code("missing_required_parameter")),
        },
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
