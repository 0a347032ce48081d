//! Streamed answers over the broker. The gateway subscribes to an events channel of its
//! own, names it in the query's [`STREAM_TAG`], and the worker publishes every chunk
//! there as an OpenAI `chat.completion.chunk`, numbered by [`SEQ_TAG`] so that order and
//! gaps show; a last event carrying [`END_TAG`] (`done`, or `error` with an OpenAI error
//! body) closes the stream. The query is then answered with the whole result as usual.
//!
//! The caller cancels by publishing any event on `<channel>.cancel` ([`cancel_channel`]),
//! which the worker follows for the stream's life: the provider stream is dropped, which
//! closes the upstream HTTP connection.

use super::metrics;
use super::wire::Failure;
use crate::kubemq::client::{Client, Error as ClientError, EventSubscription};
use crate::kubemq::subscribe::SubscribeType;
use crate::kubemq::{Event, Subscribe};
use crate::provider::assemble::Assembler;
use crate::provider::{ChatChunk, LlmRequest};
use crate::routing::{Completion, Router, Streaming};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio::time::Instant;

pub use crate::protocol::stream::*;

/// One streamed request: who to publish to and what was said so far.
pub struct StreamRequest<'a> {
    pub client: &'a Client,
    pub router: &'a Router,
    pub route: &'a str,
    /// The events channel named by [`STREAM_TAG`].
    pub channel: &'a str,
    pub pin: Option<&'a str>,
    pub received: Instant,
    pub deadline: Instant,
}

/// Streams the answer to `chat` and returns it whole, for the query's reply.
pub async fn serve(req: StreamRequest<'_>, chat: LlmRequest) -> Result<Completion, Failure> {
    let mut cancel = subscribe_cancel(req.client, req.channel).await;
    let mut publisher = Publisher::new(req.client, req.channel);
    let opened = tokio::select! {
        () = cancelled(&mut cancel) => Err(Failure::Cancelled),
        opened = req.router.stream(req.route, chat, req.deadline, req.pin) => {
            opened.map_err(Failure::from)
        }
    };
    let result = match opened {
        Ok(streaming) => relay(&req, streaming, &mut publisher, &mut cancel).await,
        Err(failure) => Err(failure),
    };
    if let Err(failure) = &result {
        publisher.end_with_error(failure).await;
    }
    result
}

/// Publishes the stream's chunks until its end, an error, or the caller's cancel.
async fn relay(
    req: &StreamRequest<'_>,
    mut streaming: Streaming,
    publisher: &mut Publisher<'_>,
    cancel: &mut Option<EventSubscription>,
) -> Result<Completion, Failure> {
    let mut answer = Assembler::default();
    loop {
        let item = tokio::select! {
            biased;
            () = cancelled(cancel) => return Err(Failure::Cancelled),
            item = streaming.next() => item,
        };
        match item {
            Some(Ok(chunk)) => {
                publisher.chunk(&chunk).await.map_err(Failure::publish)?;
                if publisher.seq == 1 {
                    metrics::first_chunk(req.route, req.received.elapsed());
                }
                answer.add(&chunk);
            }
            None => break,
            Some(Err(mid)) => return Err(Failure::MidStream(mid)),
        }
    }
    publisher.end_done().await.map_err(Failure::publish)?;
    Ok(Completion {
        response: answer.finish(),
        endpoint: streaming.endpoint().to_owned(),
        attempts: streaming.attempts(),
    })
}

/// Follows the cancel channel; `None` when the broker would not take the subscription
/// (the stream then simply runs to its end).
async fn subscribe_cancel(client: &Client, channel: &str) -> Option<EventSubscription> {
    let subscribe = Subscribe {
        subscribe_type_data: SubscribeType::Events as i32,
        client_id: client.client_id().to_owned(),
        channel: cancel_channel(channel),
        ..Subscribe::default()
    };
    match client.subscribe_to_events(subscribe).await {
        Ok(sub) => Some(sub),
        Err(e) => {
            tracing::warn!("cannot follow the stream's cancel channel: {e}");
            None
        }
    }
}

/// Completes when the caller cancels; never without a subscription.
async fn cancelled(cancel: &mut Option<EventSubscription>) {
    match cancel {
        Some(sub) => {
            if sub.next().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Publishes one stream's events in order: each waits for the broker to take the last.
struct Publisher<'a> {
    client: &'a Client,
    channel: &'a str,
    /// The next event's number.
    seq: u64,
    created: i64,
    /// Set once an end event went out; nothing follows it.
    ended: bool,
}

impl<'a> Publisher<'a> {
    fn new(client: &'a Client, channel: &'a str) -> Self {
        Self {
            client,
            channel,
            seq: 0,
            created: super::unix_seconds(),
            ended: false,
        }
    }

    async fn chunk(&mut self, chunk: &ChatChunk) -> Result<(), ClientError> {
        let body = chunk_json(chunk, self.created);
        self.send(body.to_string().into_bytes(), None).await
    }

    /// KubeMQ refuses an event with neither body nor metadata, so the end says its name.
    async fn end_done(&mut self) -> Result<(), ClientError> {
        self.send(END_DONE.as_bytes().to_vec(), Some(END_DONE))
            .await
    }

    /// The failure as the last event; a caller that misses it still gets the query's
    /// reply, so a failure to publish is only logged.
    async fn end_with_error(&mut self, failure: &Failure) {
        if self.ended {
            return;
        }
        let body = super::wire::failure_json(failure).to_string().into_bytes();
        if let Err(e) = self.send(body, Some(END_ERROR)).await {
            tracing::debug!("stream error event not published: {e}");
        }
    }

    async fn send(&mut self, body: Vec<u8>, end: Option<&str>) -> Result<(), ClientError> {
        let mut tags = HashMap::from([(SEQ_TAG.to_owned(), self.seq.to_string())]);
        if let Some(end) = end {
            tags.insert(END_TAG.to_owned(), end.to_owned());
            self.ended = true;
        }
        self.seq += 1;
        let event = Event {
            client_id: self.client.client_id().to_owned(),
            channel: self.channel.to_owned(),
            body,
            tags,
            ..Event::default()
        };
        self.client.send_event(event).await
    }
}

/// A chunk as the caller gets it: the provider's (OpenAI-format) chunk, with a
/// `created` time when the provider gave none.
pub fn chunk_json(chunk: &ChatChunk, created: i64) -> Value {
    let mut body = chunk.body.clone();
    if let Value::Object(map) = &mut body {
        map.entry("object")
            .or_insert_with(|| json!("chat.completion.chunk"));
        match map.get("created") {
            Some(c) if c.as_i64().is_some_and(|c| c > 0) => {}
            _ => {
                map.insert("created".into(), json!(created));
            }
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_pass_as_the_provider_sent_them() {
        let body = json!({"id": "c", "model": "m", "choices": [{"index": 0,
            "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}, "logprobs": null}],
            "system_fingerprint": "fp"});
        let out = chunk_json(&ChatChunk::new(body.clone()), 7);
        assert_eq!(out["object"], "chat.completion.chunk");
        assert_eq!(out["created"], 7);
        assert_eq!(out["choices"], body["choices"]);
        assert_eq!(out["system_fingerprint"], "fp");
        let dated = chunk_json(&ChatChunk::new(json!({"created": 99, "choices": []})), 7);
        assert_eq!(dated["created"], 99);
        assert_eq!(channel("abc"), "llm-router.stream.abc");
        assert_eq!(
            cancel_channel(&channel("abc")),
            "llm-router.stream.abc.cancel"
        );
    }
}
