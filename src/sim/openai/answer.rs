//! A whole (non-streamed) Chat Completions answer.

use super::{call_id, fingerprint, finish_reason, logprobs, usage};
use crate::sim::echo;
use crate::sim::prompt::Prompt;
use crate::sim::reply::{Choice, Content, Reply};
use crate::sim::tools::ToolCall;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub(in crate::sim) fn answer(n: u64, prompt: &Prompt, reply: &Reply) -> Response {
    let choices: Vec<Value> = reply
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| choice(i, c, prompt.top_logprobs))
        .collect();
    Json(json!({
        "id": format!("chatcmpl-sim-{n}"),
        "object": "chat.completion",
        "created": crate::sim::server::unix_now(),
        "model": prompt.model,
        "system_fingerprint": fingerprint(&prompt.model),
        "choices": choices,
        "usage": usage(reply),
    }))
    .into_response()
}

fn choice(index: usize, c: &Choice, top_logprobs: Option<u32>) -> Value {
    let message = match &c.content {
        Content::Text(text) => json!({"role": "assistant", "content": text, "refusal": null}),
        Content::Calls(calls) => json!({"role": "assistant", "content": null, "refusal": null,
            "tool_calls": calls.iter().map(tool_call).collect::<Vec<_>>()}),
    };
    let logprobs = match (&c.content, top_logprobs) {
        (Content::Text(text), Some(top)) => {
            json!({"content": logprobs::content(&echo::pieces(text), top), "refusal": null})
        }
        (Content::Calls(_), Some(_)) => json!({"content": null, "refusal": null}),
        (_, None) => Value::Null,
    };
    json!({"index": index, "message": message, "logprobs": logprobs,
        "finish_reason": finish_reason(&c.finish)})
}

pub(super) fn tool_call(call: &ToolCall) -> Value {
    json!({"id": call_id(call.key), "type": "function",
        "function": {"name": call.name, "arguments": call.arguments.to_string()}})
}
