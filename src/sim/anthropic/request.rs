//! Messages requests: the fields the sim acts on (any other field is accepted and
//! ignored) and Anthropic's 400s: `max_tokens` required, no `system` role among the
//! messages, a user message first, roles alternating, and every `tool_result` answering
//! a `tool_use` of the assistant message just before it.

use crate::sim::prompt::{Prompt, Rejection};
use crate::sim::tools::{Tool, ToolChoice, ToolResult};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Request {
    model: String,
    #[serde(default)]
    system: Option<Content>,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tools: Option<Vec<ToolDef>>,
    #[serde(default)]
    tool_choice: Option<WireChoice>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Content,
}

/// A string, or an array of content blocks.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Image {
        #[serde(rename = "source")]
        _source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<Content>,
    },
    /// Documents, thinking and whatever comes next: accepted, not read.
    #[serde(other)]
    Other,
}

/// Checked for shape only: the sim does not look at images.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource {
    Base64 {
        #[serde(rename = "media_type")]
        _media_type: String,
        #[serde(rename = "data")]
        _data: String,
    },
    Url {
        #[serde(rename = "url")]
        _url: String,
    },
    File {
        #[serde(rename = "file_id")]
        _file_id: String,
    },
}

impl Content {
    fn blocks(&self) -> &[Block] {
        match self {
            Content::Text(_) => &[],
            Content::Blocks(b) => b,
        }
    }

    /// The text blocks (or the string), joined.
    fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Text and tool results, for the prompt token count.
    fn all_text(&self) -> String {
        let results = self.blocks().iter().filter_map(|b| match b {
            Block::ToolResult { content, .. } => content.as_ref().map(Content::text),
            _ => None,
        });
        std::iter::once(self.text())
            .chain(results)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Deserialize)]
struct ToolDef {
    name: String,
    /// Absent for Anthropic's server tools (`web_search`, …).
    #[serde(default)]
    input_schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: String,
    },
    None,
}

pub(in crate::sim) fn parse(body: &[u8]) -> Result<Prompt, Rejection> {
    let req: Request = serde_json::from_slice(body)?;
    let Some(max_tokens) = req.max_tokens else {
        return Err(Rejection::new("max_tokens: Field required"));
    };
    check_turns(&req.messages)?;
    let tools: Vec<Tool> = req.tools.iter().flatten().map(tool).collect();
    let (tool_choice, parallel) = tool_choice(req.tool_choice.as_ref(), &tools)?;
    let mut prompt = Prompt {
        model: req.model,
        max_tokens: Some(max_tokens),
        stop: req.stop_sequences.unwrap_or_default(),
        stream: req.stream,
        texts: req.system.as_ref().map(Content::text).into_iter().collect(),
        tools,
        tool_choice,
        parallel_tool_calls: parallel,
        tool_results: tool_results(&req.messages),
        ..Prompt::default()
    };
    for m in &req.messages {
        if m.role == "user" {
            prompt.last_user = m.content.text();
        }
        prompt.texts.push(m.content.all_text());
    }
    Ok(prompt)
}

/// Roles, their order, and tool results against the tool uses just before them.
fn check_turns(messages: &[Message]) -> Result<(), Rejection> {
    if messages.first().is_some_and(|m| m.role != "user") {
        return Err(Rejection::new(
            "messages: first message must use the \"user\" role",
        ));
    }
    let mut previous: Option<&Message> = None;
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m.role.as_str(), "user" | "assistant") {
            return Err(Rejection::new(format!("messages.{i}.role: Unexpected role \"{}\"; use the top-level `system` parameter for system prompts", m.role)));
        }
        if previous.is_some_and(|p| p.role == m.role) {
            return Err(Rejection::new(format!("messages.{i}: roles must alternate between \"user\" and \"assistant\", but found multiple \"{}\" roles in a row", m.role)));
        }
        check_results(i, m, previous)?;
        previous = Some(m);
    }
    Ok(())
}

fn check_results(i: usize, m: &Message, previous: Option<&Message>) -> Result<(), Rejection> {
    for (j, b) in m.content.blocks().iter().enumerate() {
        let Block::ToolResult { tool_use_id, .. } = b else {
            continue;
        };
        if use_name(previous, tool_use_id).is_none() {
            return Err(Rejection::new(format!("messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {tool_use_id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")));
        }
    }
    Ok(())
}

/// The name of the tool `id` called in `message`.
fn use_name<'a>(message: Option<&'a Message>, id: &str) -> Option<&'a str> {
    message?.content.blocks().iter().find_map(|b| match b {
        Block::ToolUse { id: used, name } if used == id => Some(name.as_str()),
        _ => None,
    })
}

/// The tool results of the last message, when it is the user's.
fn tool_results(messages: &[Message]) -> Vec<ToolResult> {
    let [.., previous, last] = messages else {
        return Vec::new();
    };
    let results = last.content.blocks().iter().filter_map(|b| match b {
        Block::ToolResult {
            tool_use_id,
            content,
        } => Some(ToolResult {
            name: use_name(Some(previous), tool_use_id)
                .unwrap_or(tool_use_id)
                .to_owned(),
            content: content.as_ref().map(Content::text).unwrap_or_default(),
        }),
        _ => None,
    });
    results.collect()
}

fn tool(t: &ToolDef) -> Tool {
    Tool {
        name: t.name.clone(),
        schema: t
            .input_schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object"})),
    }
}

/// The choice and whether parallel calls are allowed.
fn tool_choice(wire: Option<&WireChoice>, tools: &[Tool]) -> Result<(ToolChoice, bool), Rejection> {
    Ok(match wire {
        None => (ToolChoice::Auto, true),
        Some(WireChoice::Auto {
            disable_parallel_tool_use,
        }) => (ToolChoice::Auto, !disable_parallel_tool_use),
        Some(WireChoice::Any {
            disable_parallel_tool_use,
        }) => (ToolChoice::Required, !disable_parallel_tool_use),
        Some(WireChoice::None) => (ToolChoice::None, true),
        Some(WireChoice::Tool { name }) if tools.iter().any(|t| &t.name == name) => {
            (ToolChoice::Named(name.clone()), true)
        }
        Some(WireChoice::Tool { name }) => {
            return Err(Rejection::new(format!(
                "tool_choice.name: tool `{name}` is not among the `tools`"
            )))
        }
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
