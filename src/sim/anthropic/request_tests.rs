//! Anthropic request parsing: blocks, tool conversations, tool choices and the 400s.

use super::parse;
use crate::sim::tools::ToolChoice;
use serde_json::{json, Value};

fn rejected(body: &Value) -> String {
    match parse(body.to_string().as_bytes()) {
        Ok(_) => unreachable!("{body} was accepted"),
        Err(r) => r.message,
    }
}

fn tool_turns(result_id: &str) -> Value {
    json!({"model": "m", "max_tokens": 50, "system": [{"type": "text", "text": "be brief"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [
        {"role": "user", "content": [{"type": "text", "text": "weather?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
            "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": result_id,
            "content": [{"type": "text", "text": "sunny"}]}]}]})
}

#[test]
fn tool_results_are_read_and_named() {
    let p = parse(tool_turns("toolu_1").to_string().as_bytes())
        .map_err(|r| r.message)
        .unwrap_or_default();
    assert_eq!(p.texts[0], "be brief");
    assert_eq!(p.tool_results.len(), 1);
    assert_eq!(
        (
            p.tool_results[0].name.as_str(),
            p.tool_results[0].content.as_str()
        ),
        ("get_weather", "sunny")
    );
}

#[test]
fn the_400s() {
    assert!(rejected(&tool_turns("toolu_2")).contains("toolu_2"));
    let no_max = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    assert!(rejected(&no_max).contains("max_tokens"));
    let assistant_first = json!({"model": "m", "max_tokens": 5,
        "messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]});
    assert!(rejected(&assistant_first).contains("first message"));
    let twice = json!({"model": "m", "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]});
    assert!(rejected(&twice).contains("alternate"));
    let bad_image = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user",
        "content": [{"type": "image", "source": {"type": "base64"}}]}]});
    rejected(&bad_image);
    let unknown_tool = json!({"model": "m", "max_tokens": 5, "tool_choice": {"type": "tool", "name": "x"},
        "messages": [{"role": "user", "content": "x"}]});
    assert!(rejected(&unknown_tool).contains("tool_choice"));
}

#[test]
fn tool_choices_map_to_the_neutral_rule() {
    let body = |choice: Value| {
        json!({"model": "m", "max_tokens": 5, "tool_choice": choice,
        "tools": [{"name": "a", "input_schema": {"type": "object"}}, {"name": "b"}],
        "messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": "u"}})
    };
    let read = |choice| {
        parse(body(choice).to_string().as_bytes())
            .map_err(|r| r.message)
            .unwrap_or_default()
    };
    let any = read(json!({"type": "any", "disable_parallel_tool_use": true}));
    assert_eq!(
        (any.tool_choice, any.parallel_tool_calls),
        (ToolChoice::Required, false)
    );
    assert_eq!(read(json!({"type": "none"})).tool_choice, ToolChoice::None);
    assert_eq!(
        read(json!({"type": "tool", "name": "b"})).tool_choice,
        ToolChoice::Named("b".into())
    );
    assert_eq!(read(json!({"type": "auto"})).tools.len(), 2);
}
