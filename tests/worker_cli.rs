//! Black-box checks of the binary: `worker` refuses to start without keys, `up --sim`
//! prints where it listens and answers `ask`, and SIGTERM stops it cleanly.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::real_server::RealServer;
use common::BrokerKind;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The binary, run in an empty directory (no `.env`, no `config/`) without provider keys.
fn llm_router(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-router"));
    cmd.current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("LLM_ROUTER_CONFIG_DIR")
        .env("RUST_LOG", "warn");
    cmd
}

fn ask(dir: &std::path::Path, grpc: u16, args: &[&str]) -> Output {
    llm_router(dir)
        .arg("ask")
        .args(["--broker", &format!("127.0.0.1:{grpc}")])
        .args(args)
        .output()
        .expect("run ask")
}

#[test]
fn worker_without_keys_refuses_to_start_naming_the_variable() {
    let dir = tempfile::tempdir().expect("dir");
    let out = llm_router(dir.path())
        .args(["worker", "--broker", "127.0.0.1:9", "--metrics-port", "0"])
        .output()
        .expect("run worker");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
    assert!(stderr.contains("--sim"), "{stderr}");
}

#[test]
fn a_taken_port_is_named_once_with_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = llm_router(dir.path())
        .args(["broker", "--grpc-port", &port.to_string()])
        .args(["--rest-port", &free_port().to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run broker");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pick another port with --grpc-port"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("in use").count(),
        1,
        "the cause is said once: {stderr}"
    );
}

/// Reads `up`'s stdout until its ready block is complete.
fn read_ready_block(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut block = String::new();
    for line in lines.by_ref() {
        let line = line.expect("read stdout");
        block.push_str(&line);
        block.push('\n');
        if line.trim_start().starts_with("try") {
            break;
        }
    }
    block
}

/// The port of the address that follows `label` in `up`'s ready block.
fn port_after(block: &str, label: &str) -> Option<u16> {
    let line = block.lines().find(|l| l.trim_start().starts_with(label))?;
    let addr = line.split_whitespace().find(|w| w.contains("127.0.0.1:"))?;
    addr.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

#[test]
fn up_with_sim_serves_ask_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let log = std::fs::File::create(dir.path().join("up.log")).expect("log file");
    let started = Instant::now();
    // Port 0 everywhere: `up` reports the ports it got, so no other process can take
    // them between picking and binding.
    // On the real server, `up --broker` runs the same workers and gateway against it.
    let real = (common::broker_kind() == BrokerKind::Kubemq).then(RealServer::start);
    let mut up = llm_router(dir.path());
    up.args(["up", "--workers", "2"]).args([
        "--metrics-port",
        "0",
        "--gateway-listen",
        "127.0.0.1:0",
    ]);
    match &real {
        Some(real) => {
            up.args(["--broker", &real.grpc_address()]);
        }
        None => {
            up.args(["--grpc-port", "0", "--rest-port", "0", "--data-dir"])
                .arg(dir.path().join("data"));
        }
    }
    let mut child = up
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn up");
    let block = read_ready_block(&mut child);
    let stderr = std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
    assert!(started.elapsed() < Duration::from_secs(10), "slow start");
    let grpc = match &real {
        Some(real) => {
            assert!(
                block.contains(&format!("external KubeMQ at {}", real.grpc_address())),
                "{block}"
            );
            real.grpc_port
        }
        None => {
            let grpc = port_after(&block, "gRPC")
                .unwrap_or_else(|| panic!("no gRPC address in {block:?}, stderr: {stderr}"));
            assert!(port_after(&block, "REST").is_some(), "{block}");
            grpc
        }
    };
    assert!(block.contains("simulated provider"), "{block}");
    assert!(block.contains("no provider keys"), "{block}");
    // The block comes once the gateway is connected too: no 503 for a request sent at once.
    let gateway = port_after(&block, "gateway").unwrap_or_else(|| panic!("no gateway in {block}"));
    assert_eq!(status_line(gateway, "/ready"), "HTTP/1.1 200 OK", "{block}");

    let out = ask(dir.path(), grpc, &["openai", "hello from the test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from the test"));

    let out = ask(dir.path(), grpc, &["claude", "--json", "json please"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let completion: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(completion["object"], "chat.completion");

    let out = ask(dir.path(), grpc, &["no-such-route", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown route 'no-such-route'"));

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.map(|s| s.success()).unwrap_or(false));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "up exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The status line of a plain `GET path` to 127.0.0.1:`port`.
fn status_line(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response.lines().next().unwrap_or_default().to_owned()
}

/// Kills a child process when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn standalone_worker_with_sim_answers_and_counts_in_its_own_metrics() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut grpc, rest, metrics) = (free_port(), free_port(), free_port());
    let real = (common::broker_kind() == BrokerKind::Kubemq).then(RealServer::start);
    let _broker = match &real {
        Some(real) => {
            grpc = real.grpc_port;
            None
        }
        None => Some(Guard(
            llm_router(dir.path())
                .args(["broker", "--grpc-port", &grpc.to_string()])
                .args(["--rest-port", &rest.to_string()])
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn broker"),
        )),
    };
    let _worker = Guard(
        llm_router(dir.path())
            .args(["worker", "--sim", "--broker", &format!("127.0.0.1:{grpc}")])
            .args(["--metrics-port", &metrics.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn worker"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = ask(
            dir.path(),
            grpc,
            &["--timeout", "2", "openai", "standalone"],
        );
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("standalone"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let text = rt.block_on(async {
        let url = format!("http://127.0.0.1:{metrics}/metrics");
        reqwest::get(url)
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body")
    });
    assert!(
        text.contains("llm_router_requests_total{route=\"openai\",outcome=\"ok\"} 1"),
        "{text}"
    );
}

/// A stand-in for OpenAI on 127.0.0.1: answers every request with one chat completion and
/// records each request's head and body.
struct Capture {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

const CAPTURED_ANSWER: &str = "answered by the capture server";

impl Capture {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind capture");
        let port = listener.local_addr().expect("addr").port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        // Ends with the test process; it holds nothing that needs a clean stop.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(request) = answer_one(stream) {
                    seen.lock().expect("capture lock").push(request);
                }
            }
        });
        Self { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("capture lock").clone()
    }
}

/// Reads one HTTP request (head, then Content-Length bytes) and answers it.
fn answer_one(mut stream: std::net::TcpStream) -> Option<String> {
    use std::io::{Read, Write};
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut buf).ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
    let body = serde_json::json!({
        "id": "chatcmpl-capture", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": CAPTURED_ANSWER}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).ok()?;
    Some(String::from_utf8_lossy(&data).into_owned())
}

/// A chat request for `model` to the gateway on `port`: (status line, body).
fn chat(port: u16, model: &str) -> (String, serde_json::Value) {
    use std::io::{Read, Write};
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, serde_json::from_str(body).unwrap_or_default())
}

/// The ready block's line for `route` (empty if there is none, which fails the checks).
fn route_line<'a>(block: &'a str, route: &str) -> &'a str {
    let prefix = format!("{route} → ");
    block
        .lines()
        .map(|l| l.trim_start().trim_start_matches("routes").trim_start())
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_default()
}

#[test]
fn up_with_only_an_openai_key_calls_openai_and_simulates_claude() {
    let capture = Capture::start();
    let openai = format!("http://127.0.0.1:{}", capture.port);
    let dir = tempfile::tempdir().expect("dir");
    let log = std::fs::File::create(dir.path().join("up.log")).expect("log file");
    let mut up = llm_router(dir.path());
    up.env("OPENAI_API_KEY", "sk-capture-test")
        .env("LLM_ROUTER__ENDPOINTS__OPENAI__BASE_URL", &openai)
        .env("LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__BASE_URL", &openai)
        .args(["up", "--workers", "1", "--metrics-port", "0"])
        .args(["--gateway-listen", "127.0.0.1:0", "--grpc-port", "0"])
        .args(["--rest-port", "0", "--data-dir"])
        .arg(dir.path().join("data"));
    let child = up
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn up");
    let mut child = Guard(child);
    let block = read_ready_block(&mut child.0);
    let stderr = || std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
    assert!(
        block.contains("provider keys missing (ANTHROPIC_API_KEY)"),
        "{block}{}",
        stderr()
    );
    assert!(
        route_line(&block, "openai").contains(&format!("openai gpt-4o-mini at {openai}")),
        "{block}"
    );
    for simulated in ["claude", "summarize"] {
        let line = route_line(&block, simulated);
        assert!(
            line.contains("simulated provider (set ANTHROPIC_API_KEY"),
            "{block}"
        );
    }
    let gateway = port_after(&block, "gateway").unwrap_or_else(|| panic!("no gateway in {block}"));

    // The openai route, and a model it serves, reach the stand-in with the key.
    for model in ["openai", "gpt-4o-mini"] {
        let (status, body) = chat(gateway, model);
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}\n{}", stderr());
        assert_eq!(
            body["choices"][0]["message"]["content"], CAPTURED_ANSWER,
            "{body}"
        );
        assert_eq!(body["llm_router"]["endpoint"], "openai", "{body}");
    }
    let requests = capture.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[0].starts_with("POST /v1/chat/completions"),
        "{}",
        requests[0]
    );
    let head = requests[0].to_ascii_lowercase();
    assert!(
        head.contains("authorization: bearer sk-capture-test"),
        "{head}"
    );
    assert!(
        requests[0].contains("\"model\":\"gpt-4o-mini\""),
        "{}",
        requests[0]
    );

    // claude answers from the sim, as the block said; the stand-in hears nothing of it.
    let (status, body) = chat(gateway, "claude");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(body["llm_router"]["endpoint"], "anthropic", "{body}");
    assert_ne!(
        body["choices"][0]["message"]["content"], CAPTURED_ANSWER,
        "{body}"
    );
    assert_eq!(capture.requests().len(), 2, "claude must not reach OpenAI");
}
