//! Streaming end to end over real loopback: the embedded broker, simulated providers, a
//! worker and the gateway in this process; reqwest reads the gateway's SSE as it arrives.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::stack::{self, start_sim, Stack};
use llm_router::config::RouterConfig;
use llm_router::provider::sse::SseParser;
use llm_router::provider::ProviderKind;
use llm_router::sim::{RunningSim, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Eight chunks from the sim: `sim: `, then one per word.
const PROMPT: &str = "one two three four five six seven";

fn slow(chunk_delay_ms: u64) -> SimConfig {
    SimConfig {
        chunk_delay_ms,
        ..SimConfig::default()
    }
}

/// The default routes on `sim`; the `openai` route's backup endpoint on `backup` when
/// given (its primary stays on `sim`).
fn config(sim: &RunningSim, backup: Option<&RunningSim>) -> RouterConfig {
    let mut config = stack::sim_routes(sim, &[]);
    if let Some(backup) = backup {
        endpoint(&mut config, "openai-backup").base_url = backup.base_url();
    }
    config
}

fn endpoint<'a>(
    config: &'a mut RouterConfig,
    name: &str,
) -> &'a mut llm_router::config::EndpointConfig {
    config
        .endpoints
        .iter_mut()
        .find(|e| e.name == name)
        .expect("endpoint in the default config")
}

/// Broker, one worker and the gateway over `config`; the test keeps its sims.
impl Stack {
    async fn new(config: &RouterConfig) -> Self {
        let worker = ["stream-test-worker".to_owned()];
        let stack = Self::start(Vec::new(), config.clone(), worker, |_| {}).await;
        stack.wait_ready().await;
        stack
    }

    /// Starts a streamed chat on `model` and returns the response once its head is in.
    async fn start_stream(&self, model: &str, prompt: &str) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .header("x-request-id", "stream-test-1")
            .json(&json!({"model": model, "stream": true,
                "messages": [{"role": "user", "content": prompt}]}))
            .send()
            .await
            .expect("send")
    }

    async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await;
        response.expect("metrics").text().await.expect("body")
    }
}

/// One SSE data event and when it arrived.
#[derive(Debug)]
struct Received {
    at: Instant,
    data: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// Reads `response` to its end, timing every event.
async fn read_all(mut response: reqwest::Response) -> Vec<Received> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(bytes) = response.chunk().await.expect("read the stream") {
        let at = Instant::now();
        for event in parser.feed(&bytes).expect("events within the limit") {
            assert!(event.event.is_empty(), "OpenAI streams name no events");
            events.push(Received {
                at,
                data: event.data,
            });
        }
        assert!(Instant::now() < deadline, "the stream never ended");
    }
    events
}

/// The text of the chunk events, in order.
fn content(events: &[Received]) -> String {
    events
        .iter()
        .filter_map(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn chunks(events: &[Received]) -> Vec<&Received> {
    events
        .iter()
        .filter(|e| e.json()["object"] == "chat.completion.chunk")
        .collect()
}

#[tokio::test]
async fn chunks_arrive_as_the_provider_sends_them() {
    let sim = start_sim(slow(100)).await;
    let s = Stack::new(&config(&sim, None)).await;
    let started = Instant::now();
    let response = s.start_stream("openai", PROMPT).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert_eq!(
        headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("stream-test-1")
    );
    let events = read_all(response).await;
    let chunks = chunks(&events);
    assert!(chunks.len() >= 5, "{events:?}");
    assert_eq!(content(&events), format!("sim: {PROMPT}"));
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let (first, last) = (chunks[0].at, chunks[chunks.len() - 1].at);
    assert!(
        last - first >= Duration::from_millis(500),
        "chunks came together: first at {:?}, last at {:?}",
        first - started,
        last - started
    );
    assert!(
        first - started < Duration::from_millis(400),
        "{:?}",
        first - started
    );
    let finish = chunks.iter().find_map(|c| {
        c.json()["choices"][0]["finish_reason"]
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(finish.as_deref(), Some("stop"));
    let usage = chunks
        .iter()
        .find(|c| c.json()["usage"].is_object())
        .map(|c| c.json());
    assert!(
        usage.is_some_and(|u| u["usage"]["completion_tokens"] == 8),
        "{events:?}"
    );
    // The gateway's port serves the gateway's series; the worker's (in this process) are
    // the worker role's.
    let gateway = s.metrics().await;
    let series = "llm_router_gateway_stream_first_chunk_seconds_count{route=\"openai\"}";
    assert!(gateway.contains(series), "no {series} in:\n{gateway}");
    let worker = llm_router::metrics::render_for(llm_router::metrics::Role::Worker);
    let series = "llm_router_stream_first_chunk_seconds_count{route=\"openai\"}";
    assert!(worker.contains(series), "no {series} in:\n{worker}");
    assert!(
        !gateway.contains(series),
        "the gateway's port serves only the gateway's series"
    );
    assert_eq!(sim.stats().streams, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_primary_failing_before_the_first_chunk_fails_over() {
    let primary = start_sim(SimConfig {
        error_rates: vec![(503, 1.0)],
        ..slow(20)
    })
    .await;
    let backup = start_sim(slow(20)).await;
    let s = Stack::new(&config(&primary, Some(&backup))).await;
    let response = s.start_stream("openai", PROMPT).await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_all(response).await;
    assert_eq!(content(&events), format!("sim: {PROMPT}"));
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let model = chunks(&events)[0].json()["model"].clone();
    assert_eq!(model, "gpt-4.1-mini", "the backup's model");
    assert!(primary.stats().errors >= 1, "{:?}", primary.stats());
    assert_eq!(primary.stats().streams, 0);
    assert_eq!(backup.stats().streams, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_failure_mid_stream_is_an_error_event_never_a_splice() {
    let primary = start_sim(SimConfig {
        mid_stream_error_rate: 1.0,
        ..slow(30)
    })
    .await;
    let backup = start_sim(slow(30)).await;
    let s = Stack::new(&config(&primary, Some(&backup))).await;
    let response = s.start_stream("openai", PROMPT).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the first chunk came through"
    );
    let events = read_all(response).await;
    let got = content(&events);
    assert!(!got.is_empty(), "{events:?}");
    assert!(format!("sim: {PROMPT}").starts_with(&got), "{got:?}");
    let last = events.last().expect("events").json();
    let message = last["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("mid-stream"), "{events:?}");
    assert_eq!(last["error"]["code"], "upstream_failed");
    assert!(events.iter().all(|e| e.data != "[DONE]"), "{events:?}");
    assert_eq!(primary.stats().mid_stream_errors, 1);
    assert_eq!(backup.stats().requests, 0, "no other endpoint was asked");
    s.stop().await;
}

#[tokio::test]
async fn anthropic_streams_come_out_as_openai_chunks() {
    let sim = start_sim(slow(10)).await;
    let mut config = config(&sim, None);
    endpoint(&mut config, "anthropic").kind = ProviderKind::Anthropic;
    let s = Stack::new(&config).await;
    let response = s.start_stream("claude", PROMPT).await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_all(response).await;
    assert_eq!(content(&events), format!("sim: {PROMPT}"));
    let chunks = chunks(&events);
    let first = chunks[0].json();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert!(
        first["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_sim_")),
        "{first}"
    );
    // As OpenAI streams it: the finish reason, then a usage chunk with no choices.
    let finish = chunks[chunks.len() - 2].json();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop", "{finish}");
    let last = chunks[chunks.len() - 1].json();
    assert_eq!(last["choices"], serde_json::json!([]), "{last}");
    assert_eq!(last["usage"]["completion_tokens"], 8, "{last}");
    assert!(
        last["usage"]["prompt_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{last}"
    );
    assert_eq!(sim.stats().streams, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_call() {
    let sim = start_sim(slow(200)).await;
    let s = Stack::new(&config(&sim, None)).await;
    let long = "a b c d e f g h i j k l m n o p q r s t u v w x y";
    let mut response = s.start_stream("openai", long).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut parser = SseParser::default();
    let mut seen = 0;
    while seen < 2 {
        let bytes = response.chunk().await.expect("read").expect("more");
        seen += parser.feed(&bytes).expect("events within the limit").len();
    }
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.stats().streams_cancelled == 0 {
        assert!(
            Instant::now() < deadline,
            "the sim never saw the stream closed: {:?}",
            sim.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.stats().streams, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_pinned_model_is_answered_by_its_target() {
    let sim = start_sim(SimConfig::default()).await;
    let s = Stack::new(&config(&sim, None)).await;
    let response = s.start_stream("openai/gpt-4.1-mini", PROMPT).await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_all(response).await;
    assert!(
        chunks(&events)
            .iter()
            .all(|c| c.json()["model"] == "gpt-4.1-mini"),
        "{events:?}"
    );

    let whole = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model": "openai/gpt-4.1-mini",
            "messages": [{"role": "user", "content": "pinned"}]}))
        .send()
        .await
        .expect("send");
    let body: Value = whole.json().await.expect("json");
    assert_eq!(body["model"], "gpt-4.1-mini", "{body}");
    assert_eq!(body["llm_router"]["endpoint"], "openai-backup", "{body}");
    s.stop().await;
}

/// The provider clients alone against the sim: a failure before the first chunk is an
/// ordinary error with its status and Retry-After; one after it comes out of the stream.
mod providers {
    use super::*;
    use llm_router::provider::{LlmRequest, Provider, ProviderError};

    fn client(kind: ProviderKind, sim: &RunningSim) -> Provider {
        Provider::new(kind, &sim.base_url(), None, reqwest::Client::new())
    }

    fn request() -> LlmRequest {
        let mut req = LlmRequest::prompt(PROMPT);
        req.set_model("m");
        req
    }

    /// Every chunk's text, and the error that ended the stream, if one did.
    async fn drain(
        mut stream: llm_router::provider::ChatStream,
    ) -> (String, Option<ProviderError>) {
        let mut text = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    let delta = &chunk.body["choices"][0]["delta"]["content"];
                    text.push_str(delta.as_str().unwrap_or(""));
                }
                Err(e) => return (text, Some(e)),
            }
        }
        (text, None)
    }

    #[tokio::test]
    async fn errors_before_the_first_chunk_keep_status_and_retry_after() {
        let sim = start_sim(SimConfig {
            rate_429: 1.0,
            retry_after_secs: 7,
            ..SimConfig::default()
        })
        .await;
        for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
            let opened = client(kind, &sim)
                .stream(&request(), Duration::from_secs(5))
                .await;
            match opened {
                Err(ProviderError::Status {
                    status: 429,
                    retry_after,
                    ..
                }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
                other => panic!(
                    "{kind:?}: expected a 429, got {:?}",
                    other.map(|_| "a stream")
                ),
            }
        }
    }

    #[tokio::test]
    async fn errors_after_the_first_chunk_end_the_stream() {
        let sim = start_sim(SimConfig {
            mid_stream_error_rate: 1.0,
            ..SimConfig::default()
        })
        .await;
        for (kind, status) in [(ProviderKind::Openai, 500), (ProviderKind::Anthropic, 529)] {
            let stream = client(kind, &sim)
                .stream(&request(), Duration::from_secs(5))
                .await
                .expect("the stream opens");
            let (text, error) = drain(stream).await;
            assert!(
                !text.is_empty() && format!("sim: {PROMPT}").starts_with(&text),
                "{text:?}"
            );
            match error {
                Some(ProviderError::Status {
                    status: got,
                    message,
                    ..
                }) => {
                    assert_eq!(got, status, "{kind:?}");
                    assert!(message.contains("mid-stream"), "{message}");
                }
                other => panic!("{kind:?}: expected a mid-stream error, got {other:?}"),
            }
        }
        assert_eq!(sim.stats().mid_stream_errors, 2);
    }

    #[tokio::test]
    async fn whole_streams_in_both_formats() {
        let sim = start_sim(SimConfig::default()).await;
        for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
            let stream = client(kind, &sim)
                .stream(&request(), Duration::from_secs(5))
                .await
                .expect("the stream opens");
            assert_eq!(
                drain(stream).await,
                (format!("sim: {PROMPT}"), None),
                "{kind:?}"
            );
        }
    }
}

#[tokio::test]
async fn finished_streams_leave_no_channel_and_no_series_of_their_own() {
    use llm_router::broker::pubsub::stats::Kind;
    let sim = start_sim(slow(0)).await;
    let s = Stack::new(&config(&sim, None)).await;
    for i in 0..20 {
        let response = s.start_stream("openai", &format!("stream {i}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let events = read_all(response).await;
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    }
    // The channel book and the broker's series are the embedded broker's; on the real
    // server the streams above are the whole check.
    let Some(broker) = s.broker.embedded() else {
        s.stop().await;
        return;
    };
    let pubsub = &broker.running.broker.pubsub;
    let is_stream = |name: &str| name.starts_with("llm-router.stream.");
    let listed = pubsub.list_channels(Kind::Events, is_stream);
    assert!(
        listed.is_empty(),
        "stream channels are never kept in the channel book: {listed:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", broker.rest_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let per_stream = metrics
        .lines()
        .filter(|l| {
            l.contains("channel=\"llm-router.stream.") && !l.contains("llm-router.stream.*")
        })
        .count();
    assert_eq!(per_stream, 0, "a series per stream:\n{metrics}");
    assert!(
        metrics.contains("channel=\"llm-router.stream.*\""),
        "stream traffic is counted under one label:\n{metrics}"
    );
    s.stop().await;
}
