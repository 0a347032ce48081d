//! Tests of the translation, one file per direction and part, plus round trips.

mod request;
mod request_params;
mod response;
mod reverse;
mod roundtrip;
mod stream;

use super::*;
use serde_json::{json, Map, Value};

const MODEL: &str = "claude-test";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The Anthropic body of an OpenAI request that must translate under `Refuse`.
fn body(openai: Value) -> Value {
    let out = request_to_anthropic(&object(openai), MODEL, false, Unhonoured::Refuse)
        .unwrap_or_else(|e| panic!("{e}"));
    Value::Object(out.body)
}

/// The error of an OpenAI request that must not translate under `Refuse`.
fn refusal(openai: Value) -> RequestError {
    request_to_anthropic(&object(openai), MODEL, false, Unhonoured::Refuse).unwrap_err()
}

/// A request with one user message saying "hi", plus `extra` fields.
fn hi(extra: Value) -> Value {
    let mut request = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in object(extra) {
        request[k] = v;
    }
    request
}
