//! Black-box checks of the structured logs: the real binary with `--log-format json`, a
//! request carrying a distinctive prompt and fake keys in the environment. Every stderr
//! line must be one JSON object, the ids and names must be fields, and neither the prompt
//! (nor the sim's echo of it) nor any key may appear anywhere in the log.
#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step fails the test"
)]

mod common;

use common::real_server::RealServer;
use common::BrokerKind;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROMPT: &str = "zebra-quokka-7f3a9 please summarise my medical record";
const OPENAI_KEY: &str = "sk-logs-test-FAKE-openai-91c2";
const ANTHROPIC_KEY: &str = "sk-ant-logs-test-FAKE-5d7e";
const GATEWAY_KEY: &str = "gw-logs-test-FAKE-key-3b8f";

/// Kills a child process when the test ends, however it ends.
/// A child process, killed on drop, and the real server it ran on, if any (stopped
/// when dropped, after the child).
struct Guard(Child, #[allow(dead_code)] Option<RealServer>);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary in `dir` with JSON logs, debug for our own code and the fake keys set.
fn llm_router(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-router"));
    cmd.current_dir(dir)
        .arg("--log-format")
        .arg("json")
        .env("RUST_LOG", "llm_router=debug,info")
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        .env("LLM_ROUTER_GATEWAY_KEYS", GATEWAY_KEY)
        .env_remove("LLM_ROUTER_CONFIG_DIR");
    cmd
}

/// Starts `up` on free ports with `extra` arguments; returns it and its gateway's URL.
/// On the real server (`LLM_ROUTER_TEST_BROKER=kubemq`), `up --broker` joins it; the
/// server lives as long as the returned guard.
fn start_up(dir: &Path, extra: &[&str], env: &[(&str, String)]) -> (Guard, String) {
    let log = std::fs::File::create(dir.join("up.log")).expect("log file");
    let real = (common::broker_kind() == BrokerKind::Kubemq).then(RealServer::start);
    let mut cmd = llm_router(dir);
    cmd.args(["up", "--workers", "2"]);
    match &real {
        Some(real) => cmd.args(["--broker", &real.grpc_address()]),
        None => cmd
            .args(["--grpc-port", "0", "--rest-port", "0", "--data-dir"])
            .arg(dir.join("data")),
    };
    cmd.args(["--metrics-port", "0", "--gateway-listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    let mut child = cmd.spawn().expect("spawn up");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guard(child, real);
    let mut gateway = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        let line = line.trim_start();
        if line.starts_with("gateway") {
            gateway = line.split_whitespace().nth(1).map(str::to_owned);
        }
        if line.starts_with("try") {
            break;
        }
    }
    let log = std::fs::read_to_string(dir.join("up.log")).unwrap_or_default();
    let gateway = gateway.unwrap_or_else(|| panic!("up printed no gateway address; log: {log}"));
    (guard, gateway)
}

/// Sends the prompt to `model` through the gateway; the status and the body.
async fn chat(gateway: &str, key: &str, model: &str) -> (u16, String) {
    send(gateway, key, model, false).await
}

/// Like [`chat`]; `stream` asks for server-sent events (the body is all of them).
async fn send(gateway: &str, key: &str, model: &str, stream: bool) -> (u16, String) {
    let body = json!({
        "model": model,
        "stream": stream,
        "messages": [{ "role": "user", "content": PROMPT }],
    });
    let response = reqwest::Client::new()
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn chat_status(gateway: &str, key: &str, model: &str, want: u16) {
    let (status, body) = chat(gateway, key, model).await;
    assert_eq!(status, want, "{model}: {body}");
}

/// Stops `up` with SIGTERM (so shutdown lines are logged too) and returns every log line
/// parsed, failing on any line that is not one JSON object.
fn stop_and_read(up: Guard, dir: &Path) -> Vec<serde_json::Map<String, Value>> {
    let log = stop(up, dir);
    assert_no_secrets(&log);
    parse(&log)
}

/// Stops `up` with SIGTERM and returns its whole log.
fn stop(mut up: Guard, dir: &Path) -> String {
    let pid = up.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.0.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read_to_string(dir.join("up.log")).expect("read log")
}

/// Every log line as a JSON object, failing on any line that is not one.
fn parse(log: &str) -> Vec<serde_json::Map<String, Value>> {
    let lines: Vec<_> = log
        .lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => map,
            _ => panic!("log line is not one JSON object: {line:?}"),
        })
        .collect();
    assert!(lines.len() >= 5, "too few log lines: {log}");
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line.contains_key(field), "no {field} in {line:?}");
        }
    }
    lines
}

fn assert_no_secrets(log: &str) {
    for (what, text) in [
        ("prompt", PROMPT),
        ("distinctive part of the prompt", "zebra-quokka"),
    ] {
        assert!(!log.contains(text), "the {what} appears in the log:\n{log}");
    }
    assert_no_keys(log);
}

fn assert_no_keys(log: &str) {
    for (what, text) in [
        ("OpenAI key", OPENAI_KEY),
        ("Anthropic key", ANTHROPIC_KEY),
        ("gateway key", GATEWAY_KEY),
        ("tail of a key", "FAKE"),
    ] {
        assert!(!log.contains(text), "the {what} appears in the log:\n{log}");
    }
}

/// The values of `field` in every line, at the top level or in the enclosing span.
fn with_field<'a>(lines: &'a [serde_json::Map<String, Value>], field: &str) -> Vec<&'a Value> {
    lines.iter().filter_map(|l| field_of(l, field)).collect()
}

fn field_of<'a>(line: &'a serde_json::Map<String, Value>, field: &str) -> Option<&'a Value> {
    line.get(field)
        .or_else(|| line.get("span").and_then(|s| s.get(field)))
}

/// Every "answered" line (one per request a worker finishes) names its request, route,
/// endpoint and attempts.
fn assert_answered_lines_complete(lines: &[serde_json::Map<String, Value>]) {
    for line in lines
        .iter()
        .filter(|l| l.get("message") == Some(&json!("answered")))
    {
        for field in ["request_id", "route", "endpoint", "attempts"] {
            assert!(field_of(line, field).is_some(), "no {field} in {line:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_sim_json_logs_carry_ids_and_never_prompts_or_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let (up, gateway) = start_up(dir.path(), &["--sim"], &[]);
    chat_status(&gateway, GATEWAY_KEY, "openai", 200).await;
    chat_status(&gateway, GATEWAY_KEY, "claude", 200).await;
    let (status, events) = send(&gateway, GATEWAY_KEY, "openai", true).await;
    assert_eq!(status, 200, "{events}");
    assert!(
        events.contains("zebra-quokka"),
        "the sim echoes the prompt: {events}"
    );
    // Refused requests are logged with their request id.
    chat_status(&gateway, GATEWAY_KEY, "no-such-model", 404).await;
    chat_status(&gateway, "not-the-key", "openai", 401).await;

    let lines = stop_and_read(up, dir.path());
    let routes = with_field(&lines, "route");
    assert!(
        routes.contains(&&json!("openai")),
        "no route field: {lines:?}"
    );
    let ids = with_field(&lines, "request_id");
    assert!(
        ids.iter()
            .any(|id| id.as_str().is_some_and(|s| s.len() >= 16)),
        "no request_id field: {lines:?}"
    );
}

/// `--log-prompts` lets the prompt into debug lines of its own (with the request's id and
/// route), and nowhere else; keys stay out. Without the flag the tests above see debug
/// logging on and the prompt nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_prompts_logs_the_prompt_at_debug_level_only() {
    let dir = tempfile::tempdir().expect("dir");
    let (up, gateway) = start_up(dir.path(), &["--sim", "--log-prompts"], &[]);
    chat_status(&gateway, GATEWAY_KEY, "openai", 200).await;
    let (status, events) = send(&gateway, GATEWAY_KEY, "claude", true).await;
    assert_eq!(status, 200, "{events}");

    let log = stop(up, dir.path());
    assert_no_keys(&log);
    let lines = parse(&log);
    let with_prompt: Vec<_> = lines
        .iter()
        .filter(|l| {
            Value::Object((*l).clone())
                .to_string()
                .contains("zebra-quokka")
        })
        .collect();
    assert_eq!(
        with_prompt.len(),
        2,
        "one line per request: {with_prompt:?}"
    );
    for line in with_prompt {
        assert_eq!(line.get("level"), Some(&json!("DEBUG")), "{line:?}");
        assert_eq!(line.get("prompt"), Some(&json!(PROMPT)), "{line:?}");
        assert!(field_of(line, "request_id").is_some(), "{line:?}");
        assert!(field_of(line, "route").is_some(), "{line:?}");
    }
}

/// Failures are where error text (provider bodies, retries, circuit changes) could carry a
/// prompt or a key: the claude route's endpoint refuses connections, the openai route's
/// answers from a real sim that sees the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoints_log_endpoint_fields_and_never_prompts_or_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let sim_port = free_port();
    let _sim = Guard(
        llm_router(dir.path())
            .args(["sim-provider", "--listen", &format!("127.0.0.1:{sim_port}")])
            .args(["--error-rate", "503=0.2", "--seed", "3"])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sim"),
        None,
    );
    let sim = format!("http://127.0.0.1:{sim_port}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let env = [
        ("LLM_ROUTER__ENDPOINTS__OPENAI__BASE_URL", sim.clone()),
        ("LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__BASE_URL", sim),
        ("LLM_ROUTER__ENDPOINTS__ANTHROPIC__BASE_URL", dead),
        ("LLM_ROUTER__ROUTES__CLAUDE__TIMEOUT", "3s".to_owned()),
        (
            "LLM_ROUTER__CIRCUIT_BREAKER__FAILURE_THRESHOLD",
            "2".to_owned(),
        ),
    ];
    let (up, gateway) = start_up(dir.path(), &[], &env);
    for _ in 0..4 {
        chat_status(&gateway, GATEWAY_KEY, "openai", 200).await;
    }
    let (status, body) = chat(&gateway, GATEWAY_KEY, "claude").await;
    assert!(status >= 500, "claude answered {status}: {body}");

    let lines = stop_and_read(up, dir.path());
    let endpoints = with_field(&lines, "endpoint");
    assert!(
        endpoints.contains(&&json!("anthropic")),
        "no endpoint field for the failing endpoint: {lines:?}"
    );
    assert!(
        !with_field(&lines, "request_id").is_empty(),
        "the failed request has no request_id: {lines:?}"
    );
    assert_answered_lines_complete(&lines);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
