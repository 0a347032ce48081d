//! The OpenAI-compatible gateway over real loopback: the embedded broker, the simulated
//! provider, a worker and the gateway, with reqwest as the HTTP client.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::stack::{self, Stack};
use common::Broker;
use llm_router::gateway::auth::ApiKeys;
use llm_router::gateway::GatewayOptions;
use llm_router::sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Broker, sim, one worker (or none) and the gateway, on the default routes with `env`
/// overrides (`LLM_ROUTER__…`).
impl Stack {
    async fn new(sim: SimConfig, env: &[(&str, &str)], with_worker: bool) -> Self {
        Self::tuned(sim, env, with_worker, |_| {}).await
    }

    async fn tuned(
        sim: SimConfig,
        env: &[(&str, &str)],
        with_worker: bool,
        tune: impl FnOnce(&mut GatewayOptions),
    ) -> Self {
        let sim = stack::start_sim(sim).await;
        let config = stack::sim_routes(&sim, env);
        let worker = with_worker.then(|| "gw-test-worker".to_owned());
        let stack = Self::start(vec![sim], config, worker, tune).await;
        stack.wait_ready().await;
        stack
    }

    fn chat(&self, body: Value) -> reqwest::RequestBuilder {
        self.http.post(self.url("/v1/chat/completions")).json(&body)
    }

    /// A chat saying hello to `model`, with `headers`.
    async fn hello(&self, model: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.chat(hello(model));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        send(self.http.get(self.url(path))).await
    }
}

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("send")
}

fn hello(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hello gateway" }] })
}

/// Status, `x-request-id` and JSON body of a response.
async fn read(response: reqwest::Response) -> (StatusCode, Option<String>, Value) {
    let status = response.status();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, id, body)
}

/// Asserts an OpenAI-shaped error with `status` and `code`; returns its message.
async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) -> String {
    let (got, id, body) = read(response).await;
    assert_eq!(got, status, "{body}");
    assert!(
        id.is_some_and(|id| !id.is_empty()),
        "no x-request-id on a {got}"
    );
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some(), "{body}");
    error["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn chat_completion_round_trip_echoes_the_request_id() {
    let s = Stack::new(SimConfig::default(), &[], true).await;
    let response = s.hello("openai", &[("x-request-id", "req-42")]).await;
    let (status, id, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(id.as_deref(), Some("req-42"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    let content = body["choices"][0]["message"]["content"].as_str();
    assert!(
        content.is_some_and(|c| c.contains("hello gateway")),
        "{body}"
    );
    assert!(body["usage"]["total_tokens"].as_u64() > Some(0), "{body}");

    // Without one, the gateway makes one up.
    let response = s.hello("claude", &[]).await;
    let (status, id, _) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    let id = id.expect("generated id");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let metrics = s.get("/metrics").await;
    let text = metrics.text().await.expect("metrics text");
    assert!(
        text.contains(r#"llm_router_gateway_requests_total{route="openai",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"llm_router_gateway_request_duration_seconds_count{route="claude"}"#),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn route_slash_model_is_accepted_and_unknown_models_are_404() {
    let s = Stack::new(SimConfig::default(), &[], true).await;
    let response = s.hello("openai/gpt-4.1-mini", &[]).await;
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");

    let response = s.hello("openai/gpt-9", &[]).await;
    let message = expect_error(response, StatusCode::NOT_FOUND, "model_not_found").await;
    assert!(message.contains("gpt-4o-mini"), "{message}");

    let response = s.hello("gpt-4o", &[]).await;
    let message = expect_error(response, StatusCode::NOT_FOUND, "unknown_route").await;
    for route in ["claude", "openai", "sentiment", "summarize"] {
        assert!(message.contains(route), "{message}");
    }
    s.stop().await;
}

#[tokio::test]
async fn models_lists_routes_and_their_target_models() {
    let s = Stack::new(SimConfig::default(), &[], true).await;
    let response = s.get("/v1/models").await;
    let (status, id, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert!(id.is_some());
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().expect("data");
    let ids: Vec<&str> = data.iter().filter_map(|m| m["id"].as_str()).collect();
    for id in [
        "openai",
        "openai/gpt-4o-mini",
        "openai/gpt-4.1-mini",
        "claude",
        "claude/claude-3-5-haiku-latest",
        "summarize",
        "sentiment/gpt-4o-mini",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert!(data
        .iter()
        .all(|m| m["object"] == "model" && m["owned_by"] == "llm-router"));
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_are_400_before_reaching_the_broker() {
    let s = Stack::new(SimConfig::default(), &[], true).await;
    let malformed = send(
        s.http
            .post(s.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    let message = expect_error(malformed, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(message.contains("not valid JSON"), "{message}");

    let no_messages = send(s.chat(json!({"model": "openai"}))).await;
    expect_error(no_messages, StatusCode::BAD_REQUEST, "bad_request").await;

    let empty = send(s.chat(json!({"model": "openai", "messages": []}))).await;
    expect_error(empty, StatusCode::BAD_REQUEST, "bad_request").await;

    // A stream that fails before its first chunk is a plain HTTP error (tests/streaming.rs
    // has the streams themselves).
    let bad_stream =
        send(s.chat(json!({"model": "openai", "stream": true, "messages": [{"role": "user"}]})))
            .await;
    expect_error(bad_stream, StatusCode::BAD_REQUEST, "bad_request").await;

    // The worker's own validation comes back as a 400 too.
    let bad_content =
        send(s.chat(json!({"model": "openai", "messages": [{"role": "user"}]}))).await;
    expect_error(bad_content, StatusCode::BAD_REQUEST, "bad_request").await;
    s.stop().await;
}

#[tokio::test]
async fn api_keys_are_required_when_set() {
    let s = Stack::tuned(SimConfig::default(), &[], true, |o| {
        o.keys = ApiKeys::parse("sk-gw-one,sk-gw-two");
    })
    .await;
    let none = s.hello("openai", &[]).await;
    let message = expect_error(none, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    assert!(message.contains("Bearer"), "{message}");

    let wrong = s
        .hello("openai", &[("authorization", "Bearer sk-gw-three")])
        .await;
    let message = expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    assert!(
        !message.contains("sk-gw"),
        "the error quotes a key: {message}"
    );

    let models = s.get("/v1/models").await;
    assert_eq!(models.status(), StatusCode::UNAUTHORIZED);

    for key in ["sk-gw-one", "sk-gw-two"] {
        let ok = s
            .hello("openai", &[("authorization", &format!("Bearer {key}"))])
            .await;
        assert_eq!(ok.status(), StatusCode::OK, "key {key}");
    }
    // Health and metrics stay open for probes and scrapers.
    let health = s.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let s = Stack::tuned(SimConfig::default(), &[], true, |o| o.max_body = 2048).await;
    let big = json!({
        "model": "openai",
        "messages": [{ "role": "user", "content": "x".repeat(4096) }],
    });
    let response = send(s.chat(big)).await;
    let message = expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    assert!(message.contains("2048"), "{message}");
    let small = s.hello("openai", &[]).await;
    assert_eq!(small.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn per_key_rate_limit_is_429_with_retry_after() {
    let s = Stack::tuned(SimConfig::default(), &[], true, |o| {
        o.keys = ApiKeys::parse("sk-a,sk-b");
        o.rate_limit = NonZeroU32::new(2);
    })
    .await;
    for _ in 0..2 {
        let ok = s.hello("openai", &[("authorization", "Bearer sk-a")]).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let limited = s.hello("openai", &[("authorization", "Bearer sk-a")]).await;
    let retry_after = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(retry_after, Some(1));
    expect_error(
        limited,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
    )
    .await;
    // Another key has its own budget.
    let other = s.hello("openai", &[("authorization", "Bearer sk-b")]).await;
    assert_eq!(other.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn upstream_failure_is_502() {
    let sim = SimConfig {
        error_rates: vec![(500, 1.0)],
        ..SimConfig::default()
    };
    let env = [("LLM_ROUTER__ROUTES__CLAUDE__RETRY__BASE_DELAY", "1ms")];
    let s = Stack::new(sim, &env, true).await;
    let response = s.hello("claude", &[]).await;
    let message = expect_error(response, StatusCode::BAD_GATEWAY, "upstream_failed").await;
    assert!(message.contains("500"), "{message}");
    s.stop().await;
}

#[tokio::test]
async fn upstream_timeout_is_504() {
    let sim = SimConfig {
        hang_rate: 1.0,
        ..SimConfig::default()
    };
    let s = Stack::new(sim, &[], true).await;
    let response = s.hello("claude", &[("x-request-timeout", "1")]).await;
    let message = expect_error(response, StatusCode::GATEWAY_TIMEOUT, "upstream_timeout").await;
    assert!(message.contains("route 'claude'"), "{message}");
    s.stop().await;
}

#[tokio::test]
async fn every_target_rate_limited_is_429() {
    let env = [(
        "LLM_ROUTER__ENDPOINTS__ANTHROPIC__LIMITS__REQUESTS_PER_MINUTE",
        "1",
    )];
    let s = Stack::new(SimConfig::default(), &env, true).await;
    // One request a minute: within three tries (a second each) the budget runs out, and
    // the first refusal must be the route's 429.
    for _ in 0..3 {
        let response = s.hello("claude", &[("x-request-timeout", "1")]).await;
        if response.status() == StatusCode::OK {
            continue;
        }
        let message = expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
        assert!(message.contains("rate-limited"), "{message}");
        s.stop().await;
        return;
    }
    panic!("three requests passed a limit of one a minute");
}

#[tokio::test]
async fn no_worker_is_504_saying_to_start_workers() {
    let s = Stack::new(SimConfig::default(), &[], false).await;
    let started = std::time::Instant::now();
    let response = s.hello("openai", &[("x-request-timeout", "0.5")]).await;
    let message = expect_error(response, StatusCode::GATEWAY_TIMEOUT, "no_worker").await;
    assert!(message.contains("no worker answered"), "{message}");
    assert!(message.contains("workers are running"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout header was ignored"
    );
    s.stop().await;
}

#[tokio::test]
async fn unreachable_broker_is_503_and_not_ready() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let sim = stack::start_sim(SimConfig::default()).await;
    let gateway = stack::start_gateway(address, &stack::sim_routes(&sim, &[]), |_| {}).await;
    let http = reqwest::Client::new();
    let url = gateway.url();
    let response = send(
        http.post(format!("{url}/v1/chat/completions"))
            .json(&hello("openai")),
    )
    .await;
    let message = expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "broker_unavailable",
    )
    .await;
    assert!(message.contains("broker"), "{message}");
    let ready = send(http.get(format!("{url}/ready"))).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    gateway.stop().await;
    sim.shutdown.cancel();
}

#[tokio::test]
async fn broker_gone_after_start_is_503() {
    let s = Stack::new(SimConfig::default(), &[], true).await;
    let Stack {
        broker,
        sims,
        workers,
        gateway,
        http,
        ..
    } = s;
    stack::stop_workers(workers).await;
    broker.stop().await;
    let response = send(
        http.post(format!("{}/v1/chat/completions", gateway.url()))
            .json(&hello("openai")),
    )
    .await;
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "broker_unavailable",
    )
    .await;
    gateway.stop().await;
    for sim in sims {
        sim.shutdown.cancel();
    }
}

#[tokio::test]
async fn unknown_paths_are_openai_shaped_404s() {
    let s = Stack::new(SimConfig::default(), &[], false).await;
    let response = s.get("/v1/images/generations").await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    s.stop().await;
}

/// A stand-in worker on `openai_requests` that hands each query to the test and answers
/// it: first with a canned completion, then with a failure that is not JSON.
async fn fake_worker(
    broker: &Broker,
) -> (
    kubemq::KubemqClient,
    kubemq::prelude::Subscription,
    tokio::sync::mpsc::UnboundedReceiver<kubemq::prelude::QueryReceive>,
) {
    use kubemq::prelude::QueryReply;
    let client = broker.sdk("fake-worker").await;
    let (seen, queries) = tokio::sync::mpsc::unbounded_channel();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = client.clone();
    let sub = client
        .subscribe_to_queries(
            "openai_requests",
            "fake",
            move |q| {
                let (c, seen, answered) = (c.clone(), seen.clone(), answered.clone());
                Box::pin(async move {
                    let n = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let reply = QueryReply::builder()
                        .request_id(&q.id)
                        .response_to(&q.response_to);
                    let reply = if n == 0 {
                        reply.body(br#"{"object":"chat.completion","id":"canned"}"#.to_vec())
                    } else {
                        reply.body(b"garbled".to_vec()).error("worker exploded")
                    };
                    let _ = seen.send(q);
                    c.send_query_response(reply.build()).await.expect("reply");
                })
            },
            None,
        )
        .await
        .expect("subscribe");
    broker.wait_query_subscribers("openai_requests", 1).await;
    (client, sub, queries)
}

#[tokio::test]
async fn the_query_carries_json_mode_request_id_and_pin() {
    let s = Stack::new(SimConfig::default(), &[], false).await;
    let (_client, _sub, mut queries) = fake_worker(&s.broker).await;
    let response = s
        .hello(
            "openai/gpt-4.1-mini",
            &[("x-request-id", "trace-7"), ("x-request-timeout", "5")],
        )
        .await;
    let (status, id, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(id.as_deref(), Some("trace-7"));
    assert_eq!(body["id"], "canned", "the worker's body is passed through");

    let q = queries.recv().await.expect("the query");
    assert_eq!(
        q.tags.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        q.tags.get("x-request-id").map(String::as_str),
        Some("trace-7")
    );
    assert_eq!(
        q.tags.get("llm-router-pin-model").map(String::as_str),
        Some("gpt-4.1-mini")
    );
    let sent: Value = serde_json::from_slice(&q.body).expect("JSON body");
    assert_eq!(sent["model"], "gpt-4.1-mini");
    assert_eq!(sent["messages"][0]["content"], "hello gateway");

    // A failure the gateway cannot read is a 502 carrying the worker's error text.
    let response = s.hello("openai", &[]).await;
    let message = expect_error(response, StatusCode::BAD_GATEWAY, "bad_worker_reply").await;
    assert!(message.contains("worker exploded"), "{message}");
    let q = queries.recv().await.expect("the second query");
    let sent: Value = serde_json::from_slice(&q.body).expect("JSON body");
    assert!(
        sent.get("model").is_none(),
        "a route name is not a model: {sent}"
    );
    assert!(!q.tags.contains_key("llm-router-pin-model"));
    s.stop().await;
}
