//! Soak benchmark (issue 16): does anything grow per request? Separate processes on
//! 127.0.0.1 from the release binary: one sim (no latency), the broker (idle channels
//! forgotten after 2 s instead of 60, so the run need not wait a minute), ONE worker and
//! the gateway, on one route.
//!
//! 1. 1,000 streamed chats through the gateway, 32 in flight, and the first 20 of the
//!    batch jobs (5 lines each, `batch submit --wait`, one after the other); 5 s pause;
//!    the baseline: VmRSS of broker, gateway and worker, and the number of series on each
//!    one's `/metrics`. The jobs are in the warm-up because the first job creates what
//!    every job shares (the per-job queue families' series, redb's page cache, capped at
//!    32 MiB): growth after that is what would be per job.
//! 2. 19,000 more streamed chats (20,000 in all) and, beside them, the other 180 jobs;
//!    5 s pause; the same figures.
//!
//! Printed: both samples and their ratio. Issue 16 asks for every ratio within 10%.
//!
//! Run: `cargo bench --bench soak` (env SOAK_CHATS=20000, SOAK_JOBS=200, SOAK_FORGET_SECS=2).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

mod common;
use common::{env_or, free_port, spawn_sim, wait_for_port, wait_ready, Proc, BUILTIN_ROUTES_OFF};
use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

const IN_FLIGHT: usize = 32;

struct Setup {
    gateway: (Proc, u16),
    worker: (Proc, u16),
    broker: (Proc, u16, u16),
    _sim: (Proc, u16),
    dir: tempfile::TempDir,
}

fn write_config(dir: &Path, sim: u16) {
    std::fs::create_dir_all(dir).unwrap();
    let toml = format!(
        r#"[endpoints.sim]
kind = "sim"
base-url = "http://127.0.0.1:{sim}"

[routes.soak]
channel = "soak_requests"
targets = [{{ endpoint = "sim", model = "sim-model" }}]
{BUILTIN_ROUTES_OFF}"#
    );
    std::fs::write(dir.join("soak.toml"), toml).unwrap();
}

impl Setup {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sim = spawn_sim(&["--latency-ms", "0"]);
        let (grpc, rest) = (free_port(), free_port());
        let data = dir.path().join("broker");
        let broker = Proc::spawn(
            &[
                "broker",
                "--grpc-port",
                &grpc.to_string(),
                "--rest-port",
                &rest.to_string(),
                "--forget-idle-channels-after",
                &env_or("SOAK_FORGET_SECS", 2u64).to_string(),
                "--data-dir",
            ],
            &[data.as_os_str()],
        );
        wait_for_port(grpc);
        wait_for_port(sim.1);
        let config = dir.path().join("config");
        write_config(&config, sim.1);
        let worker = common::spawn_worker(grpc, &config, "soak-worker").await;
        let port = free_port();
        let gateway = Proc::spawn(
            &[
                "gateway",
                "--broker",
                &format!("127.0.0.1:{grpc}"),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--config",
            ],
            &[config.as_os_str()],
        );
        wait_ready(port).await;
        Self {
            gateway: (gateway, port),
            worker,
            broker: (broker, grpc, rest),
            _sim: sim,
            dir,
        }
    }

    /// RSS (MB) and series of broker, gateway and worker.
    async fn sample(&self, http: &reqwest::Client) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (name, proc_, port) in [
            ("broker", &self.broker.0, self.broker.2),
            ("gateway", &self.gateway.0, self.gateway.1),
            ("worker", &self.worker.0, self.worker.1),
        ] {
            out.push((format!("{name} RSS MB"), proc_.status_mb("VmRSS")));
            let text = http
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let series = text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count();
            out.push((format!("{name} /metrics series"), series as f64));
        }
        out
    }
}

/// `n` streamed chats, read to their end; panics on any failure.
async fn chats(http: &reqwest::Client, port: u16, from: usize, n: usize) {
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let failed = futures::stream::iter(from..from + n)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body = serde_json::json!({
                    "model": "soak", "stream": true,
                    "messages": [{"role": "user", "content": format!("soak {i}")}],
                });
                let Ok(response) = http.post(&url).json(&body).send().await else {
                    return 1;
                };
                let ok = response.status().is_success();
                match response.text().await {
                    Ok(text) if ok && text.contains("[DONE]") => 0,
                    _ => 1,
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .fold(0usize, |acc, f| async move { acc + f })
        .await;
    assert_eq!(failed, 0, "{failed} of {n} streamed chats failed");
}

/// Batch jobs `from..to` of 5 lines each, submitted and waited for one after the other.
fn batch_jobs(setup_dir: &Path, grpc: u16, from: usize, to: usize) {
    let bin =
        std::env::var_os("BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_llm-router").into());
    let config = setup_dir.join("config");
    for j in from..to {
        let input = setup_dir.join(format!("job-{j}.jsonl"));
        let lines: Vec<String> = (0..5)
            .map(|i| {
                serde_json::json!({"custom_id": format!("j{j}-{i}"), "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "soak", "messages": [{"role": "user", "content": "hi"}]}})
                .to_string()
            })
            .collect();
        std::fs::write(&input, lines.join("\n")).unwrap();
        let out = setup_dir.join(format!("job-{j}.out.jsonl"));
        let errors = setup_dir.join(format!("job-{j}.err.jsonl"));
        let status = std::process::Command::new(&bin)
            .args(["batch", "submit", "--broker", &format!("127.0.0.1:{grpc}")])
            .args(["--route", "soak", "--wait", "--config"])
            .arg(&config)
            .arg("--output")
            .arg(&out)
            .arg("--errors")
            .arg(&errors)
            .arg(&input)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "batch job {j} failed");
        let answered = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .count();
        assert_eq!(answered, 5, "job {j}: {answered} of 5 lines answered");
    }
}

#[tokio::main]
async fn main() {
    let total: usize = env_or("SOAK_CHATS", 20_000);
    let jobs: usize = env_or("SOAK_JOBS", 200);
    let setup = Setup::start().await;
    let http = reqwest::Client::new();
    let port = setup.gateway.1;
    let started = Instant::now();
    let warm_jobs = jobs.min(20);
    let dir = setup.dir.path().to_path_buf();
    let grpc = setup.broker.1;
    let (d, g) = (dir.clone(), grpc);
    let warm = tokio::task::spawn_blocking(move || batch_jobs(&d, g, 0, warm_jobs));
    chats(&http, port, 0, 1000).await;
    warm.await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let first = setup.sample(&http).await;
    let batch = tokio::task::spawn_blocking(move || batch_jobs(&dir, grpc, warm_jobs, jobs));
    chats(&http, port, 1000, total.saturating_sub(1000)).await;
    batch.await.unwrap();
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let last = setup.sample(&http).await;
    println!("soak: {total} streamed chats and {jobs} batch jobs in {took:.0?}");
    println!("| figure | after 1,000 chats + {warm_jobs} jobs | after {total} chats + {jobs} jobs | ratio |");
    println!("|---|---|---|---|");
    for ((name, a), (_, b)) in first.iter().zip(&last) {
        println!("| {name} | {a:.1} | {b:.1} | {:.3} |", b / a);
    }
}
