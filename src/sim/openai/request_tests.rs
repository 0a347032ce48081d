//! OpenAI request parsing: content shapes, tool conversations and the 400s.

use super::parse;
use crate::sim::prompt::Output;
use crate::sim::tools::ToolChoice;
use serde_json::{json, Value};

fn with(extra: Value) -> Value {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn rejected(body: &Value) -> (String, Option<String>) {
    match parse(body.to_string().as_bytes()) {
        Ok(_) => unreachable!("{body} was accepted"),
        Err(r) => (r.message, r.param),
    }
}

fn weather() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

#[test]
fn content_shapes_roles_and_unknown_fields_are_accepted() {
    let body = json!({"model": "m", "seed": 3, "user": "u", "presence_penalty": 0.5,
        "some_future_field": {"x": 1}, "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look "},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "here"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
            "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]});
    let p = parse(body.to_string().as_bytes())
        .map_err(|r| r.message)
        .unwrap_or_default();
    assert_eq!(p.last_user, "look here");
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
fn tool_messages_must_answer_the_previous_calls() {
    let lone = json!({"model": "m", "messages": [{"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "call_1", "content": "x"}]});
    assert_eq!(rejected(&lone).1.as_deref(), Some("messages.[1].role"));
    let unmatched = json!({"model": "m", "messages": [{"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "x"}]});
    let (message, param) = rejected(&unmatched);
    assert!(message.contains("call_2"), "{message}");
    assert_eq!(param.as_deref(), Some("messages.[2].tool_call_id"));
}

#[test]
fn bad_parameters_name_themselves() {
    assert_eq!(rejected(&with(json!({"n": 0}))).1.as_deref(), Some("n"));
    assert_eq!(rejected(&with(json!({"n": 9}))).1.as_deref(), Some("n"));
    let unknown = json!({"tools": weather(), "tool_choice":
        {"type": "function", "function": {"name": "nope"}}});
    assert_eq!(rejected(&with(unknown)).1.as_deref(), Some("tool_choice"));
    let schemaless =
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}});
    assert_eq!(
        rejected(&with(schemaless)).1.as_deref(),
        Some("response_format.json_schema.schema")
    );
    assert_eq!(
        rejected(&with(json!({"top_logprobs": 2}))).1.as_deref(),
        Some("top_logprobs")
    );
}

#[test]
fn tools_choices_and_formats_are_read() {
    let body = with(
        json!({"tools": weather(), "tool_choice": "required", "n": 8,
        "parallel_tool_calls": false, "logprobs": true, "top_logprobs": 3,
        "response_format": {"type": "json_object"}}),
    );
    let p = parse(body.to_string().as_bytes())
        .map_err(|r| r.message)
        .unwrap_or_default();
    assert_eq!(
        (p.tool_choice, p.parallel_tool_calls, p.n),
        (ToolChoice::Required, false, 8)
    );
    assert_eq!((p.top_logprobs, p.output), (Some(3), Output::JsonObject));
    assert_eq!(p.tools[0].name, "get_weather");
}
