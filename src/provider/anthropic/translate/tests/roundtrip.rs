//! Round trips through both directions, on generated conversations and responses.
//!
//! The comparison normalises what is only representation, not meaning:
//! - system and developer messages become one list of texts (Anthropic has one
//!   `system`, and the reverse calls it `system`);
//! - a content string and a list of text parts are both a list of texts;
//! - consecutive user messages, and consecutive assistant messages, are one message
//!   (Anthropic merges them; tool messages stay apart since they come back apart);
//! - tool call arguments compare as parsed JSON, images by URL (`detail` is dropped);
//! - `tool_choice` and `parallel_tool_calls` count only with tools, where no `tool_choice`
//!   is `auto`; `parallel_tool_calls` only counts when `false` and not with
//!   `tool_choice: "none"`;
//! - `max_tokens` is the sent one of `max_completion_tokens`, `max_tokens` or the default;
//! - in responses, all text comes first as one block (OpenAI has one content string),
//!   `stop_sequence` and `pause_turn` stop as `end_turn`, and cache writes count as input.

use super::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,!?]{1,16}"
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::from),
            btree_map("[a-z]{1,5}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    btree_map("[a-z_]{1,6}", json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn text_parts(texts: Vec<String>) -> Value {
    texts
        .into_iter()
        .map(|t| json!({"type": "text", "text": t}))
        .collect()
}

/// A string or a list of text parts.
fn texts_content() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::from),
        vec(text(), 1..3).prop_map(text_parts)
    ]
}

fn user_part() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(|t| json!({"type": "text", "text": t})),
        ("png|jpeg|webp", "[A-Za-z0-9+/]{4,12}")
            .prop_map(|(kind, data)| json!({"type": "image_url",
            "image_url": {"url": format!("data:image/{kind};base64,{data}")}})),
        ("[a-z]{1,8}", any::<bool>()).prop_map(|(name, detail)| {
            let url = format!("https://example.com/{name}.png");
            match detail {
                true => json!({"type": "image_url", "image_url": {"url": url, "detail": "high"}}),
                false => json!({"type": "image_url", "image_url": url}),
            }
        }),
    ]
}

fn tool_call() -> impl Strategy<Value = Value> {
    ("call_[a-zA-Z0-9]{4,8}", "[a-z_]{1,10}", json_object()).prop_map(|(id, name, args)| {
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
    })
}

fn message() -> impl Strategy<Value = Value> {
    let user = prop_oneof![
        text().prop_map(Value::from),
        vec(user_part(), 1..4).prop_map(Value::from)
    ]
    .prop_map(|content| json!({"role": "user", "content": content}));
    let assistant = (
        proptest::option::of(texts_content()),
        vec(tool_call(), 0..3),
    )
        .prop_filter("an assistant message says something", |(c, calls)| {
            c.is_some() || !calls.is_empty()
        })
        .prop_map(|(content, calls)| {
            let mut message = json!({"role": "assistant", "content": content});
            if !calls.is_empty() {
                message["tool_calls"] = calls.into();
            }
            message
        });
    let tool = ("call_[a-zA-Z0-9]{4,8}", texts_content())
        .prop_map(|(id, content)| json!({"role": "tool", "tool_call_id": id, "content": content}));
    prop_oneof![user, assistant, tool]
}

fn system_message() -> impl Strategy<Value = Value> {
    ("system|developer", texts_content())
        .prop_map(|(role, content)| json!({"role": role, "content": content}))
}

fn tool() -> impl Strategy<Value = Value> {
    let schema = btree_map("[a-z]{1,5}", "string|integer|boolean", 0..3).prop_map(|props| {
        let props: Map<String, Value> = props
            .into_iter()
            .map(|(k, t)| (k, json!({"type": t})))
            .collect();
        json!({"type": "object", "properties": props})
    });
    (
        "[a-z_]{1,10}",
        proptest::option::of(text()),
        proptest::option::of(schema),
    )
        .prop_map(|(name, description, schema)| {
            let mut function = json!({"name": name});
            if let Some(d) = description {
                function["description"] = d.into();
            }
            if let Some(s) = schema {
                function["parameters"] = s;
            }
            json!({"type": "function", "function": function})
        })
}

/// `tool_choice` kind 0 is none given; 4 names one of the tools.
fn tool_choice(tools: &[Value], kind: u8, pick: Index) -> Option<Value> {
    match kind {
        1 => Some(json!("auto")),
        2 => Some(json!("none")),
        3 => Some(json!("required")),
        4 if !tools.is_empty() => {
            let name = &pick.get(tools)["function"]["name"];
            Some(json!({"type": "function", "function": {"name": name}}))
        }
        _ => None,
    }
}

fn request() -> impl Strategy<Value = Value> {
    let conversation = (vec(system_message(), 0..3), vec(message(), 1..8));
    let tooling = (
        vec(tool(), 0..3),
        0u8..5,
        any::<Index>(),
        proptest::option::of(Just(false)),
    );
    let stop = prop_oneof![
        Just(Value::Null),
        text().prop_map(Value::from),
        vec(text(), 0..3).prop_map(Value::from)
    ];
    let sampling = (
        stop,
        proptest::option::of(0u8..=10),
        proptest::option::of((1u64..10_000, any::<bool>())),
    );
    let rest = (proptest::option::of("[a-z0-9-]{1,12}"), any::<bool>());
    (conversation, tooling, sampling, rest).prop_map(
        |((system, messages), tooling, sampling, rest)| {
            let (tools, kind, pick, parallel) = tooling;
            let (stop, temperature, max) = sampling;
            let messages = [system, messages].concat();
            let mut request = json!({"model": "gpt-x", "messages": messages, "stop": stop,
            "stream": rest.1});
            if let Some(choice) = tool_choice(&tools, kind, pick) {
                request["tool_choice"] = choice;
            }
            if !tools.is_empty() {
                request["tools"] = tools.into();
            }
            if let Some(parallel) = parallel {
                request["parallel_tool_calls"] = parallel.into();
            }
            if let Some(t) = temperature {
                request["temperature"] = (f64::from(t) / 10.0).into();
            }
            if let Some((n, newer)) = max {
                request[if newer {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                }] = n.into();
            }
            if let Some(user) = rest.0 {
                request["user"] = user.into();
            }
            request
        },
    )
}

/// The texts of a string or text-parts content.
fn texts_of(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![s.clone().into()],
        Value::Array(parts) => parts.iter().map(|p| p["text"].clone()).collect(),
        _ => Vec::new(),
    }
}

fn user_parts(content: &Value) -> Vec<Value> {
    let Value::Array(parts) = content else {
        return texts_of(content);
    };
    let part = |p: &Value| match p["type"].as_str() {
        Some("image_url") => json!({"image": p["image_url"].get("url").unwrap_or(&p["image_url"])}),
        _ => p["text"].clone(),
    };
    parts.iter().map(part).collect()
}

fn calls_of(message: &Value) -> Vec<Value> {
    let calls = message["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let call = |c: Value| {
        let args: Value =
            serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
        json!({"id": c["id"], "name": c["function"]["name"], "args": args})
    };
    calls.into_iter().map(call).collect()
}

/// The messages with the normalisations of the module doc.
fn normal_messages(messages: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        let entry = match m["role"].as_str().unwrap() {
            "system" | "developer" => {
                system.extend(texts_of(&m["content"]));
                continue;
            }
            "user" => json!({"user": user_parts(&m["content"])}),
            "tool" => json!({"tool": m["tool_call_id"], "content": texts_of(&m["content"])}),
            _ => json!({"assistant": texts_of(&m["content"]), "calls": calls_of(m)}),
        };
        match (out.last_mut(), &entry) {
            (Some(last), entry) if last.get("user").is_some() && entry.get("user").is_some() => {
                last["user"]
                    .as_array_mut()
                    .unwrap()
                    .extend(entry["user"].as_array().unwrap().clone());
            }
            (Some(last), entry)
                if last.get("assistant").is_some() && entry.get("assistant").is_some() =>
            {
                for key in ["assistant", "calls"] {
                    last[key]
                        .as_array_mut()
                        .unwrap()
                        .extend(entry[key].as_array().unwrap().clone());
                }
            }
            _ => out.push(entry),
        }
    }
    (system, out)
}

fn normal_request(openai: &Map<String, Value>) -> Value {
    let get = |k: &str| openai.get(k).filter(|v| !v.is_null()).cloned();
    let (system, messages) = normal_messages(openai["messages"].as_array().unwrap());
    let tools: Vec<Value> = get("tools")
        .and_then(|t| t.as_array().cloned())
        .unwrap_or_default();
    let tools: Vec<Value> = tools.iter().map(|t| {
        let f = &t["function"];
        let parameters = f.get("parameters").cloned().unwrap_or(json!({"type": "object", "properties": {}}));
        json!({"name": f["name"], "description": f.get("description"), "parameters": parameters})
    }).collect();
    let choice = (!tools.is_empty()).then(|| get("tool_choice").unwrap_or(json!("auto")));
    let serial = !tools.is_empty()
        && choice != Some(json!("none"))
        && get("parallel_tool_calls") == Some(json!(false));
    let stop = match get("stop") {
        Some(Value::String(s)) => vec![Value::String(s)],
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    let max = get("max_completion_tokens")
        .or(get("max_tokens"))
        .unwrap_or(DEFAULT_MAX_TOKENS.into());
    json!({"system": system, "messages": messages, "tools": tools, "tool_choice": choice,
        "serial": serial, "stop": stop, "temperature": get("temperature"), "max_tokens": max,
        "user": get("user"), "stream": get("stream") == Some(json!(true))})
}

fn block() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(|t| json!({"type": "text", "text": t})),
        ("toolu_[a-z0-9]{6}", "[a-z_]{1,10}", json_object()).prop_map(
            |(id, name, input)| json!({"type": "tool_use", "id": id, "name": name, "input": input})
        ),
    ]
}

fn anthropic_response() -> impl Strategy<Value = Value> {
    let stop = "end_turn|stop_sequence|max_tokens|tool_use|refusal|pause_turn";
    let usage = (0u64..10_000, 0u64..10_000, 0u64..10_000, 0u64..10_000);
    ("msg_[a-z0-9]{8}", "claude-[a-z0-9]{1,8}", vec(block(), 0..5), stop, usage).prop_map(
        |(id, model, content, stop, (input, output, read, write))| {
            json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": stop, "stop_sequence": null, "usage": {"input_tokens": input,
                "output_tokens": output, "cache_read_input_tokens": read, "cache_creation_input_tokens": write}})
        },
    )
}

fn normal_response(anthropic: &Value) -> Value {
    let blocks = anthropic["content"].as_array().unwrap();
    let text: String = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
    let mut content: Vec<Value> = Vec::new();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    content.extend(blocks.iter().filter(|b| b["type"] == "tool_use").cloned());
    let stop = match anthropic["stop_reason"].as_str().unwrap() {
        "stop_sequence" | "pause_turn" => "end_turn",
        other => other,
    };
    let usage = &anthropic["usage"];
    let input = usage["input_tokens"].as_u64().unwrap()
        + usage["cache_creation_input_tokens"].as_u64().unwrap();
    json!({"id": anthropic["id"], "type": "message", "role": "assistant", "model": anthropic["model"],
        "content": content, "stop_reason": stop, "stop_sequence": null, "usage": {"input_tokens": input,
        "cache_read_input_tokens": usage["cache_read_input_tokens"], "output_tokens": usage["output_tokens"]}})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn requests_survive_the_round_trip(request in request()) {
        let openai = object(request);
        let stream = openai["stream"] == true;
        let to = request_to_anthropic(&openai, MODEL, stream, Unhonoured::Refuse)
            .unwrap_or_else(|e| panic!("{e}"));
        let roles: Vec<&Value> = to.body["messages"].as_array().unwrap().iter().map(|m| &m["role"]).collect();
        prop_assert!(roles.windows(2).all(|w| w[0] != w[1]), "roles alternate: {:?}", roles);
        let back = request_from_anthropic(&to.body).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(&back["model"], MODEL);
        prop_assert_eq!(normal_request(&back), normal_request(&openai));
    }

    #[test]
    fn responses_survive_the_round_trip(anthropic in anthropic_response()) {
        let cx = ResponseContext { model: MODEL.into(), ..ResponseContext::default() };
        let openai = response_from_anthropic(&anthropic, &cx).unwrap();
        prop_assert_eq!(response_to_anthropic(&openai), normal_response(&anthropic));
    }
}
