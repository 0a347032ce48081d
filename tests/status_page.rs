//! The gateway's status page over real loopback: the embedded broker, a slow simulated
//! provider and a failing one, two worker replicas (each with its own router, as separate
//! processes would have) and the gateway; `/status.json` read with reqwest.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::stack::{self, job_file, start_sim, Stack};
use llm_router::batch::submit::{self, SubmitOptions};
use llm_router::config::models::ModelNames;
use llm_router::config::RouterConfig;
use llm_router::kubemq::client::{Client, ClientOptions};
use llm_router::kubemq::queues::QueueClient;
use llm_router::sim::{RunningSim, SimConfig};
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};

const WORKERS: [&str; 2] = ["status-worker-1", "status-worker-2"];
const LINES: u64 = 30;

/// The default routes on the slow sim, except `anthropic` (the `claude` route), which
/// always fails; the OpenAI endpoints take one call at a time per worker and 600 rpm.
fn config(slow: &RunningSim, failing: &RunningSim) -> RouterConfig {
    let mut config = stack::sim_routes(slow, &[]);
    for endpoint in &mut config.endpoints {
        if endpoint.name == "anthropic" {
            endpoint.base_url = failing.base_url();
        } else {
            endpoint.limits.max_concurrency = Some(2);
            endpoint.limits.requests_per_minute = Some(600);
        }
    }
    config
}

impl Stack {
    async fn new() -> Self {
        let slow = start_sim(SimConfig {
            latency_ms: 300,
            ..SimConfig::default()
        })
        .await;
        let failing = start_sim(SimConfig {
            error_rates: vec![(503, 1.0)],
            ..SimConfig::default()
        })
        .await;
        let config = config(&slow, &failing);
        let workers = WORKERS.map(str::to_owned);
        Self::start(vec![slow, failing], config, workers, |_| {}).await
    }

    async fn status(&self) -> Value {
        self.http
            .get(format!("{}/status.json", self.gateway.url()))
            .send()
            .await
            .expect("GET /status.json")
            .error_for_status()
            .expect("status 200")
            .json()
            .await
            .expect("JSON")
    }

    /// Reads `/status.json` until `check` finds what it looks for (up to `limit`).
    async fn until<T>(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let doc = self.status().await;
            if let Some(found) = check(&doc) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "never shown: {what}; last: {doc:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    let key = if list == "workers" || list == "jobs" {
        "id"
    } else {
        "name"
    };
    doc[list].as_array()?.iter().find(|v| v[key] == name)
}

/// Chat requests to the always-failing `claude` route through the gateway, at once.
fn fail_claude(stack: &Stack, n: usize) -> impl Future<Output = Vec<u16>> + '_ {
    let url = format!("{}/v1/chat/completions", stack.gateway.url());
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    let calls: Vec<_> = (0..n)
        .map(|_| stack.http.post(&url).json(&body).send())
        .collect();
    async move {
        futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| r.expect("gateway answers").status().as_u16())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_shows_routes_workers_open_circuits_and_batch_progress() {
    let stack = Stack::new().await;

    // Routes come from the configuration, with their channels and targets.
    let doc = stack.status().await;
    let openai = named(&doc, "routes", "openai").expect("openai route");
    assert_eq!(openai["channel"], "openai_requests");
    assert_eq!(openai["targets"][0]["endpoint"], "openai");
    assert_eq!(openai["targets"][1]["priority"], 2);
    assert!(named(&doc, "routes", "claude").is_some(), "{doc:#}");

    // Both workers, heard through their heartbeats, with their endpoints' reports.
    stack
        .until("both workers live", Duration::from_secs(10), |doc| {
            WORKERS
                .iter()
                .all(|id| named(doc, "workers", id).is_some_and(|w| w["live"] == true))
                .then_some(())
        })
        .await;
    let endpoints = stack.status().await["endpoints"].clone();
    let anthropic = endpoints
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "anthropic"))
        .expect("anthropic endpoint");
    assert_eq!(anthropic["circuit"], "closed", "{endpoints:#}");
    assert_eq!(anthropic["health"], "healthy");
    assert_eq!(anthropic["headroom"], "unlimited");
    assert_eq!(anthropic["workers"].as_array().map(Vec::len), Some(2));

    // A failing provider opens the circuit of the workers that called it.
    let statuses = fail_claude(&stack, 6).await;
    assert!(statuses.iter().all(|s| *s >= 500), "{statuses:?}");
    let anthropic = stack
        .until("anthropic's circuit open", Duration::from_secs(10), |doc| {
            named(doc, "endpoints", "anthropic")
                .filter(|e| e["circuit"] == "open")
                .cloned()
        })
        .await;
    assert!(
        anthropic["health"] == "degraded" || anthropic["health"] == "down",
        "{anthropic:#}"
    );

    // A batch job on the slow sim: shown running with partial progress, then finished.
    let address = stack.broker.grpc_address();
    let client = Client::connect(ClientOptions::new(&address, "status-test"))
        .await
        .expect("client");
    let queues = QueueClient::new(&address, "status-test").expect("queue client");
    let options = SubmitOptions {
        route: "openai".to_owned(),
        max_attempts: 3,
        skip_invalid: false,
        input: "status.jsonl".to_owned(),
    };
    let defaults = llm_router::config::load_with_env(None, &std::collections::HashMap::new());
    let names = ModelNames::new(&defaults.expect("default config"));
    let job = submit::submit(
        &client,
        &queues,
        &job_file(LINES as usize),
        &names,
        &options,
    )
    .await
    .expect("submit")
    .job;
    let running = stack
        .until("the job running part way", Duration::from_secs(20), |doc| {
            named(doc, "jobs", &job)
                .filter(|j| j["state"] == "in_progress" && j["done"].as_u64() > Some(0))
                .cloned()
        })
        .await;
    assert_eq!(running["lines"], LINES);
    assert_eq!(running["route"], "openai");
    assert!(running["done"].as_u64() < Some(LINES), "{running:#}");
    let openai = stack
        .until(
            "openai's latency and headroom",
            Duration::from_secs(10),
            |doc| {
                named(doc, "endpoints", "openai")
                    .filter(|e| {
                        e["p50_ms"].as_u64() >= Some(300) && e["headroom"]["per_minute"] == 600
                    })
                    .cloned()
            },
        )
        .await;
    assert!(
        openai["headroom"]["left"].as_u64() < Some(600),
        "{openai:#}"
    );
    let finished = stack
        .until("the job finished", Duration::from_secs(30), |doc| {
            named(doc, "jobs", &job)
                .filter(|j| j["state"] == "finished")
                .cloned()
        })
        .await;
    assert_eq!(
        (finished["done"].as_u64(), finished["failed"].as_u64()),
        (Some(LINES), Some(0))
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let stack = Stack::new().await;
    let get = |path: &str| {
        stack
            .http
            .get(format!("{}{path}", stack.gateway.url()))
            .send()
    };
    let page = get("/status").await.expect("GET /status");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .map(str::to_owned);
    assert!(csp.expect("CSP").starts_with("default-src 'self'"));
    let html = page.text().await.expect("html");
    assert!(html.contains("<title>llm-router status</title>"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    for (path, kind) in [
        ("/status/status.js", "text/javascript"),
        ("/status/status.css", "text/css"),
    ] {
        let asset = get(path).await.expect("asset");
        assert_eq!(asset.status(), 200, "{path}");
        let content_type = asset.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    stack.stop().await;
}
