//! The simulated provider over real loopback HTTP: both wire formats, the RPM limit,
//! determinism, resets, key checks, bad bodies and the counters.
#![expect(clippy::unwrap_used, reason = "a panic is how a test fails")]

use llm_router::sim::{self, RunningSim, SimConfig};
use serde_json::{json, Value};
use std::net::SocketAddr;

async fn start(config: SimConfig) -> RunningSim {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    sim::start(SimConfig { listen, ..config }).await.unwrap()
}

fn chat_body(text: &str) -> Value {
    json!({"model": "sim-1", "messages": [{"role": "user", "content": text}]})
}

async fn post(s: &RunningSim, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", s.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn stop(s: RunningSim) {
    s.shutdown.cancel();
    s.task.await.unwrap();
}

#[tokio::test]
async fn openai_format_echoes_the_prompt() {
    let s = start(SimConfig::default()).await;
    let r = post(&s, "/v1/chat/completions", chat_body("hello there")).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "sim-1");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "sim: hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let usage = &v["usage"];
    let counts = [
        &usage["prompt_tokens"],
        &usage["completion_tokens"],
        &usage["total_tokens"],
    ];
    assert_eq!(counts, [2, 3, 5]);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
    assert!(v["system_fingerprint"].is_string());
    stop(s).await;
}

#[tokio::test]
async fn anthropic_format_echoes_and_is_strict() {
    let s = start(SimConfig::default()).await;
    let body = json!({"model": "claude-sim", "max_tokens": 2, "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a b c"}]}]});
    let v: Value = post(&s, "/v1/messages", body).await.json().await.unwrap();
    assert_eq!(v["content"], json!([{"type": "text", "text": "sim: a"}]));
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 5, "output_tokens": 2,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
    );
    let no_max = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(post(&s, "/v1/messages", no_max).await.status(), 400);
    let system_turn = json!({"model": "m", "max_tokens": 9,
        "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]});
    let r = post(&s, "/v1/messages", system_turn).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    stop(s).await;
}

#[tokio::test]
async fn malformed_json_gets_an_openai_shaped_400() {
    let s = start(SimConfig::default()).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("key must be a string"));
    assert_eq!(s.stats().rejected, 1);
    stop(s).await;
}

#[tokio::test]
async fn rpm_limit_admits_exactly_the_limit() {
    let s = start(SimConfig {
        rpm_limit: Some(60),
        ..SimConfig::default()
    })
    .await;
    let calls = (0..100).map(|i| post(&s, "/v1/chat/completions", chat_body(&format!("n{i}"))));
    let responses = futures::future::join_all(calls).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!((ok, limited.len()), (60, 40));
    for r in limited {
        let secs: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&secs), "retry-after {secs}");
    }
    let stats = s.stats();
    assert_eq!(
        (stats.requests, stats.ok, stats.rate_limited),
        (100, 60, 40)
    );
    let served: Value = reqwest::get(format!("{}/stats", s.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["rate_limited"], 40);
    stop(s).await;
}

/// Statuses of `n` sequential requests.
async fn outcomes(config: SimConfig, n: usize) -> Vec<u16> {
    let s = start(config).await;
    let mut statuses = Vec::new();
    for i in 0..n {
        let r = post(&s, "/v1/chat/completions", chat_body(&i.to_string())).await;
        statuses.push(r.status().as_u16());
    }
    stop(s).await;
    statuses
}

#[tokio::test]
async fn same_seed_same_outcomes() {
    let config = |seed| SimConfig {
        error_rates: vec![(500, 0.2), (502, 0.1), (503, 0.2)],
        rate_429: 0.1,
        retry_after_secs: 3,
        seed,
        ..SimConfig::default()
    };
    let a = outcomes(config(42), 60).await;
    assert_eq!(a, outcomes(config(42), 60).await);
    assert_ne!(a, outcomes(config(43), 60).await);
    for status in [200, 429, 500, 502, 503] {
        assert!(a.contains(&status), "{status} missing from {a:?}");
    }
}

#[tokio::test]
async fn wrong_or_missing_key_is_401_in_both_formats() {
    let s = start(SimConfig {
        api_key: Some("sk-sim-right".into()),
        ..SimConfig::default()
    })
    .await;
    let url = |p: &str| format!("{}{p}", s.base_url());
    let http = reqwest::Client::new();
    let openai = |key: &str| {
        http.post(url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body("x"))
    };
    assert_eq!(openai("sk-sim-right").send().await.unwrap().status(), 200);
    assert_eq!(openai("sk-wrong").send().await.unwrap().status(), 401);
    let anthropic = http.post(url("/v1/messages")).json(
        &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    );
    let r = anthropic.send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    stop(s).await;
}

#[tokio::test]
async fn reset_drops_the_connection_without_a_response() {
    let s = start(SimConfig {
        reset_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let err = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.base_url()))
        .json(&chat_body("x"))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    assert_eq!(s.stats().resets, 1);
    stop(s).await;
}

#[tokio::test]
async fn relay_passes_answers_when_resets_are_rare() {
    let s = start(SimConfig {
        reset_rate: 0.5,
        seed: 1,
        ..SimConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let mut ok = 0;
    for _ in 0..20 {
        let r = http
            .post(format!("{}/v1/chat/completions", s.base_url()))
            .json(&chat_body("x"))
            .send()
            .await;
        ok += usize::from(r.is_ok_and(|r| r.status() == 200));
    }
    let stats = s.stats();
    assert_eq!(ok as u64, stats.ok);
    assert_eq!(stats.ok + stats.resets, 20);
    assert!(stats.ok > 0 && stats.resets > 0);
    stop(s).await;
}

#[tokio::test]
async fn health_and_latency() {
    let s = start(SimConfig {
        latency_ms: 50,
        jitter_ms: 20,
        ..SimConfig::default()
    })
    .await;
    let health = reqwest::get(format!("{}/health", s.base_url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let t = std::time::Instant::now();
    assert_eq!(
        post(&s, "/v1/chat/completions", chat_body("x"))
            .await
            .status(),
        200
    );
    let took = t.elapsed().as_millis();
    assert!((50..1000).contains(&took), "took {took} ms");
    stop(s).await;
}

#[tokio::test]
async fn hangs_end_at_shutdown_and_bad_configs_are_refused() {
    let s = start(SimConfig {
        hang_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let url = format!("{}/v1/chat/completions", s.base_url());
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&chat_body("x"))
            .send()
            .await
    });
    while s.stats().hangs == 0 {
        tokio::task::yield_now().await;
    }
    s.shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.task)
        .await
        .unwrap()
        .unwrap();
    let _ = pending.await.unwrap();
    let bad = SimConfig {
        error_rates: vec![(500, 0.7)],
        rate_429: 0.5,
        ..SimConfig::default()
    };
    assert!(sim::start(bad).await.is_err());
}

#[tokio::test]
async fn a_request_without_model_is_answered_by_sim() {
    let s = start(SimConfig::default()).await;
    let body = json!({"messages": [{"role": "user", "content": "x"}], "stop": "x"});
    let v: Value = post(&s, "/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "sim");
    assert_eq!(v["choices"][0]["message"]["content"], "sim: ");
    stop(s).await;
}
