//! Times the Batch API's two hot paths in one process (embedded broker and gateway on
//! ephemeral loopback ports, no workers): `POST /v1/batches` for a file of BENCH_LINES
//! (50,000) lines, and 100 sequential `GET /v1/batches/{id}` (and `GET /v1/files/{id}`)
//! right after the create and again after 1,000 more GETs. Flat is the goal: the cost of a
//! read must not depend on how often anyone read before.
//!
//! Run: `cargo run --example batch_api_timing` (debug build; `--release` for release).
#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a timing tool: a failed step ends it, results go to stdout"
)]

use llm_router::broker::config::BrokerConfig;
use llm_router::gateway::{self, GatewayOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let lines: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = llm_router::broker::start(BrokerConfig {
        grpc_port: 0,
        rest_port: 0,
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker");
    let config = llm_router::config::load_with_env(None, &Default::default()).expect("config");
    let options = GatewayOptions::new(
        broker.grpc_addr.to_string(),
        "127.0.0.1:0".parse().expect("addr"),
    );
    let gw = gateway::start(options, &config).await.expect("gateway");
    let base = format!("{}/v1", gw.url());
    let http = reqwest::Client::new();
    wait_ok(&http, &format!("{base}/batches")).await;

    let file = upload(&http, &base, &input(lines)).await;
    let started = Instant::now();
    let batch: Value = http
        .post(format!("{base}/batches"))
        .json(&json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("batch");
    let create = started.elapsed();
    assert_eq!(batch["status"], "in_progress", "{batch}");
    println!("create, {lines} lines: {:.2} s", create.as_secs_f64());
    let id = batch["id"].as_str().expect("id");
    let batch_url = format!("{base}/batches/{id}");
    let file_url = format!("{base}/files/{file}");
    report(
        "GET batch x100 after 0 prior",
        gets(&http, &batch_url, 100).await,
    );
    report(
        "GET file  x100 after 0 prior",
        gets(&http, &file_url, 100).await,
    );
    gets(&http, &batch_url, 1000).await;
    gets(&http, &file_url, 1000).await;
    report(
        "GET batch x100 after 1000 prior",
        gets(&http, &batch_url, 100).await,
    );
    report(
        "GET file  x100 after 1000 prior",
        gets(&http, &file_url, 100).await,
    );
    gw.stop().await;
    broker.shutdown().await;
}

fn report(what: &str, took: Duration) {
    println!(
        "{what}: {:.3} s total, {:.2} ms each",
        took.as_secs_f64(),
        took.as_secs_f64() * 10.0
    );
}

async fn gets(http: &reqwest::Client, url: &str, n: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        let response = http.get(url).send().await.expect("get");
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.expect("body");
    }
    started.elapsed()
}

async fn upload(http: &reqwest::Client, base: &str, text: &str) -> String {
    let boundary = "timing-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{text}\r\n--{boundary}--\r\n"
    );
    let file: Value = http
        .post(format!("{base}/files"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("file");
    file["id"].as_str().expect("file id").to_owned()
}

fn input(n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({"custom_id": format!("req-{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "openai", "messages": [{"role": "user", "content": format!("line {i}")}]}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn wait_ok(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the Batch API never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
