//! Chaos, with real binaries: a 10,000-line batch job on a provider failing a quarter of
//! its calls (20% 5xx, 5% 429, 2% hangs), three batch workers one of which is SIGKILLed
//! and replaced every few seconds, and the broker SIGKILLed and restarted once mid-job on
//! its data dir and ports. Every custom_id must come out exactly once, nearly all answered.
//!
//! Meanwhile interactive chats go through the gateway on a route of their own, served by
//! two clean sims (primary and backup endpoint) and a worker that is never killed: a query
//! in flight on a SIGKILLed worker is lost by design (queries are not redelivered), and the
//! claim tested here is failover, not that. While the primary sim is down for 30 s a steady
//! client (a chat every 75 ms) must see every chat succeed. That phase starts after the
//! broker is back, since during the broker's own restart no chat can succeed; the broker
//! restart checks instead that the gateway and every worker reconnect by themselves.
#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step fails the test"
)]

mod common;

use common::procs::{self, Proc};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LINES: usize = 10_000;
const BATCH_WORKERS: usize = 3;
/// One batch worker is SIGKILLed and replaced this often.
const KILL_EVERY: Duration = Duration::from_secs(4);
/// The broker is killed once this many lines are collected.
const BROKER_KILL_AT: usize = LINES / 5;
const PRIMARY_DOWN: Duration = Duration::from_secs(30);
const CHAT_EVERY: Duration = Duration::from_millis(75);
/// Provider attempts per line. A line that failed n times waits 1 s doubling to 60 s
/// (jittered 0.5-1x) before attempt n+1, so the job's tail is the sum of those waits: at
/// most 63 s before the 7th attempt, but three more 60 s waits before a 10th. At a 27%
/// failure rate about one line in the job fails 7 times and is dead-lettered, which the
/// checks allow (and check it is exactly that).
const MAX_ATTEMPTS: u32 = 7;
/// The whole job, from submit to the last line collected.
const JOB_LIMIT: Duration = Duration::from_secs(300);

/// The faulty provider of the batch route. Hangs cost the endpoint timeout (2 s, below).
const FAULTS: [&str; 16] = [
    "--latency-ms",
    "10",
    "--jitter-ms",
    "20",
    "--error-rate",
    "500=0.1",
    "--error-rate",
    "503=0.1",
    "--rate-429",
    "0.05",
    "--retry-after-secs",
    "1",
    "--hang-rate",
    "0.02",
    "--seed",
    "16",
];

/// The chat route's own endpoints, both clean sims, and the default routes switched off
/// so the interactive worker serves only this route and needs no provider key.
fn chat_config(primary: u16, backup: u16) -> String {
    format!(
        r#"
[endpoints.chat-primary]
kind = "openai"
base-url = "http://127.0.0.1:{primary}"

[endpoints.chat-backup]
kind = "openai"
base-url = "http://127.0.0.1:{backup}"

[routes.chat]
channel = "chaos_chat_requests"
targets = [
  {{ endpoint = "chat-primary", model = "gpt-4o-mini", priority = 1 }},
  {{ endpoint = "chat-backup", model = "gpt-4o-mini", priority = 2 }},
]

[routes.openai]
enabled = false
[routes.claude]
enabled = false
[routes.summarize]
enabled = false
[routes.sentiment]
enabled = false
"#
    )
}

struct Cluster {
    dir: tempfile::TempDir,
    grpc: u16,
    rest: u16,
    gateway_port: u16,
    faulty: u16,
    primary_port: u16,
    broker: Option<Proc>,
    /// Shared with the killer task, which replaces one every [`KILL_EVERY`].
    batch_workers: Arc<Mutex<Vec<Proc>>>,
    /// How many batch workers have been started, for their log names.
    spawned: Arc<AtomicUsize>,
    primary: Option<Proc>,
    _backup: Proc,
    _faulty: Proc,
    chat_worker: Proc,
    gateway: Proc,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["batch-config", "chat-config"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("config dir");
        }
        let (faulty, primary_port, backup) =
            (procs::free_port(), procs::free_port(), procs::free_port());
        std::fs::write(
            dir.path().join("chat-config/chat.toml"),
            chat_config(primary_port, backup),
        )
        .expect("chat config");
        let faulty_sim = procs::sim(faulty, &FAULTS, &dir.path().join("sim-faulty.log"));
        let primary = clean_sim(primary_port, dir.path(), "primary");
        let backup_sim = clean_sim(backup, dir.path(), "backup");
        let (grpc, rest, gateway_port) =
            (procs::free_port(), procs::free_port(), procs::free_port());
        let broker = start_broker(dir.path(), grpc, rest);
        let chat_worker = chat_worker(dir.path(), grpc);
        let gateway = gateway(dir.path(), grpc, gateway_port);
        let c = Self {
            dir,
            grpc,
            rest,
            gateway_port,
            faulty,
            primary_port,
            broker: Some(broker),
            batch_workers: Arc::new(Mutex::new(Vec::new())),
            spawned: Arc::new(AtomicUsize::new(0)),
            primary: Some(primary),
            _backup: backup_sim,
            _faulty: faulty_sim,
            chat_worker,
            gateway,
        };
        for _ in 0..BATCH_WORKERS {
            let w = c.batch_worker();
            c.batch_workers.lock().expect("workers").push(w);
        }
        c
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn broker_address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc)
    }

    fn gateway_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway_port)
    }

    /// A batch worker on the faulty sim (both endpoints of the `openai` route point there).
    fn batch_worker(&self) -> Proc {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        batch_worker(self.dir.path(), self.grpc, self.faulty, n)
    }

    fn batch_cli(&self) -> std::process::Command {
        let mut cmd = procs::bin();
        cmd.arg("batch")
            .args(["--broker", &self.broker_address()])
            .arg("--config")
            .arg(self.path("batch-config"));
        cmd
    }

    fn kill_and_restart_broker(&mut self) -> Duration {
        let down = Instant::now();
        if let Some(b) = self.broker.take() {
            b.kill();
        }
        std::thread::sleep(Duration::from_millis(500));
        self.broker = Some(start_broker(self.dir.path(), self.grpc, self.rest));
        down.elapsed()
    }
}

fn clean_sim(port: u16, dir: &Path, name: &str) -> Proc {
    procs::sim(
        port,
        &["--latency-ms", "5", "--seed", "1"],
        &dir.join(format!("sim-{name}.log")),
    )
}

fn start_broker(dir: &Path, grpc: u16, rest: u16) -> Proc {
    procs::broker(grpc, rest, &dir.join("data"), &[], &dir.join("broker.log"))
}

fn batch_worker(dir: &Path, grpc: u16, faulty: u16, n: usize) -> Proc {
    let sim = format!("http://127.0.0.1:{faulty}");
    let mut cmd = procs::bin();
    cmd.args(["worker", "--broker", &format!("127.0.0.1:{grpc}")])
        .args(["--metrics-port", "0"])
        .arg("--config")
        .arg(dir.join("batch-config"))
        .env("OPENAI_API_KEY", "sk-test")
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("LLM_ROUTER__ENDPOINTS__OPENAI__BASE_URL", &sim)
        .env("LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__BASE_URL", &sim)
        .env("LLM_ROUTER__ENDPOINTS__ANTHROPIC__BASE_URL", &sim)
        // A hung call costs 2 s, not the default 30 s.
        .env("LLM_ROUTER__ENDPOINTS__OPENAI__TIMEOUT", "2s")
        .env("LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__TIMEOUT", "2s");
    Proc::spawn(cmd, &dir.join(format!("worker-{n}.log")))
}

/// The chat route's worker: interactive only, never killed.
fn chat_worker(dir: &Path, grpc: u16) -> Proc {
    let mut cmd = procs::bin();
    cmd.args(["worker", "--broker", &format!("127.0.0.1:{grpc}")])
        .args(["--metrics-port", "0", "--no-batch"])
        .arg("--config")
        .arg(dir.join("chat-config"));
    Proc::spawn(cmd, &dir.join("chat-worker.log"))
}

fn gateway(dir: &Path, grpc: u16, port: u16) -> Proc {
    let mut cmd = procs::bin();
    cmd.args(["gateway", "--broker", &format!("127.0.0.1:{grpc}")])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(dir.join("chat-config"));
    let p = Proc::spawn(cmd, &dir.join("gateway.log"));
    procs::wait_port(port, Duration::from_secs(20), "the gateway");
    p
}

fn job_file(path: &Path) {
    let text: Vec<String> = (0..LINES)
        .map(|i| {
            serde_json::json!({
                "custom_id": format!("req-{i}"),
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"messages": [{"role": "user", "content": format!("line {i}")}]},
            })
            .to_string()
        })
        .collect();
    std::fs::write(path, text.join("\n")).expect("write job");
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// One chat through the gateway: the endpoint that answered, or what went wrong.
async fn chat(http: &reqwest::Client, url: &str, i: usize) -> Result<String, String> {
    let body = serde_json::json!({
        "model": "chat",
        "messages": [{"role": "user", "content": format!("chat {i}")}],
    });
    let response = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("read: {e}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {text}"));
    }
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    if v["choices"][0]["message"]["content"].as_str().is_none() {
        return Err(format!("no content: {text}"));
    }
    Ok(v["llm_router"]["endpoint"]
        .as_str()
        .unwrap_or("?")
        .to_owned())
}

/// Waits until the gateway is ready and a chat succeeds; returns how long that took.
async fn wait_chat_ok(http: &reqwest::Client, c: &Cluster, limit: Duration) -> Duration {
    let started = Instant::now();
    let url = c.gateway_url("/v1/chat/completions");
    let mut last = String::new();
    while started.elapsed() < limit {
        let ready = http.get(c.gateway_url("/ready")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            match chat(http, &url, 0).await {
                Ok(_) => return started.elapsed(),
                Err(e) => last = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no chat succeeded within {limit:?}: {last}\ngateway: {}\nchat worker: {}",
        c.gateway.log_tail(2000),
        c.chat_worker.log_tail(2000)
    );
}

/// Kills one batch worker every [`KILL_EVERY`] (round robin) and starts a replacement,
/// until `stop`. Returns how many were killed; fails if one had exited by itself.
async fn killer(
    workers: Arc<Mutex<Vec<Proc>>>,
    spawn: impl Fn() -> Proc + Send + 'static,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut killed = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(KILL_EVERY).await;
        let mut ws = workers.lock().expect("workers");
        if ws.is_empty() {
            continue;
        }
        let at = killed % ws.len();
        let mut victim = ws.remove(at);
        if let Some(status) = victim.exited() {
            panic!(
                "a batch worker exited by itself ({status}): {}",
                victim.log_tail(2000)
            );
        }
        victim.kill();
        killed += 1;
        ws.push(spawn());
    }
    killed
}

/// Runs `batch results` until it has collected every line, starting it again whenever it
/// stops early (it exits when the broker goes away: its documented behaviour, "run `batch
/// results` again to continue"). Returns how many runs it took.
async fn collect(make: impl Fn() -> std::process::Command, out: PathBuf, errors: PathBuf) -> usize {
    let mut runs = 0;
    loop {
        runs += 1;
        let mut cmd = tokio::process::Command::from(make());
        let run = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .expect("run the collector");
        if run.success() && count_lines(&out) + count_lines(&errors) >= LINES {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One interactive chat of the steady client.
struct Chat {
    sent: Instant,
    took: Duration,
    result: Result<String, String>,
}

/// Sends a chat every [`CHAT_EVERY`], each on its own task so a slow failover does not
/// slow the pace, until `stop`; returns every chat once all have ended.
async fn steady(http: reqwest::Client, url: String, stop: Arc<AtomicBool>) -> Vec<Chat> {
    let mut set = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(CHAT_EVERY);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        i += 1;
        let (http, url) = (http.clone(), url.clone());
        set.spawn(async move {
            let sent = Instant::now();
            let result = chat(&http, &url, i).await;
            Chat {
                sent,
                took: sent.elapsed(),
                result,
            }
        });
    }
    set.join_all().await
}

/// Waits until the output and error files hold `n` lines.
async fn wait_collected(out: &Path, errors: &Path, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while count_lines(out) + count_lines(errors) < n {
        assert!(
            Instant::now() < deadline,
            "stuck at {} of {n} lines",
            count_lines(out) + count_lines(errors)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every custom_id exactly once across both files; returns (ok lines, error lines).
fn check_exactly_once(out: &Path, errors: &Path) -> (usize, usize) {
    let mut seen = HashSet::new();
    for path in [out, errors] {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON line");
            let id = v["custom_id"].as_str().expect("custom_id").to_owned();
            assert!(seen.insert(id.clone()), "{id} written twice");
        }
    }
    assert_eq!(seen.len(), LINES, "every line exactly once");
    // The sim injects only retryable failures: an error line can only be a line that used
    // up its attempts (or, far less likely, was lost with killed workers as often).
    for line in std::fs::read_to_string(errors).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON line");
        assert_eq!(v["error"]["code"], "dead_lettered", "{line}");
        let why = v["error"]["message"].as_str().unwrap_or_default();
        assert!(why.contains(&format!("{MAX_ATTEMPTS} ")), "{line}");
    }
    (count_lines(out), count_lines(errors))
}

/// The interactive phase: the steady client runs 5 s, the primary sim is down for
/// [`PRIMARY_DOWN`], then up again for 10 s. Returns the chats and the outage window.
async fn failover_phase(c: &mut Cluster, http: &reqwest::Client) -> (Vec<Chat>, Instant, Instant) {
    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn(steady(
        http.clone(),
        c.gateway_url("/v1/chat/completions"),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let down = Instant::now();
    if let Some(p) = c.primary.take() {
        p.kill();
    }
    tokio::time::sleep(PRIMARY_DOWN).await;
    let (port, dir) = (c.primary_port, c.dir.path().to_path_buf());
    c.primary = Some(tokio::task::block_in_place(|| {
        clean_sim(port, &dir, "primary")
    }));
    let up = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    (client.await.expect("steady client"), down, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_and_interactive_chats_survive_killed_workers_broker_and_endpoint() {
    let started = Instant::now();
    let mut c = tokio::task::block_in_place(Cluster::start);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let first_chat = wait_chat_ok(&http, &c, Duration::from_secs(60)).await;

    let input = c.path("job.jsonl");
    job_file(&input);
    let submitted = c
        .batch_cli()
        .arg("submit")
        .arg(&input)
        .args([
            "--route",
            "openai",
            "--max-attempts",
            &MAX_ATTEMPTS.to_string(),
        ])
        .output()
        .expect("run batch submit");
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let submit_at = Instant::now();
    let job = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    assert!(job.starts_with("batch_"), "job id on stdout: {job}");

    let (out, errors) = (c.path("out.jsonl"), c.path("out.errors.jsonl"));
    let make_collector = {
        let (broker, out, job) = (c.broker_address(), out.clone(), job.clone());
        move || {
            let mut cmd = procs::bin();
            cmd.args(["batch", "--broker", &broker, "results", &job, "--output"])
                .arg(&out);
            cmd
        }
    };
    let collector = tokio::spawn(collect(make_collector, out.clone(), errors.clone()));
    let stop_killing = Arc::new(AtomicBool::new(false));
    let spawn_worker = {
        let (dir, grpc, faulty) = (c.dir.path().to_path_buf(), c.grpc, c.faulty);
        let spawned = c.spawned.clone();
        move || batch_worker(&dir, grpc, faulty, spawned.fetch_add(1, Ordering::Relaxed))
    };
    let killer = tokio::spawn(killer(
        c.batch_workers.clone(),
        spawn_worker,
        stop_killing.clone(),
    ));

    wait_collected(&out, &errors, BROKER_KILL_AT, Duration::from_secs(120)).await;
    let broker_killed_at = submit_at.elapsed();
    let broker_down = tokio::task::block_in_place(|| c.kill_and_restart_broker());
    let reconnect = wait_chat_ok(&http, &c, Duration::from_secs(60)).await;

    let (chats, down, up) = failover_phase(&mut c, &http).await;
    let progress_after_failover = count_lines(&out) + count_lines(&errors);

    let left = JOB_LIMIT.saturating_sub(submit_at.elapsed());
    let runs = match tokio::time::timeout(left, collector).await {
        Ok(runs) => runs.expect("collector task"),
        Err(_) => panic!(
            "job not collected within {JOB_LIMIT:?}: {} ok, {} errors; broker: {}",
            count_lines(&out),
            count_lines(&errors),
            c.broker
                .as_ref()
                .map(|b| b.log_tail(2000))
                .unwrap_or_default()
        ),
    };
    let job_took = submit_at.elapsed();
    stop_killing.store(true, Ordering::Relaxed);
    let killed = killer.await.expect("killer task");

    let (ok, failed) = check_exactly_once(&out, &errors);
    let status = c
        .batch_cli()
        .args(["status", &job, "--json"])
        .output()
        .expect("run batch status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(status["state"], "completed", "{status}");

    let failures: Vec<&String> = chats
        .iter()
        .filter_map(|c| c.result.as_ref().err())
        .collect();
    let in_outage = |t: Instant| t >= down && t < up;
    let outage: Vec<&Chat> = chats.iter().filter(|ch| in_outage(ch.sent)).collect();
    let by_backup = outage
        .iter()
        .filter(|ch| ch.result.as_deref() == Ok("chat-backup"))
        .count();
    let slowest = chats.iter().map(|ch| ch.took).max().unwrap_or_default();
    let after_up = chats
        .iter()
        .filter(|ch| ch.sent >= up && ch.result.as_deref() == Ok("chat-primary"))
        .count();
    eprintln!(
        "chaos: {LINES} lines in {job_took:.1?} ({ok} ok, {failed} errors), {killed} workers \
         killed, broker killed at {broker_killed_at:.1?} and back in {broker_down:.1?}, chats \
         again {reconnect:.1?} later, collector ran {runs} times; {} chats ({} in the 30 s \
         outage, {by_backup} of them by the backup; {after_up} by the primary after it came \
         back), slowest {slowest:.1?}, {} failed; first chat {first_chat:.1?}; {progress_after_failover} \
         lines done when the failover phase ended; whole test {:.1?}",
        chats.len(),
        outage.len(),
        failures.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "failed chats: {failures:?}");
    assert!(
        outage.len() >= 200,
        "the steady client kept its pace: {}",
        outage.len()
    );
    assert!(by_backup > outage.len() / 2, "the backup served the outage");
    assert!(ok >= LINES - 10, "ok lines: {ok}");
    assert!(c.gateway.exited().is_none(), "the gateway kept running");
    assert!(
        c.chat_worker.exited().is_none(),
        "the chat worker kept running"
    );
}
