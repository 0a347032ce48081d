//! OpenAI's Files and Batches APIs on the gateway over real loopback: the embedded broker,
//! the simulated provider, two workers and two gateway replicas, with reqwest as client.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::stack::{self, Stack};
use llm_router::batch::format::OutputLine;
use llm_router::gateway::{GatewayOptions, RunningGateway};
use llm_router::sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

impl Stack {
    /// Broker, sim, `workers` workers and a gateway whose Batch API answers.
    async fn new(sim: SimConfig, env: &[(&str, &str)], workers: usize) -> Self {
        let sim = stack::start_sim(sim).await;
        let config = stack::sim_routes(&sim, env);
        let ids = (0..workers).map(worker_id);
        let stack = Self::start(vec![sim], config, ids, |_| {}).await;
        stack.wait_batch_api(&stack.gateway).await;
        stack
    }

    /// Another gateway replica on the same broker.
    async fn replica(&self) -> RunningGateway {
        self.replica_with(|_| {}).await
    }

    async fn replica_with(&self, tune: impl FnOnce(&mut GatewayOptions)) -> RunningGateway {
        let gateway = stack::start_gateway(self.broker.grpc_address(), &self.config, tune).await;
        self.wait_batch_api(&gateway).await;
        gateway
    }

    /// Ready means the broker answers; the Batch API connects on its own link.
    async fn wait_batch_api(&self, gateway: &RunningGateway) {
        let urls = ["/ready", "/v1/batches"].map(|path| format!("{}{path}", gateway.url()));
        stack::wait_ok(&self.http, &urls, Duration::from_secs(10)).await;
    }

    fn api(&self) -> Api<'_> {
        Api {
            http: &self.http,
            base: self.gateway.url(),
        }
    }
}

fn worker_id(i: usize) -> String {
    format!("gwb-worker-{i}")
}

/// The HTTP calls of one gateway.
struct Api<'a> {
    http: &'a reqwest::Client,
    base: String,
}

impl Api<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/v1{path}", self.base)
    }

    /// A multipart upload with `purpose`, built by hand (what the SDKs send).
    async fn upload_raw(&self, text: &str, purpose: &str) -> reqwest::Response {
        let boundary = BOUNDARY;
        let body = multipart(text, purpose);
        self.http
            .post(self.url("/files"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("upload")
    }

    async fn upload(&self, text: &str) -> String {
        let (status, body) = read(self.upload_raw(text, "batch").await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["object"], "file");
        assert_eq!(body["bytes"], text.len());
        assert_eq!(body["purpose"], "batch");
        body["id"].as_str().expect("file id").to_owned()
    }

    async fn create_raw(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/batches"))
            .json(&body)
            .send()
            .await;
        read(response.expect("create")).await
    }

    async fn create(&self, file: &str) -> Value {
        let (status, body) = self
            .create_raw(
                json!({"input_file_id": file, "endpoint": "/v1/chat/completions",
                "completion_window": "24h", "metadata": {"test": "yes"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["object"], "batch");
        body
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        read(self.http.get(self.url(path)).send().await.expect("get")).await
    }

    async fn batch(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/batches/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls until the batch is in `status`; fails the test on another final status.
    async fn wait_for(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let batch = self.batch(id).await;
            if batch["status"] == status {
                return batch;
            }
            let now = batch["status"].as_str().unwrap_or_default().to_owned();
            assert!(
                !["completed", "failed", "cancelled", "expired"].contains(&now.as_str()),
                "batch ended {now}, not {status}: {batch}"
            );
            assert!(Instant::now() < deadline, "batch never {status}: {batch}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn content(&self, file: &str) -> Vec<OutputLine> {
        let response = self
            .http
            .get(self.url(&format!("/files/{file}/content")))
            .send()
            .await
            .expect("content");
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("text");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("an output line"))
            .collect()
    }
}

const BOUNDARY: &str = "llm-router-test-boundary";

/// The multipart body of an upload of `text`.
fn multipart(text: &str, purpose: &str) -> String {
    let boundary = BOUNDARY;
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{text}\r\n--{boundary}--\r\n"
    )
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `n` lines, spread over the routes: a route, another route, and a pinned `route/model`.
fn input(n: usize) -> String {
    let models = ["openai", "claude", "openai/gpt-4.1-mini"];
    (0..n)
        .map(|i| {
            json!({"custom_id": format!("req-{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": models[i % 3], "messages": [{"role": "user", "content": format!("line {i}")}]}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every custom_id of `n` exactly once across both files.
fn assert_each_once(ok: &[OutputLine], failed: &[OutputLine], n: usize) {
    let mut seen = HashSet::new();
    for line in ok.iter().chain(failed) {
        assert!(
            seen.insert(line.custom_id.clone()),
            "{} twice",
            line.custom_id
        );
    }
    let want: HashSet<String> = (0..n).map(|i| format!("req-{i}")).collect();
    assert_eq!(seen, want);
    assert!(ok.iter().all(|l| !l.is_error()) && failed.iter().all(OutputLine::is_error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_runs_to_completed_and_a_second_replica_serves_it() {
    // A quarter of provider calls are refused with 400: those lines land in the error file.
    let sim = SimConfig {
        error_rates: vec![(400, 0.25)],
        seed: 11,
        ..SimConfig::default()
    };
    let s = Stack::new(sim, &[], 2).await;
    let other = s.replica().await;
    let b = Api {
        http: &s.http,
        base: other.url(),
    };
    let a = s.api();
    let n = 40;
    let file = a.upload(&input(n)).await;
    let (_, meta) = b.get(&format!("/files/{file}")).await;
    assert_eq!(meta["id"], file.as_str(), "the replica sees the upload");
    let created = a.create(&file).await;
    assert_eq!(created["status"], "in_progress", "{created}");
    assert_eq!(created["request_counts"]["total"], n);
    assert_eq!(created["input_file_id"], file.as_str());
    assert_eq!(created["metadata"]["test"], "yes");
    let id = created["id"].as_str().expect("id").to_owned();

    // Polled on the replica: it collects too (both replicas share the queue), and answers.
    let done = b.wait_for(&id, "completed").await;
    let counts = &done["request_counts"];
    assert_eq!(counts["total"], n, "{done}");
    let completed = counts["completed"].as_u64().expect("completed");
    let failed = counts["failed"].as_u64().expect("failed");
    assert_eq!(completed + failed, n as u64, "{done}");
    assert!(failed > 0 && completed > 0, "{done}");
    assert!(done["completed_at"].as_i64() >= done["created_at"].as_i64());

    let out_id = done["output_file_id"].as_str().expect("output file");
    let err_id = done["error_file_id"].as_str().expect("error file");
    let ok = a.content(out_id).await;
    let errors = a.content(err_id).await;
    assert_each_once(&ok, &errors, n);
    assert_eq!(ok.len() as u64, completed);
    for line in &ok {
        let response = line.response.as_ref().expect("response");
        assert_eq!(response.status_code, 200);
        assert_eq!(response.body["object"], "chat.completion", "{:?}", line);
        let n: usize = line.custom_id["req-".len()..].parse().expect("number");
        let content = response.body["choices"][0]["message"]["content"].as_str();
        assert!(
            content.is_some_and(|c| c.contains(&format!("line {n}"))),
            "{content:?}"
        );
    }
    for line in &errors {
        let response = line.response.as_ref().expect("an HTTP answer");
        assert_eq!(response.status_code, 400, "{line:?}");
    }
    // The replica reads the same files, and their metadata.
    let ok_b = b.content(out_id).await;
    assert_eq!(
        ok.iter().map(|l| &l.id).collect::<Vec<_>>(),
        ok_b.iter().map(|l| &l.id).collect::<Vec<_>>()
    );
    let (status, meta) = b.get(&format!("/files/{out_id}")).await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta["purpose"], "batch_output");
    assert!(meta["bytes"].as_u64() > Some(0));

    let (_, list) = b.get("/batches?limit=10").await;
    assert_eq!(list["data"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["has_more"], false);
    other.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_keeps_finished_lines_and_reports_the_rest_as_cancelled() {
    // One slow slot at the only claude endpoint: the job is still running when cancelled.
    let s = Stack::new(stack::slow_sim(100), &stack::ONE_CLAUDE_SLOT, 1).await;
    let a = s.api();
    let n = 60;
    let text = (0..n)
        .map(|i| {
            json!({"custom_id": format!("req-{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "claude", "messages": [{"role": "user", "content": "x"}]}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = a.upload(&text).await;
    let id = a.create(&file).await["id"].as_str().expect("id").to_owned();
    // Some lines finish first (progress is recorded every 2 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.batch(&id).await["request_counts"]["completed"].as_u64() < Some(3) {
        assert!(Instant::now() < deadline, "no lines finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = s
        .http
        .post(a.url(&format!("/batches/{id}/cancel")))
        .send()
        .await;
    let (status, cancelling) = read(response.expect("cancel")).await;
    assert_eq!(status, StatusCode::OK, "{cancelling}");
    assert_eq!(cancelling["status"], "cancelling", "{cancelling}");
    assert!(cancelling["cancelling_at"].is_i64());

    let done = a.wait_for(&id, "cancelled").await;
    assert!(done["cancelled_at"].is_i64(), "{done}");
    let ok = match done["output_file_id"].as_str() {
        Some(f) => a.content(f).await,
        None => Vec::new(),
    };
    let errors = a
        .content(done["error_file_id"].as_str().expect("error file"))
        .await;
    assert_each_once(&ok, &errors, n);
    assert!(!ok.is_empty(), "lines finished before the cancel are kept");
    assert!(
        errors.len() >= 20,
        "queued lines were dropped: {}",
        errors.len()
    );
    assert!(errors.iter().all(|l| l
        .error
        .as_ref()
        .is_some_and(|e| e.code == "batch_cancelled")));
    // A finished batch cannot be cancelled again… but asking again is no error.
    let (status, again) = read(
        s.http
            .post(a.url(&format!("/batches/{id}/cancel")))
            .send()
            .await
            .expect("cancel"),
    )
    .await;
    assert_eq!(
        (status, again["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_openai_shaped() {
    let s = Stack::new(SimConfig::default(), &[], 0).await;
    let a = s.api();
    let code = |body: &Value| {
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let (status, body) = a.get("/files/file-0123456789abcdef0123456789abcdef").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "file_not_found".into())
    );
    let (status, body) = a.get("/files/nonsense/content").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = a
        .get("/batches/batch_0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "batch_not_found".into())
    );
    let cancel = s
        .http
        .post(a.url("/batches/batch_x/cancel"))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);

    let (status, body) = read(a.upload_raw("{}", "fine-tune").await).await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("purpose"))
    );

    let file = a.upload(&input(3)).await;
    for (field, value) in [("endpoint", "/v1/completions"), ("completion_window", "1h")] {
        let mut request = json!({"input_file_id": file, "endpoint": "/v1/chat/completions",
            "completion_window": "24h"});
        request[field] = json!(value);
        let (status, body) = a.create_raw(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["param"], field, "{body}");
    }
    let (status, body) = a
        .create_raw(
            json!({"input_file_id": "file-0123456789abcdef0123456789abcdef",
            "endpoint": "/v1/chat/completions", "completion_window": "24h"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "file_not_found".into())
    );

    // Bad lines: the batch is created as failed, naming every bad line; nothing is queued.
    let good = input(1);
    let bad = [
        good.clone(),
        good.replace("req-0", "req-1")
            .replace("\"openai\"", "\"gpt-4o\""),
        "not json".to_owned(),
        good.replace("req-0", "req-3")
            .replace("\"model\"", "\"modelx\""),
    ]
    .join("\n");
    let file = a.upload(&bad).await;
    let failed = a.create(&file).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let lines: Vec<u64> = failed["errors"]["data"]
        .as_array()
        .expect("errors.data")
        .iter()
        .filter_map(|e| e["line"].as_u64())
        .collect();
    assert_eq!(lines, [2, 3, 4], "{failed}");
    assert!(failed["failed_at"].is_i64());
    let id = failed["id"].as_str().expect("id");
    assert_eq!(a.batch(id).await["status"], "failed");
    let cancel = s
        .http
        .post(a.url(&format!("/batches/{id}/cancel")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), StatusCode::CONFLICT);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_outlives_the_gateway_that_created_it() {
    // No workers yet: the batch waits in the broker while its gateway goes away.
    let mut s = Stack::new(SimConfig::default(), &[], 0).await;
    let n = 20;
    let file = s.api().upload(&input(n)).await;
    let id = s.api().create(&file).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let second = stack::start_gateway(s.broker.grpc_address(), &s.config, |_| {}).await;
    let first = std::mem::replace(&mut s.gateway, second);
    first.stop().await;
    s.wait_batch_api(&s.gateway).await;
    for i in 0..2 {
        let worker = stack::start_worker(&s.broker.grpc_address(), &s.config, &worker_id(i)).await;
        s.workers.push(worker);
    }
    let done = s.api().wait_for(&id, "completed").await;
    assert_eq!(done["request_counts"]["completed"], n, "{done}");
    let ok = s
        .api()
        .content(done["output_file_id"].as_str().expect("output"))
        .await;
    assert_each_once(&ok, &[], n);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_have_their_own_cap() {
    let s = Stack::new(SimConfig::default(), &[], 0).await;
    let small = s.replica_with(|o| o.max_upload = 4096).await;
    let api = Api {
        http: &s.http,
        base: small.url(),
    };
    let big = input(200);
    assert!(big.len() > 4096 && big.len() < 4 * 1024 * 1024);
    let (status, body) = read(api.upload_raw(&big, "batch").await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "file_too_large");
    assert_eq!(body["error"]["message"], "the request body is larger than the Batch API's cap of 4096 bytes: split the file into smaller batches, or raise the cap with --max-upload");
    // The default cap (200 MiB) takes more than a chat body may hold (4 MiB).
    let large = input(40_000);
    assert!(large.len() > 4 * 1024 * 1024, "{}", large.len());
    let id = s.api().upload(&large).await;
    let response = s
        .http
        .get(s.api().url(&format!("/files/{id}/content")))
        .send()
        .await;
    let bytes = response.expect("content").bytes().await.expect("bytes");
    assert_eq!(bytes.len(), large.len());
    assert!(bytes == large.as_bytes(), "content differs from the upload");
    small.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_cap_takes_a_body_at_it_and_refuses_one_byte_more() {
    let s = Stack::new(SimConfig::default(), &[], 0).await;
    let text = input(3);
    let cap = multipart(&text, "batch").len();
    let at = s.replica_with(|o| o.max_upload = cap).await;
    let over = s.replica_with(|o| o.max_upload = cap - 1).await;
    let api = |g: &RunningGateway| Api {
        http: &s.http,
        base: g.url(),
    };
    api(&at).upload(&text).await;
    let (status, body) = read(api(&over).upload_raw(&text, "batch").await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(
        body["error"]["message"],
        format!("the request body is larger than the Batch API's cap of {} bytes: split the file into smaller batches, or raise the cap with --max-upload", cap - 1)
    );
    at.stop().await;
    over.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_limits_take_a_file_at_them_and_name_the_limit_above() {
    let s = Stack::new(SimConfig::default(), &[], 0).await;
    let three = input(3);
    let max_bytes = input(4).len() as u64;
    // Blank lines are no requests: a file of three of them, padded to `len` bytes.
    let padded = |len: u64| {
        format!(
            "{three}{}",
            "\n".repeat((len - three.len() as u64) as usize)
        )
    };
    let small = s
        .replica_with(|o| {
            o.batch_limits.max_lines = 3;
            o.batch_limits.max_file_bytes = max_bytes;
        })
        .await;
    let a = Api {
        http: &s.http,
        base: small.url(),
    };
    let lines_error = "the file has 4 requests; a batch takes at most 3: split it into smaller files, or raise the limit with --batch-max-lines";
    let bytes_error = format!("the file is {} bytes; a batch input file may be at most {max_bytes} bytes: split it into smaller files, or raise the limit with --batch-max-file-bytes", max_bytes + 1);

    // At the limits: uploaded and queued.
    let file = a.upload(&padded(max_bytes)).await;
    assert_eq!(a.create(&file).await["status"], "in_progress");
    // One line more, or one byte more, is refused at upload…
    let (status, body) = read(a.upload_raw(&input(4), "batch").await).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some(lines_error)),
        "{body}"
    );
    let (status, body) = read(a.upload_raw(&padded(max_bytes + 1), "batch").await).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some(bytes_error.as_str())),
        "{body}"
    );
    // …and at create, for files another replica (with the default limits) took.
    let request = |file: &str| json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let four = s.api().upload(&input(4)).await;
    let (status, body) = a.create_raw(request(&four)).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some(lines_error)),
        "{body}"
    );
    let big = s.api().upload(&padded(max_bytes + 1)).await;
    let (status, body) = a.create_raw(request(&big)).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some(bytes_error.as_str())),
        "{body}"
    );
    small.stop().await;
    s.stop().await;
}

/// Stores `body` on `channel` as anyone on the broker could.
async fn forge(broker: &str, channel: &str, body: &[u8]) {
    use llm_router::kubemq::kubemq_client::KubemqClient;
    let mut raw = KubemqClient::connect(format!("http://{broker}"))
        .await
        .expect("connect");
    let sent = raw
        .send_event(llm_router::kubemq::Event {
            client_id: "forger".into(),
            channel: channel.into(),
            body: body.to_vec(),
            store: true,
            ..llm_router::kubemq::Event::default()
        })
        .await
        .expect("send")
        .into_inner();
    assert!(sent.sent, "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_records_are_skipped_and_the_gateway_keeps_answering() {
    let s = Stack::new(SimConfig::default(), &[], 0).await;
    let broker = s.broker.grpc_address();
    let a = s.api();
    let file_id = "file-0123456789abcdef0123456789abcdef";
    let batch_id = "batch_0123456789abcdef0123456789abcdef";
    let max = u64::MAX;
    let files = [
        json!({"type": "created", "id": file_id, "bytes": 10, "created_at": 1, "filename": "x", "purpose": "batch", "chunks": max}).to_string(),
        json!({"type": "created", "id": file_id, "bytes": max, "created_at": 1, "filename": "x", "purpose": "batch", "chunks": 1}).to_string(),
        json!({"type": "created", "id": "file-../../etc", "bytes": 0, "created_at": 1, "filename": "x", "purpose": "batch", "chunks": 0}).to_string(),
        json!({"type": "created", "id": 7, "bytes": "ten"}).to_string(),
        r#"{"type":"created","id":"file-01234"#.to_owned(),
    ];
    for body in &files {
        forge(&broker, "llm-router.files", body.as_bytes()).await;
    }
    let batches = [
        json!({"type": "created", "batch": batch_id, "endpoint": "/v1/chat/completions", "input_file_id": file_id,
            "completion_window": "24h", "created_at": i64::MAX, "metadata": null}).to_string(),
        json!({"type": "finished", "batch": "batch_ffffffffffffffffffffffffffffffff", "at": 1, "ok": max, "failed": max}).to_string(),
        json!({"type": "failed", "batch": batch_id, "at": "soon", "errors": "many"}).to_string(),
        r#"{"type":"created","batch":"batch_0"#.to_owned(),
    ];
    for body in &batches {
        forge(&broker, "llm-router.batches", body.as_bytes()).await;
    }
    let jobs = [
        json!({"type": "submitted", "job": batch_id, "route": "openai", "routes": {}, "total": max,
            "created_at": 1, "input": "x", "max_attempts": 5})
        .to_string(),
        json!({"type": "submitted", "job": batch_id, "route": "openai", "routes": {}, "total": 3,
            "created_at": 1, "input": "x", "max_attempts": 5})
        .to_string(),
        json!({"type": "collected", "job": batch_id, "ok": max, "failed": max, "at": 1})
            .to_string(),
        vec![0xff, 0xfe, 0x00].into_iter().map(char::from).collect(),
    ];
    for body in &jobs {
        forge(&broker, "llm-router.batch.jobs", body.as_bytes()).await;
    }
    forge(
        &broker,
        "llm-router.batch.batch_0123456789abcdef0123456789abcdef.output",
        b"{\"custom_id\":",
    )
    .await;

    // The forged file is unknown; the forged batch answers without overflowing.
    let (status, body) = a.get(&format!("/files/{file_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = a.get(&format!("/files/{file_id}/content")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, list) = a.get("/files").await;
    assert_eq!(
        (status, list["data"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "{list}"
    );
    let forged = a.batch(batch_id).await;
    assert_eq!(forged["request_counts"]["completed"], max, "{forged}");
    assert_eq!(forged["request_counts"]["total"], 3, "{forged}");
    assert_eq!(forged["expires_at"], i64::MAX, "{forged}");
    let (status, _) = a
        .get("/batches/batch_ffffffffffffffffffffffffffffffff")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = a
        .create_raw(json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // And real work goes on.
    let file = a.upload(&input(3)).await;
    let created = a.create(&file).await;
    assert_eq!(created["status"], "in_progress", "{created}");
    let id = created["id"].as_str().expect("id");
    assert_eq!(a.batch(id).await["request_counts"]["total"], 3);
    let (status, list) = a.get("/batches").await;
    assert_eq!(
        (status, list["data"][0]["id"].as_str()),
        (StatusCode::OK, Some(id)),
        "{list}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_views_follow_the_histories_across_a_broker_restart() {
    let mut s = Stack::new(SimConfig::default(), &[], 0).await;
    if s.broker.embedded().is_none() {
        // The real server's restart wipes its store; nothing to follow across it.
        s.stop().await;
        return;
    }
    let first = s.api().upload(&input(2)).await;
    let before = s.api().create(&first).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.broker.restart().await;
    s.wait_batch_api(&s.gateway).await;
    // An upload and a create return once the gateway's own views hold them: they would
    // time out if the subscriptions had not come back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let (status, body) = read(s.api().upload_raw(&input(2), "batch").await).await;
        if status == StatusCode::OK {
            break body["id"].as_str().expect("file id").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no upload after the restart: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let after = s.api().create(&second).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for id in [&before, &after] {
        assert_eq!(s.api().batch(id).await["status"], "in_progress");
    }
    let (_, list) = s.api().get("/batches").await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids, [after.as_str(), before.as_str()], "{list}");
    // A replica started now reads both from the restarted broker's store.
    let replica = s.replica().await;
    let b = Api {
        http: &s.http,
        base: replica.url(),
    };
    assert_eq!(b.batch(&before).await["request_counts"]["total"], 2);
    replica.stop().await;
    s.stop().await;
}

/// One batch file of model names: two every path takes (a model a route serves, and a
/// `route/model` pin) and two no route serves.
fn model_names_file() -> String {
    let models = [
        "gpt-4o-mini",
        "openai/gpt-4.1-mini",
        "nonsense-model",
        "gpt-4o",
    ];
    models
        .iter()
        .enumerate()
        .map(|(i, model)| {
            json!({"custom_id": format!("m-{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `llm-router batch submit` (the real binary) of `file` on the stack's broker.
fn cli_submit(s: &Stack, file: &std::path::Path, dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_llm-router"))
        .current_dir(dir)
        .env_remove("LLM_ROUTER_CONFIG_DIR")
        .args(["batch", "submit", "--route", "openai", "--broker"])
        .arg(s.broker.grpc_address())
        .arg(file)
        .output()
        .expect("run batch submit")
}

/// A JSON-mode query with `body` on the `openai` route's channel: (executed, error text,
/// the answer's endpoint).
async fn json_query(s: &Stack, body: Value) -> (bool, String, Value) {
    use llm_router::kubemq::client::{Client, ClientOptions};
    use llm_router::kubemq::{request::RequestType, Request};
    let options = ClientOptions::new(s.broker.grpc_address(), "model-names-test");
    let client = Client::connect(options).await.expect("client");
    let request = Request {
        request_type_data: RequestType::Query as i32,
        client_id: client.client_id().to_owned(),
        channel: "openai_requests".to_owned(),
        body: body.to_string().into_bytes(),
        timeout: 10_000,
        tags: [("content-type".to_owned(), "application/json".to_owned())].into(),
        ..Request::default()
    };
    let response = client.send_request(request).await.expect("an answer");
    let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (
        response.executed,
        response.error,
        answer["llm_router"]["endpoint"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_names_read_the_same_on_every_path() {
    let s = Stack::new(SimConfig::default(), &[], 1).await;
    let names = llm_router::config::models::ModelNames::new(&s.config);
    let unknown = |model: &str| names.resolve(model, None).err().map(|e| e.to_string());
    let (nonsense, gpt_4o) = (unknown("nonsense-model"), unknown("gpt-4o"));
    let (nonsense, gpt_4o) = (nonsense.expect("unknown"), gpt_4o.expect("unknown"));
    assert!(
        nonsense.contains("gpt-4o-mini"),
        "the message lists models: {nonsense}"
    );
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("models.jsonl");
    std::fs::write(&file, model_names_file()).expect("write file");

    // The CLI refuses the file, naming lines 3 and 4 with the shared message.
    let out = cli_submit(&s, &file, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "line 3 (custom_id \"m-2\"): body.model: {nonsense}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("line 4 (custom_id \"m-3\"): body.model: {gpt_4o}")),
        "{stderr}"
    );

    // The Batch API fails the batch, naming the same lines with the same message.
    let a = s.api();
    let batch = a.create(&a.upload(&model_names_file()).await).await;
    let failed = a
        .wait_for(batch["id"].as_str().expect("id"), "failed")
        .await;
    let problems: Vec<(u64, String)> = failed["errors"]["data"]
        .as_array()
        .expect("errors.data")
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap_or(0),
                e["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want = [
        (3, format!("body.model: {nonsense}")),
        (4, format!("body.model: {gpt_4o}")),
    ];
    assert_eq!(problems, want);

    // The gateway and a JSON-mode query: the same text for the same name.
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let response = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(&chat("nonsense-model"));
    let (status, body) = read(response.send().await.expect("chat")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["message"], nonsense.as_str());
    let (executed, error, _) = json_query(&s, chat("nonsense-model")).await;
    assert!(!executed);
    assert_eq!(error, nonsense);

    // The names every path takes, pinned: gpt-4.1-mini only on the failover endpoint.
    for path in ["gateway", "query"] {
        for (model, endpoint) in [
            ("gpt-4o-mini", "openai"),
            ("openai/gpt-4.1-mini", "openai-backup"),
        ] {
            let answered = if path == "gateway" {
                let response = s
                    .http
                    .post(s.url("/v1/chat/completions"))
                    .json(&chat(model));
                let (status, body) = read(response.send().await.expect("chat")).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body["llm_router"]["endpoint"].clone()
            } else {
                let (executed, error, answered) = json_query(&s, chat(model)).await;
                assert!(executed, "{error}");
                answered
            };
            assert_eq!(answered, endpoint, "{path} {model}");
        }
    }
    let good: String = model_names_file()
        .lines()
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, &good).expect("write file");
    let out = cli_submit(&s, &file, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let batch = a.create(&a.upload(&good).await).await;
    let done = a
        .wait_for(batch["id"].as_str().expect("id"), "completed")
        .await;
    let output = a
        .content(done["output_file_id"].as_str().expect("output file"))
        .await;
    let mut endpoints: Vec<String> = output
        .iter()
        .map(|l| {
            let body = l
                .response
                .as_ref()
                .map(|r| r.body.clone())
                .unwrap_or_default();
            body["llm_router"]["endpoint"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    endpoints.sort();
    assert_eq!(
        endpoints,
        ["openai", "openai-backup"],
        "batch lines honour their pins"
    );
    s.stop().await;
}
