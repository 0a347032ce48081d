//! OpenAI to Anthropic requests: messages, content parts, tools.

use super::*;

#[test]
fn system_and_developer_messages_move_to_the_top_in_order() {
    let b = body(json!({"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "no emoji"}]}]}));
    assert_eq!(
        b["system"],
        json!([{"type": "text", "text": "be brief"}, {"type": "text", "text": "no emoji"}])
    );
    assert_eq!(b["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(b["model"], MODEL);
    assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(b.get("stream"), None);
}

#[test]
fn a_single_system_text_stays_a_string() {
    let b = body(
        json!({"messages": [{"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"}]}),
    );
    assert_eq!(b["system"], "be brief");
}

#[test]
fn images_from_data_urls_and_http_urls() {
    let b = body(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]}]}));
    assert_eq!(
        b["messages"][0]["content"],
        json!([{"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}])
    );
}

#[test]
fn bad_image_urls_and_unknown_parts_are_refused_by_name() {
    let e = refusal(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}));
    assert!(e.to_string().contains("messages[0].content[0]"), "{e}");
    let e = refusal(json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}));
    assert!(matches!(&e, RequestError::Invalid { .. }));
    assert!(e.to_string().contains("`input_audio`"), "{e}");
}

#[test]
fn a_two_turn_tool_conversation() {
    let b = body(json!({"messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "call_1",
            "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "assistant", "content": "It is 18C."},
        {"role": "user", "content": "thanks"}]}));
    assert_eq!(
        b["messages"],
        json!([
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1",
                "content": "18C"}]},
            {"role": "assistant", "content": "It is 18C."},
            {"role": "user", "content": "thanks"}])
    );
}

#[test]
fn parallel_tool_results_and_the_next_user_message_merge_into_one() {
    let b = body(json!({"messages": [
        {"role": "user", "content": "compare"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"x\":1}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "one"}]},
        {"role": "tool", "tool_call_id": "b", "content": "two"},
        {"role": "user", "content": "and?"}]}));
    let messages = b["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1]["content"],
        json!([{"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "g", "input": {"x": 1}}])
    );
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "one"}]},
            {"type": "tool_result", "tool_use_id": "b", "content": "two"},
            {"type": "text", "text": "and?"}]})
    );
}

#[test]
fn consecutive_user_messages_merge() {
    let b = body(json!({"messages": [{"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]}]}));
    assert_eq!(
        b["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "a"},
            {"type": "text", "text": "b"}]}])
    );
}

#[test]
fn an_assistant_refusal_is_sent_as_text() {
    let b = body(json!({"messages": [{"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "refusal": "I can't help with that."}]}));
    assert_eq!(b["messages"][1]["content"], "I can't help with that.");
}

#[test]
fn tool_arguments_that_are_not_json_name_the_call() {
    let e = refusal(
        json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "call_9",
        "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}),
    );
    let text = e.to_string();
    assert!(
        text.contains("call_9") && text.contains("messages[0].tool_calls[0]"),
        "{text}"
    );
}

#[test]
fn messages_without_a_role_or_with_an_unknown_one_are_refused() {
    let e = refusal(json!({"messages": [{"content": "hi"}]}));
    assert_eq!(
        e,
        RequestError::invalid("messages[0]", "the message has no `role`")
    );
    let e = refusal(json!({"messages": [{"role": "function", "content": "x"}]}));
    assert!(e.to_string().contains("role `function`"), "{e}");
    assert!(
        matches!(refusal(json!({"model": "gpt"})), RequestError::Invalid { at, .. } if at == "messages")
    );
}

#[test]
fn tools_become_input_schemas() {
    let b = body(hi(json!({"tools": [
        {"type": "function", "function": {"name": "weather", "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": true}},
        {"type": "function", "function": {"name": "now"}}]})));
    assert_eq!(
        b["tools"],
        json!([{"name": "weather", "description": "Weather now", "input_schema":
                {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}}])
    );
    assert_eq!(b.get("tool_choice"), None);
}

fn choice(extra: Value) -> Value {
    let mut request = hi(json!({"tools": [{"type": "function", "function": {"name": "f"}}]}));
    for (k, v) in object(extra) {
        request[k] = v;
    }
    body(request)
        .get("tool_choice")
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn tool_choice_variants() {
    assert_eq!(
        choice(json!({"tool_choice": "auto"})),
        json!({"type": "auto"})
    );
    assert_eq!(
        choice(json!({"tool_choice": "none"})),
        json!({"type": "none"})
    );
    assert_eq!(
        choice(json!({"tool_choice": "required"})),
        json!({"type": "any"})
    );
    assert_eq!(
        choice(json!({"tool_choice": {"type": "function", "function": {"name": "f"}}})),
        json!({"type": "tool", "name": "f"})
    );
    assert_eq!(
        choice(json!({"tool_choice": "required", "parallel_tool_calls": false})),
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        choice(json!({"parallel_tool_calls": false})),
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(choice(json!({"parallel_tool_calls": true})), Value::Null);
    assert!(matches!(
        refusal(hi(json!({"tools": [], "tool_choice": "sometimes"}))),
        RequestError::Invalid { at, .. } if at == "tool_choice"
    ));
}

#[test]
fn a_json_schema_response_format_forces_a_tool() {
    let schema = json!({"type": "object", "properties": {"answer": {"type": "integer"}}});
    let openai = hi(json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "sum", "schema": schema, "strict": true}}}));
    let out = request_to_anthropic(&object(openai), MODEL, true, Unhonoured::Refuse).unwrap();
    assert_eq!(out.body["tools"][0]["name"], "sum");
    assert_eq!(out.body["tools"][0]["input_schema"], schema);
    assert_eq!(
        out.body["tool_choice"],
        json!({"type": "tool", "name": "sum"})
    );
    assert_eq!(out.body["stream"], true);
    assert_eq!(
        out.context,
        ResponseContext {
            json_tool: Some("sum".into()),
            model: MODEL.into(),
            created: 0
        }
    );
}

#[test]
fn a_json_object_response_format_forces_an_object_tool() {
    let out = request_to_anthropic(
        &object(hi(json!({"response_format": {"type": "json_object"}}))),
        MODEL,
        false,
        Unhonoured::Refuse,
    )
    .unwrap();
    assert_eq!(
        out.body["tools"][0]["input_schema"],
        json!({"type": "object"})
    );
    assert_eq!(
        out.body["tool_choice"],
        json!({"type": "tool", "name": "json_response"})
    );
    assert_eq!(out.context.json_tool.as_deref(), Some("json_response"));
    let text = body(hi(json!({"response_format": {"type": "text"}})));
    assert_eq!((text.get("tools"), text.get("tool_choice")), (None, None));
}

#[test]
fn a_json_response_format_next_to_tools_is_refused_or_dropped() {
    let openai = hi(json!({"response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}]}));
    let e = refusal(openai.clone());
    assert!(matches!(&e, RequestError::Unsupported(u) if u.parameter == "response_format"));
    assert!(e.to_string().contains("`tools`"), "{e}");
    let out = request_to_anthropic(&object(openai), MODEL, false, Unhonoured::Drop).unwrap();
    assert_eq!(out.body["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(out.context.json_tool, None);
}
