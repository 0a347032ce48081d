//! A batch job survives crashes: real binaries for the broker, three workers, the
//! simulated provider and the batch CLI. Mid-job one worker is killed with SIGKILL (and
//! replaced), then the collector is killed and started again; on the embedded broker the
//! broker itself is also killed with SIGKILL and restarted on its data dir (the real
//! server's start script wipes its store, so there it keeps running). Every custom_id must
//! still come out exactly once, in the output or the error file.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::real_server::RealServer;
use common::BrokerKind;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LINES: usize = 2000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llm-router"));
    c.env("RUST_LOG", "warn").stdin(Stdio::null());
    c
}

/// Kills the child on drop, so a failed test leaves no processes behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    grpc: u16,
    rest: u16,
    sim: u16,
    broker: Option<Proc>,
    /// Set when the job runs on the real KubeMQ server instead of `llm-router broker`.
    real: Option<RealServer>,
    workers: Vec<Proc>,
    _sim: Proc,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).expect("config dir");
        let sim = free_port();
        let sim_proc = bin()
            .args(["sim-provider", "--listen", &format!("127.0.0.1:{sim}")])
            .args(["--latency-ms", "40", "--error-rate", "503=0.1"])
            .args([
                "--rate-429",
                "0.03",
                "--retry-after-secs",
                "1",
                "--seed",
                "11",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sim");
        let mut c = Self {
            dir,
            config,
            grpc: free_port(),
            rest: free_port(),
            sim,
            broker: None,
            real: None,
            workers: Vec::new(),
            _sim: Proc(sim_proc),
        };
        if common::broker_kind() == BrokerKind::Kubemq {
            let real = RealServer::start();
            c.grpc = real.grpc_port;
            c.real = Some(real);
        } else {
            c.start_broker();
        }
        for _ in 0..3 {
            c.add_worker();
        }
        c
    }

    fn broker_address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc)
    }

    fn start_broker(&mut self) {
        let child = bin()
            .args(["broker", "--grpc-port", &self.grpc.to_string()])
            .args(["--rest-port", &self.rest.to_string()])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn broker");
        self.broker = Some(Proc(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.grpc)).is_err() {
            assert!(Instant::now() < deadline, "broker did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill_broker(&mut self) {
        if let Some(mut p) = self.broker.take() {
            // SIGKILL: no shutdown path runs.
            p.0.kill().expect("kill broker");
            let _ = p.0.wait();
        }
    }

    fn add_worker(&mut self) {
        let sim = format!("http://127.0.0.1:{}", self.sim);
        let child = bin()
            .args([
                "worker",
                "--broker",
                &self.broker_address(),
                "--metrics-port",
                "0",
            ])
            .arg("--config")
            .arg(&self.config)
            .env("OPENAI_API_KEY", "sk-test")
            .env("ANTHROPIC_API_KEY", "sk-test")
            .env("LLM_ROUTER__ENDPOINTS__OPENAI__BASE_URL", &sim)
            .env("LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__BASE_URL", &sim)
            .env("LLM_ROUTER__ENDPOINTS__ANTHROPIC__BASE_URL", &sim)
            // A cluster-wide cap keeps the job running long enough to crash things mid-way.
            .env(
                "LLM_ROUTER__ENDPOINTS__OPENAI__LIMITS__MAX_CONCURRENCY",
                "12",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn worker");
        self.workers.push(Proc(child));
    }

    fn batch(&self, args: &[&str]) -> Output {
        bin()
            .arg("batch")
            .args(["--broker", &self.broker_address()])
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run batch")
    }

    fn collector(&self, job: &str, out: &Path) -> Child {
        bin()
            .args([
                "batch",
                "--broker",
                &self.broker_address(),
                "results",
                job,
                "--output",
            ])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn collector")
    }
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

/// Waits until the output and error files hold at least `n` lines, or the collector exits.
fn wait_for(out: &Path, errors: &Path, n: usize, collector: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_lines(out) + count_lines(errors) < n {
        assert!(Instant::now() < deadline, "stuck below {n} results");
        let exited = collector.try_wait().ok().flatten();
        assert!(exited.is_none(), "collector exited early: {exited:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_job_survives_a_killed_worker_and_a_killed_broker() {
    let mut c = Cluster::start();
    let input = c.dir.path().join("job.jsonl");
    job_file(&input);
    let submitted = c.batch(&[
        "submit",
        input.to_str().expect("utf-8 path"),
        "--route",
        "openai",
        "--max-attempts",
        "10",
    ]);
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let job = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    assert!(job.starts_with("batch_"), "job id on stdout: {job}");

    let out = c.dir.path().join("out.jsonl");
    let errors = c.dir.path().join("out.errors.jsonl");
    let mut collector = c.collector(&job, &out);

    wait_for(&out, &errors, LINES / 5, &mut collector);
    let mut victim = c.workers.remove(0);
    victim.0.kill().expect("SIGKILL a worker");
    let _ = victim.0.wait();
    c.add_worker();

    wait_for(&out, &errors, LINES / 2, &mut collector);
    // The collector is killed (with the broker, where the broker can come back with its
    // store): what it wrote stays, and a new run continues.
    let _ = collector.kill();
    let _ = collector.wait();
    if c.real.is_none() {
        c.kill_broker();
        std::thread::sleep(Duration::from_millis(300));
        c.start_broker();
    }

    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let run = c
            .collector(&job, &out)
            .wait_with_output()
            .expect("collector");
        if run.status.success() && count_lines(&out) + count_lines(&errors) >= LINES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "collection never completed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut seen = HashSet::new();
    for path in [&out, &errors] {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON line");
            let id = v["custom_id"].as_str().expect("custom_id").to_owned();
            assert!(seen.insert(id.clone()), "{id} written twice");
        }
    }
    assert_eq!(seen.len(), LINES, "every line exactly once");
    assert!(
        count_lines(&out) >= LINES - 10,
        "ok lines: {}",
        count_lines(&out)
    );

    let status = c.batch(&["status", &job, "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(status["job"]["total"], LINES);
}
