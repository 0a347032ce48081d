//! Streamed answers over the broker. The gateway subscribes to an events channel of its
//! own, names it in the query's [`STREAM_TAG`], and the worker publishes every chunk
//! there as an OpenAI `chat.completion.chunk`, numbered by [`SEQ_TAG`] so that order and
//! gaps show; a last event carrying [`END_TAG`] (`done`, or `error` with an OpenAI error
//! body) closes the stream. The query is then answered with the whole result as usual.
//! The caller cancels by publishing any event on [`cancel_channel`].

/// Query tag: stream the answer as events to this channel.
pub const STREAM_TAG: &str = "llm-router-stream";
/// Event tag: the event's place in the stream, from 0, end event included.
pub const SEQ_TAG: &str = "llm-router-seq";
/// Event tag on the last event: [`END_DONE`] or [`END_ERROR`].
pub const END_TAG: &str = "llm-router-stream-end";
pub const END_DONE: &str = "done";
pub const END_ERROR: &str = "error";
/// The prefix of stream channels; the query's request id follows.
pub const CHANNEL_PREFIX: &str = "llm-router.stream.";

/// The events channel of the stream answering query `request_id`.
pub fn channel(request_id: &str) -> String {
    format!("{CHANNEL_PREFIX}{request_id}")
}

/// Where a stream's caller says it has gone away.
pub fn cancel_channel(stream_channel: &str) -> String {
    format!("{stream_channel}.cancel")
}
