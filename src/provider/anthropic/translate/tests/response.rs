//! Anthropic to OpenAI responses.

use super::*;

fn cx() -> ResponseContext {
    ResponseContext {
        json_tool: None,
        model: MODEL.into(),
        created: 1_700_000_000,
    }
}

#[test]
fn text_tool_calls_usage_and_thinking() {
    let anthropic = json!({"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-real", "stop_reason": "tool_use", "stop_sequence": null,
        "content": [
            {"type": "thinking", "thinking": "Paris, so weather.", "signature": "sig"},
            {"type": "text", "text": "Let me "}, {"type": "text", "text": "check."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20}});
    assert_eq!(
        response_from_anthropic(&anthropic, &cx()).unwrap(),
        json!({"id": "msg_1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "claude-real",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
                "message": {"role": "assistant", "content": "Let me check.",
                    "reasoning_content": "Paris, so weather.",
                    "tool_calls": [{"id": "toolu_1", "type": "function", "function":
                        {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                "prompt_tokens_details": {"cached_tokens": 100}}})
    );
}

#[test]
fn content_is_null_when_only_tool_calls_and_empty_when_nothing() {
    let only_tools = json!({"id": "m", "content": [{"type": "tool_use", "id": "t",
        "name": "f", "input": {}}], "stop_reason": "tool_use", "usage": {}});
    let r = response_from_anthropic(&only_tools, &cx()).unwrap();
    assert_eq!(r["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        r["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{}"
    );
    assert_eq!(r["model"], MODEL, "the context's model stands in");
    let empty = json!({"id": "m", "content": [], "stop_reason": "end_turn"});
    let r = response_from_anthropic(&empty, &cx()).unwrap();
    assert_eq!(
        r["choices"][0]["message"],
        json!({"role": "assistant", "content": ""})
    );
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        let r =
            response_from_anthropic(&json!({"content": [], "stop_reason": stop}), &cx()).unwrap();
        assert_eq!(r["choices"][0]["finish_reason"], finish, "{stop}");
    }
}

#[test]
fn the_forced_json_tool_becomes_the_content() {
    let cx = ResponseContext {
        json_tool: Some("sum".into()),
        ..cx()
    };
    let anthropic = json!({"id": "m", "model": "c", "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "t", "name": "sum", "input": {"answer": 4}}],
        "usage": {"input_tokens": 1, "output_tokens": 2}});
    let r = response_from_anthropic(&anthropic, &cx).unwrap();
    assert_eq!(
        r["choices"][0]["message"],
        json!({"role": "assistant", "content": "{\"answer\":4}"})
    );
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
}

#[test]
fn errors_and_malformed_responses() {
    let error =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    assert_eq!(
        response_from_anthropic(&error, &cx()),
        Err(ReplyError::Upstream {
            kind: "overloaded_error".into(),
            message: "Overloaded".into()
        })
    );
    assert!(matches!(
        response_from_anthropic(&json!({"id": "m"}), &cx()),
        Err(ReplyError::Malformed(_))
    ));
}
