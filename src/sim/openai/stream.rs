//! A streamed Chat Completions answer as SSE frames. Text comes one word per chunk; a
//! tool call as a chunk naming it (index, id, type, name, empty arguments) and then its
//! arguments in 2+ pieces (index only). With `n > 1`, frame `j` holds the `j`-th chunk of
//! every choice, so the choices arrive interleaved by index.

use super::answer::tool_call;
use super::{fingerprint, finish_reason, logprobs, usage};
use crate::sim::echo;
use crate::sim::prompt::Prompt;
use crate::sim::reply::{Choice, Content, Reply};
use crate::sim::stream::{cut_after, fragments};
use serde_json::{json, Value};

/// What every chunk of one answer repeats.
struct Chunks<'a> {
    id: String,
    created: u64,
    prompt: &'a Prompt,
}

impl Chunks<'_> {
    fn frame(&self, choices: Value, usage: Option<Value>) -> String {
        let mut body = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.prompt.model,
            "system_fingerprint": fingerprint(&self.prompt.model),
            "choices": choices,
        });
        if let (Some(usage), Some(b)) = (usage, body.as_object_mut()) {
            b.insert("usage".into(), usage);
        }
        format!("data: {body}\n\n")
    }

    fn delta(&self, index: usize, delta: Value, logprobs: Value) -> String {
        let choice = json!({"index": index, "delta": delta, "logprobs": logprobs,
            "finish_reason": null});
        self.frame(json!([choice]), None)
    }

    fn finish(&self, index: usize, c: &Choice) -> String {
        let choice = json!({"index": index, "delta": {}, "logprobs": null,
            "finish_reason": finish_reason(&c.finish)});
        self.frame(json!([choice]), None)
    }
}

/// The frames: chunks, the finish chunks, the usage chunk when asked for, `[DONE]`; or,
/// when `cut`, a few chunks and an error.
pub(in crate::sim) fn stream_frames(
    n: u64,
    prompt: &Prompt,
    reply: &Reply,
    cut: bool,
) -> Vec<String> {
    let chunks = Chunks {
        id: format!("chatcmpl-sim-{n}"),
        created: crate::sim::server::unix_now(),
        prompt,
    };
    let per_choice: Vec<Vec<String>> = reply
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            deltas(c, prompt.top_logprobs)
                .into_iter()
                .map(|(d, l)| chunks.delta(i, d, l))
                .collect()
        })
        .collect();
    let longest = per_choice.iter().map(Vec::len).max().unwrap_or(0);
    let mut frames: Vec<String> = (0..longest)
        .map(|j| {
            per_choice
                .iter()
                .filter_map(|c| c.get(j).map(String::as_str))
                .collect()
        })
        .collect();
    if cut {
        frames.truncate(cut_after(frames.len()));
        let error = json!({"error": {"message": "injected mid-stream failure",
            "type": "server_error", "param": null, "code": null}});
        frames.push(format!("data: {error}\n\n"));
        return frames;
    }
    let mut end: String = reply
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| chunks.finish(i, c))
        .collect();
    if prompt.include_usage {
        end.push_str(&chunks.frame(json!([]), Some(usage(reply))));
    }
    end.push_str("data: [DONE]\n\n");
    match frames.last_mut() {
        Some(last) => last.push_str(&end),
        None => frames.push(end),
    }
    frames
}

/// One choice's deltas, each with its `logprobs` (null unless asked for).
fn deltas(c: &Choice, top_logprobs: Option<u32>) -> Vec<(Value, Value)> {
    match &c.content {
        Content::Text(text) => text_deltas(text, top_logprobs),
        Content::Calls(calls) => calls
            .iter()
            .enumerate()
            .flat_map(|(k, call)| {
                let mut head = tool_call(call);
                head["function"]["arguments"] = json!("");
                head["index"] = json!(k);
                let mut first = json!({"tool_calls": [head]});
                if k == 0 {
                    first["role"] = json!("assistant");
                    first["content"] = Value::Null;
                }
                let pieces = fragments(&call.arguments.to_string()).into_iter().map(
                    move |a| json!({"tool_calls": [{"index": k, "function": {"arguments": a}}]}),
                );
                std::iter::once(first)
                    .chain(pieces)
                    .map(|d| (d, Value::Null))
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

fn text_deltas(text: &str, top_logprobs: Option<u32>) -> Vec<(Value, Value)> {
    echo::pieces(text)
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let logprobs = top_logprobs.map_or(Value::Null, |top| {
                json!({"content": logprobs::content(std::slice::from_ref(&piece), top), "refusal": null})
            });
            let delta = match i {
                0 => json!({"role": "assistant", "content": piece}),
                _ => json!({"content": piece}),
            };
            (delta, logprobs)
        })
        .collect()
}
