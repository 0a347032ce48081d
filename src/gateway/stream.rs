//! `stream: true`: the chat request goes out as the usual JSON-mode query, tagged with an
//! events channel that this gateway subscribed to first; the worker publishes the chunks
//! there (see [`crate::protocol::stream`]) and this module relays them as server-sent events
//! (`data: {chunk}` … `data: [DONE]`).
//!
//! The HTTP status waits for the first event: a failure before any chunk is an ordinary
//! error response with its status; after the first chunk the status is sent, so a failure
//! becomes an SSE event holding an OpenAI error object (the OpenAI SDKs raise on it),
//! never a silent splice. A client that goes away cancels the upstream call through the
//! stream's cancel channel.

use super::chat::failure_of;
use super::error::ApiError;
use super::metrics::stream_first_chunk;
use super::stream_hub::{Inbox, StreamHub};
use crate::kubemq::client::Client;
use crate::kubemq::{Event, EventReceive, Request, Response as Answer};
use crate::protocol::stream::{self as protocol, END_DONE, END_TAG, SEQ_TAG};
use crate::protocol::tags::tag;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How long the last event may trail the query's answer (they travel apart).
const END_GRACE: Duration = Duration::from_secs(2);
/// SSE frames buffered towards a slow client before the relay waits for it.
const FRAMES_BUFFERED: usize = 32;

/// What the stream needs from the chat handler.
pub struct StreamCall<'a> {
    pub client: &'a Client,
    pub route: &'a str,
    /// When the HTTP request arrived, for the time to first chunk.
    pub started: Instant,
    /// Sends the query and waits for its answer (the broker link's error mapping).
    pub query: BoxFuture<'static, Result<Answer, ApiError>>,
}

/// Registers the stream's inbox with the gateway's [`StreamHub`] (whose subscription is
/// confirmed, so no chunk can be missed), then tags `request` with its channel. Call
/// before sending the query.
pub async fn subscribe(
    hub: &StreamHub,
    client: &Client,
    request: &mut Request,
) -> Result<Opened, ApiError> {
    let inbox = hub.open(client, &request.request_id).await?;
    request
        .tags
        .insert(protocol::STREAM_TAG.to_owned(), inbox.channel().to_owned());
    Ok(Opened { inbox })
}

/// A stream's registered inbox.
pub struct Opened {
    inbox: Inbox,
}

/// Waits for the first event, then answers: an error status, or 200 with the SSE body.
pub async fn respond(call: StreamCall<'_>, opened: Opened) -> Result<Response, ApiError> {
    let cancel = CancelOnDrop::new(call.client.clone(), opened.inbox.channel());
    let mut relay = Relay {
        events: opened.inbox,
        query: Some(call.query),
        answered_at: None,
        next_seq: 0,
        cancel,
    };
    let first = match relay.next().await {
        Step::Frame(frame) => frame,
        Step::Done => {
            return Err(ApiError::BadWorkerReply(
                "the stream ended before its first chunk".into(),
            ))
        }
        Step::Failed(error) => return Err(error),
    };
    stream_first_chunk(call.route, call.started.elapsed());
    let (tx, rx) = mpsc::channel::<Result<String, Infallible>>(FRAMES_BUFFERED);
    // Ends by itself: at the stream's end, on a failure, or when the client goes away.
    tokio::spawn(relay.run(first, tx));
    let mut response = (StatusCode::OK, Body::from_stream(ReceiverStream::new(rx))).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// What the relay has next.
enum Step {
    /// An SSE frame to send (a chunk).
    Frame(String),
    /// The stream ended cleanly.
    Done,
    /// The stream failed; before the first chunk this is the response, after it an event.
    Failed(ApiError),
}

/// One stream being relayed: its events, the pending query, and the cancel to send if
/// it is dropped before its end.
struct Relay {
    events: Inbox,
    /// The query, until its answer is in.
    query: Option<BoxFuture<'static, Result<Answer, ApiError>>>,
    /// Set when the query succeeded: the last event must follow within [`END_GRACE`].
    answered_at: Option<tokio::time::Instant>,
    next_seq: u64,
    cancel: CancelOnDrop,
}

impl Relay {
    async fn next(&mut self) -> Step {
        loop {
            let grace = self.answered_at.map(|at| at + END_GRACE);
            tokio::select! {
                event = self.events.next() => {
                    return match event {
                        Some(event) => self.event(&event),
                        None => Step::Failed(ApiError::BrokerUnavailable("the stream's events stopped: the client read too slowly, or the gateway's link to the broker broke".into())),
                    };
                }
                answer = poll_query(&mut self.query) => {
                    self.query = None;
                    match answer {
                        Ok(answer) if answer.executed => self.answered_at = Some(tokio::time::Instant::now()),
                        Ok(answer) => return Step::Failed(failure_of(&answer)),
                        Err(error) => return Step::Failed(error),
                    }
                }
                () = sleep_until(grace) => {
                    return Step::Failed(ApiError::BadWorkerReply("the worker answered, but the stream's last events never came".into()));
                }
            }
        }
    }

    /// One event: a chunk, the end, or a failure (an end with an error, or a gap).
    fn event(&mut self, event: &EventReceive) -> Step {
        let seq = tag(&event.tags, SEQ_TAG).and_then(|s| s.parse::<u64>().ok());
        if seq != Some(self.next_seq) {
            return Step::Failed(ApiError::BadWorkerReply(format!(
                "the stream lost events between the worker and the gateway (expected number {}, got {})",
                self.next_seq,
                seq.map_or_else(|| "none".to_owned(), |s| s.to_string())
            )));
        }
        self.next_seq += 1;
        match tag(&event.tags, END_TAG) {
            None => Step::Frame(frame(&event.body)),
            Some(END_DONE) => Step::Done,
            Some(_) => {
                let answer = Answer {
                    body: event.body.clone(),
                    ..Answer::default()
                };
                Step::Failed(failure_of(&answer))
            }
        }
    }

    /// Sends `first` and every frame after it, then `[DONE]` or the error event.
    async fn run(mut self, first: String, tx: mpsc::Sender<Result<String, Infallible>>) {
        let mut frame = first;
        loop {
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
            let step = tokio::select! {
                () = tx.closed() => return,
                step = self.next() => step,
            };
            match step {
                Step::Frame(next) => frame = next,
                Step::Done => {
                    self.cancel.disarm();
                    let _ = tx.send(Ok("data: [DONE]\n\n".to_owned())).await;
                    self.await_answer();
                    return;
                }
                Step::Failed(error) => {
                    tracing::warn!("stream failed after its first chunk: {error}");
                    let _ = tx.send(Ok(error_frame(&error))).await;
                    return;
                }
            }
        }
    }
}

impl Relay {
    /// Lets the query's answer, which travels apart from the events, arrive: a call
    /// dropped first is cancelled, which a real KubeMQ logs as a failed request.
    fn await_answer(&mut self) {
        if let Some(query) = self.query.take() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(END_GRACE, query).await;
            });
        }
    }
}

async fn poll_query(
    query: &mut Option<BoxFuture<'static, Result<Answer, ApiError>>>,
) -> Result<Answer, ApiError> {
    match query {
        Some(query) => query.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A chunk event's body as an SSE frame.
fn frame(body: &[u8]) -> String {
    data_event(&String::from_utf8_lossy(body))
}

/// One SSE event carrying `data`: a line of data holds no newline, so every line of it
/// goes in its own `data:` field (a reader joins them back with `\n`).
fn data_event(data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 8);
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A failure after the first chunk: an OpenAI error object as a data event.
fn error_frame(error: &ApiError) -> String {
    let mut body = error.body();
    if let Some(inner) = body.get_mut("error") {
        inner["status"] = json!(error.status().as_u16());
    }
    data_event(&Value::to_string(&body))
}

/// Tells the worker to stop when the stream is dropped before its end: the client went
/// away (the relay's body was dropped) or the handler was.
struct CancelOnDrop {
    client: Client,
    channel: String,
    armed: bool,
}

impl CancelOnDrop {
    fn new(client: Client, stream_channel: &str) -> Self {
        Self {
            client,
            channel: protocol::cancel_channel(stream_channel),
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let event = Event {
            client_id: self.client.client_id().to_owned(),
            channel: std::mem::take(&mut self.channel),
            body: b"cancel".to_vec(),
            ..Event::default()
        };
        let client = self.client.clone();
        tracing::debug!(channel = %event.channel, "client went away: cancelling the stream");
        // A single publish that ends by itself (the client bounds it with a timeout).
        tokio::spawn(async move {
            if let Err(e) = client.send_event(event).await {
                tracing::debug!("stream cancel not published: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_sse_data_events() {
        assert_eq!(frame(br#"{"a":1}"#), "data: {\"a\":1}\n\n");
        assert_eq!(
            frame(b"{\"a\":\n1}\r\n"),
            "data: {\"a\":\ndata: 1}\ndata: \n\n",
            "a line break in the data starts a new data field"
        );
        let mut parser = crate::provider::sse::SseParser::default();
        let events = parser
            .feed(frame(b"one\ntwo").as_bytes())
            .unwrap_or_default();
        assert_eq!(events.first().map(|e| e.data.as_str()), Some("one\ntwo"));
        let e = error_frame(&ApiError::UpstreamFailed("sim failed mid-stream".into()));
        let json: Value =
            serde_json::from_str(e.trim_start_matches("data: ").trim()).unwrap_or_default();
        assert_eq!(json["error"]["message"], "sim failed mid-stream");
        assert_eq!(json["error"]["status"], 502);
        assert!(e.ends_with("\n\n"));
    }
}
