//! Workers over real loopback: the embedded broker, worker replicas routing to the
//! simulated provider, and the official `kubemq` crate as the caller.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::stack;
use common::Broker;
use kubemq::prelude::*;
use llm_router::routing::Router;
use llm_router::sim::{RunningSim, SimConfig};
use llm_router::worker::{self, Status, WorkerError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const OPENAI: &str = "openai_requests";
const CLAUDE: &str = "claude_requests";

struct Worker {
    id: String,
    status: Arc<Status>,
    stop: CancellationToken,
    task: JoinHandle<std::result::Result<(), WorkerError>>,
}

/// Broker, sim provider and a router on the default routes pointed at the sim.
struct Setup {
    broker: Broker,
    sim: RunningSim,
    router: Arc<Router>,
    workers: Vec<Worker>,
}

async fn setup(sim: SimConfig) -> Setup {
    let broker = Broker::start().await;
    let sim = stack::start_sim(sim).await;
    let config = stack::sim_routes(&sim, &[]);
    let router = Router::new(&config, reqwest::Client::new()).expect("router");
    Setup {
        broker,
        sim,
        router: Arc::new(router),
        workers: Vec::new(),
    }
}

impl Setup {
    /// Starts worker `id` and waits until its subscriptions reached the broker.
    async fn add_worker(&mut self, id: &str) {
        let (status, (stop, task)) =
            stack::spawn_worker(&self.broker.grpc_address(), id, self.router.clone());
        let expected = self.workers.len() + 1;
        common::eventually("worker subscribed", || status.is_ready()).await;
        self.broker.wait_query_subscribers(OPENAI, expected).await;
        self.broker.wait_query_subscribers(CLAUDE, expected).await;
        self.workers.push(Worker {
            id: id.to_owned(),
            status,
            stop,
            task,
        });
    }

    async fn with_workers(sim: SimConfig, n: usize) -> Self {
        let mut s = setup(sim).await;
        for i in 0..n {
            s.add_worker(&format!("w{i}")).await;
        }
        s
    }

    async fn stop(self) {
        for w in &self.workers {
            w.stop.cancel();
        }
        for w in self.workers {
            let _ = w.task.await;
        }
        self.sim.shutdown.cancel();
        self.broker.stop().await;
    }
}

fn query(channel: &str, body: impl Into<Vec<u8>>, timeout: Duration) -> Query {
    Query::builder()
        .channel(channel)
        .body(body.into())
        .timeout(timeout)
        .build()
}

fn json_query(channel: &str, body: impl Into<Vec<u8>>) -> Query {
    Query::builder()
        .channel(channel)
        .body(body.into())
        .timeout(Duration::from_secs(10))
        .add_tag("content-type", "application/json")
        .build()
}

fn body_json(resp: &QueryResponse) -> Value {
    serde_json::from_slice(&resp.body).expect("reply body is JSON")
}

#[tokio::test]
async fn seed_mode_round_trip_on_both_article_channels() {
    let s = Setup::with_workers(SimConfig::default(), 1).await;
    let caller = s.broker.sdk("article-client").await;
    for channel in [OPENAI, CLAUDE] {
        let resp = caller
            .send_query(query(channel, "What is KubeMQ?", Duration::from_secs(10)))
            .await
            .expect("query");
        assert!(resp.executed, "{channel}: {}", resp.error);
        assert_eq!(resp.response_client_id, "w0");
        let text = body_json(&resp)["response"]
            .as_str()
            .expect("\"response\" is a string")
            .to_owned();
        assert!(text.contains("What is KubeMQ?"), "{channel}: {text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn json_mode_round_trip_returns_a_chat_completion() {
    let s = Setup::with_workers(SimConfig::default(), 1).await;
    let caller = s.broker.sdk("json-client").await;
    let request = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello router"}]}"#;
    let resp = caller
        .send_query(json_query(OPENAI, request))
        .await
        .expect("query");
    assert!(resp.executed, "{}", resp.error);
    let c = body_json(&resp);
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["choices"][0]["index"], 0);
    assert_eq!(c["choices"][0]["message"]["role"], "assistant");
    let content = c["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(content.contains("hello router"), "{content}");
    assert!(c["choices"][0]["finish_reason"].is_string());
    let usage = &c["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().expect("prompt")
                + usage["completion_tokens"].as_u64().expect("completion")
        )
    );
    assert!(c["llm_router"]["endpoint"].is_string());
    assert!(c["llm_router"]["attempts"].as_u64() >= Some(1));
    assert!(c["created"].as_i64() > Some(0));
    s.stop().await;
}

#[tokio::test]
async fn three_workers_share_the_load_through_the_group() {
    let sim = SimConfig {
        latency_ms: 20,
        ..SimConfig::default()
    };
    let s = Setup::with_workers(sim, 3).await;
    let caller = s.broker.sdk("load-client").await;
    let mut calls = Vec::new();
    for i in 0..90 {
        let c = caller.clone();
        calls.push(tokio::spawn(async move {
            c.send_query(query(
                OPENAI,
                format!("prompt {i}"),
                Duration::from_secs(10),
            ))
            .await
        }));
    }
    let mut per_worker: HashMap<String, usize> = HashMap::new();
    for call in calls {
        let resp = call.await.expect("join").expect("query");
        assert!(resp.executed, "{}", resp.error);
        *per_worker.entry(resp.response_client_id).or_default() += 1;
    }
    for w in &s.workers {
        let n = per_worker.get(&w.id).copied().unwrap_or(0);
        assert!(n >= 15, "unfair share: {per_worker:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_the_worker_keeps_serving() {
    let s = Setup::with_workers(SimConfig::default(), 1).await;
    let caller = s.broker.sdk("bad-client").await;
    let t = Duration::from_secs(10);

    let resp = caller
        .send_query(query(OPENAI, vec![0xff, 0xfe, 0x00, 0xc3], t))
        .await
        .expect("query");
    assert!(!resp.executed);
    assert!(resp.error.contains("not valid UTF-8"), "{}", resp.error);
    assert_eq!(body_json(&resp)["error"], Value::String(resp.error.clone()));

    let resp = caller
        .send_query(json_query(OPENAI, "{\"messages\": [oops"))
        .await
        .expect("query");
    assert!(!resp.executed);
    assert!(
        resp.error.contains("not a valid OpenAI chat request"),
        "{}",
        resp.error
    );
    assert_eq!(body_json(&resp)["error"]["code"], "bad_request");

    let resp = caller
        .send_query(json_query(OPENAI, r#"{"messages": []}"#))
        .await
        .expect("query");
    assert!(!resp.executed);
    assert!(resp.error.contains("messages"), "{}", resp.error);

    let resp = caller
        .send_query(query(OPENAI, "still there?", t))
        .await
        .expect("query");
    assert!(resp.executed, "{}", resp.error);
    assert!(body_json(&resp)["response"].is_string());
    s.stop().await;
}

#[tokio::test]
async fn a_channel_no_route_serves_times_out_with_an_error() {
    let s = Setup::with_workers(SimConfig::default(), 1).await;
    let caller = s.broker.sdk("lost-client").await;
    let started = Instant::now();
    let err = caller
        .send_query(query(
            "no_such_route_requests",
            "hello",
            Duration::from_secs(1),
        ))
        .await
        .expect_err("nobody serves that channel");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(err.to_string().contains("301"), "{err}");
    // The worker is unaffected.
    let resp = caller
        .send_query(query(OPENAI, "hello", Duration::from_secs(10)))
        .await
        .expect("query");
    assert!(resp.executed, "{}", resp.error);
    s.stop().await;
}

#[tokio::test]
async fn a_worker_killed_mid_request_never_leaves_the_caller_past_its_timeout() {
    let sim = SimConfig {
        latency_ms: 800,
        ..SimConfig::default()
    };
    let mut s = Setup::with_workers(sim, 3).await;
    let caller = s.broker.sdk("victim-client").await;
    let timeout = Duration::from_secs(3);
    let mut calls = Vec::new();
    for i in 0..6 {
        let c = caller.clone();
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = c
                .send_query(query(OPENAI, format!("slow {i}"), timeout))
                .await;
            (r, started.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = s.workers.remove(0);
    killed.task.abort();
    let (mut answered, mut timed_out) = (0, 0);
    for call in calls {
        let (result, elapsed) = call.await.expect("join");
        assert!(
            elapsed < timeout + Duration::from_secs(1),
            "silent for {elapsed:?}"
        );
        match result {
            Ok(resp) => {
                assert!(resp.executed, "{}", resp.error);
                assert_ne!(resp.response_client_id, killed.id);
                answered += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("301"), "{e}");
                timed_out += 1;
            }
        }
    }
    assert!(answered >= 2, "answered {answered}, timed out {timed_out}");
    // The survivors serve everything from now on.
    s.broker.wait_query_subscribers(OPENAI, 2).await;
    for i in 0..4 {
        let resp = caller
            .send_query(query(OPENAI, format!("after {i}"), timeout))
            .await
            .expect("query after the kill");
        assert!(resp.executed);
    }
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_leaves_the_group() {
    let sim = SimConfig {
        latency_ms: 500,
        ..SimConfig::default()
    };
    let mut s = Setup::with_workers(sim, 1).await;
    let caller = s.broker.sdk("drain-client").await;
    let c = caller.clone();
    let call = tokio::spawn(async move {
        c.send_query(query(OPENAI, "finish me", Duration::from_secs(5)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let w = s.workers.remove(0);
    w.stop.cancel();
    let resp = call.await.expect("join").expect("in-flight query answered");
    assert!(resp.executed, "{}", resp.error);
    w.task.await.expect("join").expect("worker stops cleanly");
    assert!(!w.status.is_ready());
    s.broker.wait_query_subscribers(OPENAI, 0).await;
    s.stop().await;
}

#[tokio::test]
async fn worker_resubscribes_after_a_broker_restart() {
    let mut s = Setup::with_workers(SimConfig::default(), 1).await;
    let caller = s.broker.sdk("before-restart").await;
    let resp = caller
        .send_query(query(OPENAI, "before", Duration::from_secs(5)))
        .await
        .expect("query");
    assert!(resp.executed);
    drop(caller);

    s.broker.restart().await;
    let status = s.workers[0].status.clone();
    common::eventually("worker resubscribed", || status.is_ready()).await;
    s.broker.wait_query_subscribers(OPENAI, 1).await;
    s.broker.wait_query_subscribers(CLAUDE, 1).await;
    let caller = s.broker.sdk("after-restart").await;
    let resp = caller
        .send_query(query(OPENAI, "after", Duration::from_secs(5)))
        .await
        .expect("query after restart");
    assert!(resp.executed, "{}", resp.error);
    assert_eq!(resp.response_client_id, "w0");
    s.stop().await;
}

#[tokio::test]
async fn metrics_endpoint_reports_requests_by_route_and_outcome() {
    let s = Setup::with_workers(SimConfig::default(), 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let statuses = vec![s.workers[0].status.clone()];
    let http = tokio::spawn(worker::http::serve(
        listener,
        statuses,
        stop.clone().cancelled_owned(),
    ));
    let caller = s.broker.sdk("metrics-client").await;
    caller
        .send_query(query(OPENAI, "count me", Duration::from_secs(5)))
        .await
        .expect("query");
    caller
        .send_query(query(OPENAI, vec![0xff], Duration::from_secs(5)))
        .await
        .expect("query");
    let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
    let ready = get("/ready").await.expect("ready");
    assert_eq!(ready.status(), 200);
    assert_eq!(get("/health").await.expect("health").status(), 200);
    let text = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    for needle in [
        "llm_router_requests_total{route=\"openai\",outcome=\"ok\"}",
        "llm_router_requests_total{route=\"openai\",outcome=\"bad_request\"}",
        "llm_router_request_duration_seconds",
        "llm_router_overhead_seconds",
        "llm_router_in_flight_requests",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    stop.cancel();
    http.await.expect("join").expect("serve");
    s.stop().await;
}

/// Rough throughput of one worker over loopback (debug builds are far slower than
/// release): `cargo test --release --test worker -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "load figure, not a check"]
async fn one_worker_throughput() {
    let s = Setup::with_workers(SimConfig::default(), 1).await;
    let caller = s.broker.sdk("load").await;
    let (callers, per_caller) = (64, 80);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let caller = caller.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in 0..per_caller {
                let t = Instant::now();
                let resp = caller
                    .send_query(query(OPENAI, format!("c{c} q{i}"), Duration::from_secs(10)))
                    .await
                    .expect("query");
                assert!(resp.executed, "{}", resp.error);
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: usize| all[(all.len() * p / 100).min(all.len() - 1)];
    eprintln!(
        "{} queries in {elapsed:?}: {:.0}/s, p50 {:?}, p99 {:?}",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(50),
        pct(99)
    );
    s.stop().await;
}

/// The first and second turn of a tool-calling agent, as JSON-mode bodies.
fn agent_turns() -> (Value, impl Fn(&Value) -> Value) {
    let tools = serde_json::json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}}}]);
    let user = serde_json::json!({"role": "user", "content": "Weather in Paris? Use the tool."});
    let first = serde_json::json!({"messages": [user], "tools": tools, "tool_choice": "required"});
    let second = move |assistant: &Value| {
        let id = assistant["tool_calls"][0]["id"].clone();
        serde_json::json!({"messages": [user, assistant,
            {"role": "tool", "tool_call_id": id, "content": "Paris: sunny, 21 C"}],
            "tools": tools})
    };
    (first, second)
}

#[tokio::test]
async fn an_agent_loop_runs_through_json_mode_queries_in_both_wire_formats() {
    let broker = Broker::start().await;
    let sim = stack::start_sim(SimConfig::default()).await;
    let mut config = stack::sim_routes(&sim, &[]);
    // The claude route's endpoint speaks Anthropic's format, so the loop is translated.
    for e in &mut config.endpoints {
        if e.name == "anthropic" {
            e.kind = llm_router::provider::ProviderKind::Anthropic;
        }
    }
    let router = Arc::new(Router::new(&config, reqwest::Client::new()).expect("router"));
    let (status, (stop, task)) = stack::spawn_worker(&broker.grpc_address(), "w0", router);
    common::eventually("worker subscribed", || status.is_ready()).await;
    broker.wait_query_subscribers(OPENAI, 1).await;
    broker.wait_query_subscribers(CLAUDE, 1).await;
    let client = broker.sdk("agent").await;
    for channel in [OPENAI, CLAUDE] {
        let (first, second) = agent_turns();
        let reply = client
            .send_query(json_query(channel, first.to_string()))
            .await
            .expect("first turn");
        let body = body_json(&reply);
        assert!(reply.executed, "{channel}: {body}");
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{channel}: {body}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{channel}: {body}");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or(""))
                .expect("arguments are JSON");
        assert!(args["city"].is_string(), "{channel}: {args}");
        let reply = client
            .send_query(json_query(channel, second(&choice["message"]).to_string()))
            .await
            .expect("second turn");
        let body = body_json(&reply);
        assert!(reply.executed, "{channel}: {body}");
        assert_eq!(
            body["choices"][0]["finish_reason"], "stop",
            "{channel}: {body}"
        );
        let text = body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        assert!(text.contains("sunny, 21 C"), "{channel}: {text}");
    }
    // What reached the Anthropic-format sim: the tool result as a tool_result block.
    let last: Value = reqwest::get(format!("{}/sim/last-request", sim.base_url()))
        .await
        .expect("last request")
        .json()
        .await
        .expect("json");
    assert_eq!(last["path"], "/v1/messages", "{last}");
    let blocks = last["body"]["messages"][1]["content"].to_string()
        + &last["body"]["messages"][2]["content"].to_string();
    assert!(
        blocks.contains("tool_use") && blocks.contains("tool_result"),
        "{last}"
    );
    stop.cancel();
    let _ = task.await;
    sim.shutdown.cancel();
    broker.stop().await;
}
