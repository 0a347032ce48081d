//! A streamed Messages answer as SSE frames, in the real event order: `message_start`,
//! per block `content_block_start`, its deltas (`text_delta` one word each, or the tool
//! input as `input_json_delta` in 2+ pieces) and `content_block_stop`, with one `ping`
//! after the first block start; then `message_delta` (stop reason, output tokens) and
//! `message_stop`. Each delta starts a frame (frames go out `chunk_delay_ms` apart);
//! the events between deltas ride along with the next one.

use super::{blocks, stop, usage};
use crate::sim::echo;
use crate::sim::prompt::Prompt;
use crate::sim::reply::Reply;
use crate::sim::stream::{cut_after, fragments};
use serde_json::{json, Value};

/// One SSE frame: `event: NAME` and its JSON.
fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// Frames being assembled: events before a delta wait in `pending`.
#[derive(Default)]
struct Frames {
    frames: Vec<String>,
    pending: String,
}

impl Frames {
    fn push(&mut self, name: &str, data: Value) {
        self.pending.push_str(&event(name, &data));
    }

    fn delta(&mut self, index: usize, delta: Value) {
        let data = json!({"type": "content_block_delta", "index": index, "delta": delta});
        self.push("content_block_delta", data);
        self.frames.push(std::mem::take(&mut self.pending));
    }

    /// The frames, the events after the last delta joined to it.
    fn finish(mut self) -> Vec<String> {
        match self.frames.last_mut() {
            Some(last) => last.push_str(&self.pending),
            None => self.frames.push(self.pending),
        }
        self.frames
    }
}

/// The frames, or, when `cut`, a few of them and an `error` event.
pub(in crate::sim) fn stream_frames(
    n: u64,
    prompt: &Prompt,
    reply: &Reply,
    cut: bool,
) -> Vec<String> {
    let Some(c) = reply.choices.first() else {
        return Vec::new();
    };
    let mut out = Frames::default();
    out.push(
        "message_start",
        json!({"type": "message_start", "message": {
        "id": format!("msg_sim_{n}"), "type": "message", "role": "assistant",
        "model": prompt.model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": usage(reply.prompt_tokens, 1)}}),
    );
    for (index, block) in blocks(&c.content).into_iter().enumerate() {
        content_block(&mut out, index, block);
    }
    if cut {
        let mut frames = out.frames;
        frames.truncate(cut_after(frames.len()));
        let error = json!({"type": "error", "error": {"type": "overloaded_error",
            "message": "injected mid-stream failure"}});
        frames.push(event("error", &error));
        return frames;
    }
    let (stop_reason, stop_sequence) = stop(&c.finish);
    out.push(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": {"output_tokens": c.completion_tokens}}),
    );
    out.push("message_stop", json!({"type": "message_stop"}));
    out.finish()
}

/// One block: its start (empty), deltas, stop.
fn content_block(out: &mut Frames, index: usize, mut block: Value) {
    let input = block.get_mut("input").map(Value::take);
    let start = match input {
        Some(_) => {
            block["input"] = json!({});
            block.clone()
        }
        None => json!({"type": "text", "text": ""}),
    };
    out.push(
        "content_block_start",
        json!({"type": "content_block_start", "index": index,
        "content_block": start}),
    );
    if index == 0 {
        out.push("ping", json!({"type": "ping"}));
    }
    match input {
        Some(input) => fragments(&input.to_string()).into_iter().for_each(|p| {
            out.delta(
                index,
                json!({"type": "input_json_delta", "partial_json": p}),
            )
        }),
        None => {
            let text = block["text"].as_str().unwrap_or_default();
            echo::pieces(text)
                .into_iter()
                .for_each(|p| out.delta(index, json!({"type": "text_delta", "text": p})));
        }
    }
    out.push(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    );
}
