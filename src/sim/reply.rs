//! The whole answer to a chat request, format-neutral: one [`Choice`] per requested
//! choice, each tool calls or text. Text is the echo, or the report of the tool results
//! the conversation ends with; as JSON when a response format asks for it (never cut,
//! so that it always parses). Choice `i > 0` adds ` (i+1)` to its text, so that the
//! choices differ yet stay deterministic.

use super::echo::{self, Finish};
use super::prompt::{Output, Prompt};
use super::schema;
use super::tools::{self, ToolCall};
use serde_json::json;

#[derive(Debug)]
pub(super) struct Reply {
    pub choices: Vec<Choice>,
    pub prompt_tokens: u32,
}

#[derive(Debug)]
pub(super) struct Choice {
    pub content: Content,
    pub finish: Finish,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Content {
    Text(String),
    Calls(Vec<ToolCall>),
}

impl Reply {
    /// Over all choices, as OpenAI counts them.
    pub fn completion_tokens(&self) -> u32 {
        self.choices.iter().map(|c| c.completion_tokens).sum()
    }
}

pub(super) fn build(prompt: &Prompt) -> Reply {
    Reply {
        choices: (0..prompt.n.max(1)).map(|i| choice(prompt, i)).collect(),
        prompt_tokens: echo::prompt_tokens(prompt),
    }
}

fn choice(prompt: &Prompt, i: u32) -> Choice {
    if let Some(calls) = tools::calls(prompt, i) {
        let tokens = calls
            .iter()
            .map(|c| 1 + echo::count_tokens(&c.arguments.to_string()))
            .sum();
        return Choice {
            content: Content::Calls(calls),
            finish: Finish::ToolUse,
            completion_tokens: tokens,
        };
    }
    let (text, finish) = text(prompt, i);
    Choice {
        completion_tokens: echo::count_tokens(&text),
        content: Content::Text(text),
        finish,
    }
}

fn text(prompt: &Prompt, i: u32) -> (String, Finish) {
    let mut full = match prompt.tool_results.as_slice() {
        [] => echo::echo(prompt),
        results => tools::report(results),
    };
    if i > 0 {
        full.push_str(&format!(" ({})", i + 1));
    }
    match &prompt.output {
        Output::Text => echo::cut(&full, prompt),
        Output::JsonObject => (json!({"answer": full}).to_string(), Finish::End),
        Output::JsonSchema(s) => (schema::instance(s, &full).to_string(), Finish::End),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::tools::ToolResult;

    fn prompt() -> Prompt {
        Prompt {
            texts: vec!["hello there".into()],
            last_user: "hello there".into(),
            ..Prompt::default()
        }
    }

    fn text_of(c: &Choice) -> &str {
        match &c.content {
            Content::Text(t) => t,
            Content::Calls(_) => "",
        }
    }

    #[test]
    fn n_choices_differ() {
        let r = build(&Prompt { n: 3, ..prompt() });
        let texts: Vec<&str> = r.choices.iter().map(text_of).collect();
        assert_eq!(
            texts,
            [
                "sim: hello there",
                "sim: hello there (2)",
                "sim: hello there (3)"
            ]
        );
        assert_eq!(r.completion_tokens(), 3 + 4 + 4);
    }

    #[test]
    fn json_outputs_parse() {
        let r = build(&Prompt {
            output: Output::JsonObject,
            ..prompt()
        });
        let v: serde_json::Value = serde_json::from_str(text_of(&r.choices[0])).unwrap_or_default();
        assert_eq!(v, json!({"answer": "sim: hello there"}));
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}},
            "required": ["n"]});
        let r = build(&Prompt {
            output: Output::JsonSchema(schema),
            max_tokens: Some(1),
            ..prompt()
        });
        let v: serde_json::Value = serde_json::from_str(text_of(&r.choices[0])).unwrap_or_default();
        assert!(v["n"].is_i64(), "{v}");
    }

    #[test]
    fn tool_results_are_reported() {
        let results = vec![ToolResult {
            name: "get_weather".into(),
            content: "sunny".into(),
        }];
        let r = build(&Prompt {
            tool_results: results,
            ..prompt()
        });
        assert_eq!(text_of(&r.choices[0]), "Based on get_weather: sunny");
        assert_eq!(r.choices[0].finish, Finish::End);
    }
}
