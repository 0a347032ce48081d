//! Anthropic stream events to OpenAI chunks.

use super::*;

fn events() -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {"id": "msg_s", "type": "message",
            "role": "assistant", "model": "claude-real", "content": [], "stop_reason": null,
            "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "both."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use",
            "id": "toolu_a", "name": "weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use",
            "id": "toolu_b", "name": "weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": " \"Rome\", \"days\": [1,"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "2]}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 42}}),
        json!({"type": "message_stop"}),
    ]
}

fn run(cx: ResponseContext, events: &[Value]) -> (Vec<Value>, StreamFromAnthropic) {
    let mut stream = StreamFromAnthropic::new(cx);
    let chunks = events
        .iter()
        .flat_map(|e| stream.event(e).unwrap())
        .collect();
    (chunks, stream)
}

fn cx() -> ResponseContext {
    ResponseContext {
        json_tool: None,
        model: MODEL.into(),
        created: 7,
    }
}

#[test]
fn text_then_two_tool_calls() {
    let (chunks, stream) = run(cx(), &events());
    for chunk in &chunks {
        assert_eq!(
            (
                &chunk["id"],
                &chunk["object"],
                &chunk["created"],
                &chunk["model"]
            ),
            (
                &json!("msg_s"),
                &json!("chat.completion.chunk"),
                &json!(7),
                &json!("claude-real")
            )
        );
    }
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["delta"])
        .collect();
    assert_eq!(deltas[0], &json!({"role": "assistant"}));
    assert_eq!(deltas[1], &json!({"content": "Checking "}));
    assert_eq!(deltas[2], &json!({"content": "both."}));
    assert_eq!(
        deltas[3],
        &json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function",
            "function": {"name": "weather", "arguments": ""}}]})
    );
    assert_eq!(
        deltas[4],
        &json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]})
    );
    let mut arguments = [String::new(), String::new()];
    for delta in &deltas {
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap() as usize;
            arguments[index].push_str(call["function"]["arguments"].as_str().unwrap());
        }
    }
    let parsed: Vec<Value> = arguments
        .iter()
        .map(|a| serde_json::from_str(a).unwrap())
        .collect();
    assert_eq!(
        parsed,
        [
            json!({"city": "Paris"}),
            json!({"city": "Rome", "days": [1, 2]})
        ]
    );

    let finish = &chunks[chunks.len() - 2];
    assert_eq!(
        finish["choices"][0],
        json!({"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": null})
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 30, "completion_tokens": 42, "total_tokens": 72,
            "prompt_tokens_details": {"cached_tokens": 5}})
    );
    assert_eq!(stream.usage(), Some((30, 42)));
    assert_eq!(chunks.len(), 12);
}

#[test]
fn the_forced_json_tool_streams_as_content() {
    let events = [
        json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 3}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use",
            "id": "t", "name": "json_response", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}}),
    ];
    let cx = ResponseContext {
        json_tool: Some("json_response".into()),
        ..cx()
    };
    let (chunks, _) = run(cx, &events);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "{\"a\":1}");
    assert!(chunks
        .iter()
        .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn thinking_deltas_become_reasoning_content() {
    let events = [
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "x"}}),
    ];
    let (chunks, stream) = run(cx(), &events);
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"reasoning_content": "hmm"})
    );
    assert_eq!(chunks[0]["model"], MODEL);
    assert_eq!(stream.usage(), None);
}

#[test]
fn error_events_fail_and_pings_give_nothing() {
    let mut stream = StreamFromAnthropic::new(cx());
    assert_eq!(stream.event(&json!({"type": "ping"})), Ok(vec![]));
    assert_eq!(
        stream.event(&json!({"type": "some_future_event"})),
        Ok(vec![])
    );
    let error =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let e = stream.event(&error).unwrap_err();
    assert_eq!(
        e,
        ReplyError::Upstream {
            kind: "overloaded_error".into(),
            message: "Overloaded".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "Anthropic error `overloaded_error`: Overloaded"
    );
    assert!(matches!(
        stream.event(&json!({"no": "type"})),
        Err(ReplyError::Malformed(_))
    ));
}
