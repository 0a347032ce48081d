//! A whole (non-streamed) Messages answer.

use super::{blocks, stop, usage};
use crate::sim::prompt::Prompt;
use crate::sim::reply::Reply;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Messages has no `n`: the answer is the first choice.
pub(in crate::sim) fn answer(n: u64, prompt: &Prompt, reply: &Reply) -> Response {
    let Some(c) = reply.choices.first() else {
        return super::error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no answer");
    };
    let (stop_reason, stop_sequence) = stop(&c.finish);
    Json(json!({
        "id": format!("msg_sim_{n}"),
        "type": "message",
        "role": "assistant",
        "model": prompt.model,
        "content": blocks(&c.content),
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage(reply.prompt_tokens, c.completion_tokens),
    }))
    .into_response()
}
