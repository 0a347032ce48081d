//! OpenAI to Anthropic requests: sampling, limits, thinking and unhonoured parameters.

use super::*;

#[test]
fn stop_temperature_top_p_top_k_and_user() {
    let b = body(hi(
        json!({"stop": "END", "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "user": "u-42", "max_completion_tokens": 100, "max_tokens": 7}),
    ));
    assert_eq!(b["stop_sequences"], json!(["END"]));
    assert_eq!(
        (b["temperature"].clone(), b["top_p"].clone()),
        (json!(0.5), json!(0.9))
    );
    assert_eq!(b["top_k"], 40);
    assert_eq!(b["metadata"], json!({"user_id": "u-42"}));
    assert_eq!(
        b["max_tokens"], 100,
        "max_completion_tokens wins over max_tokens"
    );
    let b = body(hi(json!({"stop": ["a", "b"], "max_tokens": 7})));
    assert_eq!(
        (b["stop_sequences"].clone(), b["max_tokens"].clone()),
        (json!(["a", "b"]), json!(7))
    );
    let b = body(hi(json!({"stop": null, "temperature": null})));
    assert_eq!(
        (b.get("stop_sequences"), b.get("temperature")),
        (None, None)
    );
}

#[test]
fn a_temperature_above_one_is_refused_with_the_range() {
    let e = refusal(hi(json!({"temperature": 1.5})));
    assert_eq!(
        e.to_string(),
        "`temperature` = 1.5 is not supported by Anthropic endpoints: Anthropic accepts a \
         temperature from 0 to 1 (OpenAI's range is 0 to 2); send at most 1"
    );
    let out = request_to_anthropic(
        &object(hi(json!({"temperature": 1.5}))),
        MODEL,
        false,
        Unhonoured::Drop,
    )
    .unwrap();
    assert_eq!(out.body.get("temperature"), None);
    assert_eq!(body(hi(json!({"temperature": 1})))["temperature"], 1);
}

#[test]
fn malformed_values_are_invalid() {
    assert!(matches!(refusal(hi(json!({"max_tokens": 0}))),
        RequestError::Invalid { at, .. } if at == "max_tokens"));
    assert!(matches!(refusal(hi(json!({"stop": [1]}))),
        RequestError::Invalid { at, .. } if at == "stop"));
    assert!(matches!(refusal(hi(json!({"user": 5}))),
        RequestError::Invalid { at, .. } if at == "user"));
}

#[test]
fn harmless_openai_parameters_are_accepted() {
    let b = body(hi(
        json!({"stream": true, "stream_options": {"include_usage": true},
        "store": false, "metadata": {"k": "v"}, "service_tier": "auto",
        "n": 1, "logprobs": false, "presence_penalty": 0, "frequency_penalty": 0.0,
        "logit_bias": {}, "seed": null, "modalities": ["text"], "reasoning_effort": "none"}),
    ));
    assert_eq!(b.get("stream"), None, "the stream argument decides");
    assert_eq!(b.get("metadata"), None);
    assert_eq!(b.get("thinking"), None);
}

#[test]
fn every_unhonoured_parameter_is_listed_in_a_fixed_order() {
    let openai = object(hi(json!({"zeta": 1, "seed": 7, "n": 2, "logprobs": true,
        "top_logprobs": 3, "presence_penalty": 0.5, "frequency_penalty": -1,
        "logit_bias": {"50256": -100}, "audio": {"voice": "alloy"},
        "modalities": ["text", "audio"], "prediction": {"type": "content", "content": "x"},
        "web_search_options": {}, "alpha": true, "functions": []})));
    assert_eq!(
        unhonoured_parameters(&openai),
        [
            "n",
            "logprobs",
            "top_logprobs",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "seed",
            "audio",
            "modalities",
            "prediction",
            "web_search_options",
            "alpha",
            "functions",
            "zeta"
        ]
    );
    assert!(unhonoured_parameters(&object(hi(json!({"n": 1})))).is_empty());
}

#[test]
fn refusal_names_the_first_unhonoured_parameter() {
    let e = refusal(hi(json!({"seed": 7, "n": 2})));
    let RequestError::Unsupported(u) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (u.parameter.as_str(), u.value.as_str(), u.target),
        ("n", "2", "Anthropic")
    );
    assert!(
        e.to_string()
            .starts_with("`n` = 2 is not supported by Anthropic endpoints: "),
        "{e}"
    );
    let e = refusal(hi(json!({"mystery": "x"})));
    assert!(
        e.to_string()
            .starts_with("`mystery` = \"x\" is not supported"),
        "{e}"
    );
}

#[test]
fn dropping_leaves_unhonoured_parameters_out() {
    let openai = object(hi(
        json!({"n": 3, "seed": 1, "logit_bias": {"1": 2}, "mystery": 1,
        "temperature": 0.2}),
    ));
    let out = request_to_anthropic(&openai, MODEL, false, Unhonoured::Drop).unwrap();
    let mut keys: Vec<&str> = out.body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["max_tokens", "messages", "model", "temperature"]);
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_inside_max_tokens() {
    let b = body(hi(json!({"reasoning_effort": "low", "max_tokens": 2000})));
    assert_eq!(
        b["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert_eq!(b["max_tokens"], 2000);
    let b = body(hi(
        json!({"reasoning_effort": "medium", "max_completion_tokens": 1000}),
    ));
    assert_eq!(b["thinking"]["budget_tokens"], 4096);
    assert_eq!(b["max_tokens"], 5096);
    let b = body(hi(json!({"reasoning_effort": "high"})));
    assert_eq!(b["thinking"]["budget_tokens"], 16384);
    assert_eq!(b["max_tokens"], 16384 + DEFAULT_MAX_TOKENS);
    assert_eq!(
        body(hi(json!({"reasoning_effort": "minimal"}))).get("thinking"),
        None
    );
}

#[test]
fn reasoning_effort_that_anthropic_cannot_honour() {
    let e = refusal(hi(json!({"reasoning_effort": "extreme"})));
    assert!(matches!(&e, RequestError::Unsupported(u) if u.parameter == "reasoning_effort"));
    let e = refusal(hi(json!({"reasoning_effort": "low", "temperature": 0.3})));
    assert!(
        e.to_string().contains("a `temperature` other than 1"),
        "{e}"
    );
    let forced =
        hi(json!({"reasoning_effort": "high", "response_format": {"type": "json_object"}}));
    assert!(refusal(forced.clone()).to_string().contains("forced tool"));
    let out = request_to_anthropic(&object(forced), MODEL, false, Unhonoured::Drop).unwrap();
    assert_eq!(out.body.get("thinking"), None);
    assert_eq!(out.body["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(out.context.json_tool.as_deref(), Some("json_response"));
}
