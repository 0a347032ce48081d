//! Anthropic-shaped callers served by OpenAI-compatible endpoints.

use super::*;

#[test]
fn a_messages_request_becomes_a_chat_request() {
    let anthropic = object(
        json!({"model": "m", "max_tokens": 300, "system": "be brief",
        "stop_sequences": ["END"], "temperature": 0.2, "stream": true,
        "metadata": {"user_id": "u"}, "thinking": {"type": "enabled", "budget_tokens": 5000},
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "tool_use", "id": "tu", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu", "content": "ok"},
                {"type": "text", "text": "go on"}]}]}),
    );
    assert_eq!(
        Value::Object(request_from_anthropic(&anthropic).unwrap()),
        json!({"model": "m", "max_tokens": 300, "stop": ["END"], "temperature": 0.2,
            "stream": true, "stream_options": {"include_usage": true}, "user": "u",
            "reasoning_effort": "medium", "tool_choice": "required", "parallel_tool_calls": false,
            "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "tu",
                    "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "tu", "content": "ok"},
                {"role": "user", "content": "go on"}]})
    );
}

#[test]
fn unknown_parameters_and_server_tools_are_refused() {
    let e = request_from_anthropic(&object(json!({"messages": [], "container": "c"}))).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("`container` = \"c\" is not supported by OpenAI-compatible endpoints"),
        "{e}"
    );
    let tools =
        json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    let e = request_from_anthropic(&object(tools)).unwrap_err();
    assert!(
        matches!(&e, RequestError::Unsupported(u) if u.parameter == "tools[0]"),
        "{e}"
    );
}

#[test]
fn a_completion_becomes_a_message() {
    let completion = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
        "model": "gpt", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Sure.", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{\"x\":[1]}"}}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59,
            "prompt_tokens_details": {"cached_tokens": 20}}});
    assert_eq!(
        response_to_anthropic(&completion),
        json!({"id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt",
            "content": [{"type": "text", "text": "Sure."},
                {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": [1]}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 30, "cache_read_input_tokens": 20, "output_tokens": 9}})
    );
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[test]
fn chunks_become_anthropic_events() {
    let mut stream = StreamToAnthropic::new();
    let chunks = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hi"}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
            "function": {"name": "f", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "c2", "type": "function",
            "function": {"name": "g", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 3}}),
    ];
    let mut events: Vec<(&str, Value)> = chunks.iter().flat_map(|c| stream.chunk(c)).collect();
    events.extend(stream.finish());
    assert!(stream.finish().is_empty());
    let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(events.iter().all(|(name, data)| data["type"] == *name));
    assert_eq!(events[0].1["message"]["id"], "c");
    assert_eq!(
        events[2].1,
        json!({"type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": "Hi"}})
    );
    assert_eq!(
        events[4].1["content_block"],
        json!({"type": "tool_use", "id": "c1", "name": "f", "input": {}})
    );
    let json_for = |block: u64| -> String {
        events
            .iter()
            .filter(|(n, d)| *n == "content_block_delta" && d["index"] == block)
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect()
    };
    assert_eq!(
        (json_for(1), json_for(2)),
        ("{\"a\":1}".to_owned(), "{}".to_owned())
    );
    assert_eq!(
        events[11].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 8, "cache_read_input_tokens": 0, "output_tokens": 3}})
    );
}
