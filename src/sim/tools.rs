//! Which tools the sim calls, format-neutral. The rule, in order:
//! 1. no tools, `tool_choice` none, or a conversation ending in tool results: no call
//!    (the answer is text, reporting the results if any);
//! 2. a named tool (`{"type":"function",…}` / `{"type":"tool",…}`): that tool;
//! 3. `required` (Anthropic `any`) with 2+ tools and parallel calls allowed: every tool,
//!    in request order;
//! 4. otherwise (`auto`, or one tool, or parallel calls disabled): the first tool.
//!
//! Arguments are [`schema::instance`]s of the tool's parameters, strings quoting the
//! last user message; ids hash the conversation, the choice and the call's position.

use super::digest;
use super::prompt::Prompt;
use super::schema;
use serde_json::Value;

/// A tool offered by the request.
#[derive(Debug, Clone)]
pub(super) struct Tool {
    pub name: String,
    /// JSON schema of the arguments (OpenAI `parameters`, Anthropic `input_schema`).
    pub schema: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ToolChoice {
    Auto,
    None,
    /// OpenAI `required`, Anthropic `any`.
    Required,
    Named(String),
}

/// A tool result the conversation ends with.
#[derive(Debug, Clone)]
pub(super) struct ToolResult {
    /// The called tool's name, looked up from the call it answers.
    pub name: String,
    pub content: String,
}

/// One call the answer makes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolCall {
    /// Hash that the wire format turns into its id (`call_…`, `toolu_…`).
    pub key: u64,
    pub name: String,
    pub arguments: Value,
}

/// How much of the last user message string arguments quote.
const QUOTE_CHARS: usize = 50;

/// The calls of choice number `choice`, or `None` for a text answer.
pub(super) fn calls(prompt: &Prompt, choice: u32) -> Option<Vec<ToolCall>> {
    let picked = pick(prompt)?;
    let quote: String = prompt.last_user.chars().take(QUOTE_CHARS).collect();
    let conversation = prompt.digest();
    let calls = picked.into_iter().enumerate().map(|(i, tool)| {
        let (c, i) = (u64::from(choice).to_le_bytes(), (i as u64).to_le_bytes());
        let parts = [
            &conversation.to_le_bytes()[..],
            &c,
            &i,
            tool.name.as_bytes(),
        ];
        ToolCall {
            key: digest::of_parts(parts),
            name: tool.name.clone(),
            arguments: schema::instance(&tool.schema, &quote),
        }
    });
    Some(calls.collect())
}

/// The tools to call, by the rule in the module doc.
fn pick(prompt: &Prompt) -> Option<Vec<&Tool>> {
    if prompt.tools.is_empty() || !prompt.tool_results.is_empty() {
        return None;
    }
    match &prompt.tool_choice {
        ToolChoice::None => None,
        ToolChoice::Named(name) => prompt
            .tools
            .iter()
            .find(|t| &t.name == name)
            .map(|t| vec![t]),
        ToolChoice::Required if prompt.parallel_tool_calls && prompt.tools.len() >= 2 => {
            Some(prompt.tools.iter().collect())
        }
        ToolChoice::Required | ToolChoice::Auto => prompt.tools.first().map(|t| vec![t]),
    }
}

/// The text answering tool results: `Based on NAME: CONTENT`, joined by `; `.
pub(super) fn report(results: &[ToolResult]) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|r| format!("{}: {}", r.name, r.content))
        .collect();
    format!("Based on {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prompt(choice: ToolChoice, tools: &[&str]) -> Prompt {
        Prompt {
            texts: vec!["weather in Paris?".into()],
            last_user: "weather in Paris?".into(),
            tools: tools
                .iter()
                .map(|n| Tool {
                    name: (*n).into(),
                    schema: json!({"type": "object",
                    "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                })
                .collect(),
            tool_choice: choice,
            ..Prompt::default()
        }
    }

    fn names(p: &Prompt) -> Option<Vec<String>> {
        calls(p, 0).map(|c| c.into_iter().map(|c| c.name).collect())
    }

    #[test]
    fn the_selection_rule() {
        let both = ["a", "b"];
        assert_eq!(
            names(&prompt(ToolChoice::Auto, &both)),
            Some(vec!["a".into()])
        );
        assert_eq!(names(&prompt(ToolChoice::None, &both)), None);
        assert_eq!(names(&prompt(ToolChoice::Auto, &[])), None);
        let named = prompt(ToolChoice::Named("b".into()), &both);
        assert_eq!(names(&named), Some(vec!["b".into()]));
        let required = prompt(ToolChoice::Required, &both);
        assert_eq!(names(&required), Some(vec!["a".into(), "b".into()]));
        let serial = Prompt {
            parallel_tool_calls: false,
            ..prompt(ToolChoice::Required, &both)
        };
        assert_eq!(names(&serial), Some(vec!["a".into()]));
        let answered = Prompt {
            tool_results: vec![ToolResult {
                name: "a".into(),
                content: "sunny".into(),
            }],
            ..prompt(ToolChoice::Required, &both)
        };
        assert_eq!(names(&answered), None);
    }

    #[test]
    fn ids_and_arguments_are_deterministic_and_distinct() {
        let p = prompt(ToolChoice::Required, &["a", "b"]);
        let (one, two) = (calls(&p, 0), calls(&p, 0));
        assert_eq!(one, two);
        let one = one.unwrap_or_default();
        assert_ne!(one[0].key, one[1].key);
        assert_eq!(one[0].arguments, json!({"city": "weather in Paris?"}));
        let other = calls(&p, 1).unwrap_or_default();
        assert_ne!(one[0].key, other[0].key, "choices differ");
    }

    #[test]
    fn reports_quote_the_results() {
        let r = [ToolResult {
            name: "get_weather".into(),
            content: "18C".into(),
        }];
        assert_eq!(report(&r), "Based on get_weather: 18C");
    }
}
