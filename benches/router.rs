//! Router benchmark: the overhead of the broker path (issue 3).
//!
//! Separate processes on 127.0.0.1, all from the release binary: two simulated providers
//! (`sim-provider --latency-ms 0` and `--latency-ms 60`), the broker, and ONE worker whose
//! config has one route per sim (`bench0` on `bench0_requests`, `bench60` on
//! `bench60_requests`). This process is the load generator.
//!
//! - overhead: open loop at a fixed rate (one task per tick of a tokio interval, missed ticks
//!   burst), 1 s warm-up then BENCH_SECONDS (5) measured, for 1,000 and 5,000 requests/s and
//!   each sim latency: direct = reqwest POST to the sim's /v1/chat/completions; via broker =
//!   kubemq SDK `send_query` with a plain-UTF-8 prompt (seed mode) on the route's channel,
//!   one shared SDK client. Added latency = via broker minus direct, at p50 and p99.
//! - max requests/s through the worker: closed loop, 256 in flight, on the 0 ms route.
//! - worker RSS (/proc/<pid>/status) idle and right after the max phase (and its VmHWM);
//!   CPU of worker, broker, sim and this process from /proc/<pid>/stat during the max phase.
//!
//! Run: `cargo bench --bench router` (env BENCH_RUNS=3, BENCH_SECONDS=5).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

mod common;
use common::{
    env_or, open_loop, percentile, process_cpu_seconds, spawn_broker, spawn_sim, spawn_worker,
    wait_for_port, Proc, Runs, BUILTIN_ROUTES_OFF, WARM_UP,
};
use kubemq::{KubemqClient, Query};
use std::path::Path;

use std::sync::Arc;
use std::time::{Duration, Instant};

const PROMPT: &str = "Say hello to the router benchmark.";
const MAX_IN_FLIGHT: usize = 256;

/// The processes of one run.
/// Fields drop in order: the worker stops before the broker it is subscribed to.
struct Setup {
    worker: (Proc, u16),
    broker: (Proc, u16),
    sim0: (Proc, u16),
    sim60: (Proc, u16),
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sim0 = spawn_sim(&["--latency-ms", "0"]);
        let sim60 = spawn_sim(&["--latency-ms", "60"]);
        let broker = spawn_broker(dir.path());
        wait_for_port(sim0.1);
        wait_for_port(sim60.1);
        let config = dir.path().join("config");
        write_config(&config, sim0.1, sim60.1);
        let worker = spawn_worker(broker.1, &config, "bench-worker").await;
        Self {
            worker,
            broker,
            sim0,
            sim60,
            _dir: dir,
        }
    }

    fn sim(&self, latency: u64) -> u16 {
        if latency == 0 {
            self.sim0.1
        } else {
            self.sim60.1
        }
    }
}

/// One `sim` endpoint and one route per simulated provider; the built-in routes are off,
/// so no key is needed.
fn write_config(dir: &Path, sim0: u16, sim60: u16) {
    std::fs::create_dir_all(dir).unwrap();
    let toml = format!(
        r#"[endpoints.sim0]
kind = "sim"
base-url = "http://127.0.0.1:{sim0}"

[endpoints.sim60]
kind = "sim"
base-url = "http://127.0.0.1:{sim60}"

[routes.bench0]
channel = "bench0_requests"
targets = [{{ endpoint = "sim0", model = "sim-model" }}]

[routes.bench60]
channel = "bench60_requests"
targets = [{{ endpoint = "sim60", model = "sim-model" }}]
{BUILTIN_ROUTES_OFF}"#
    );
    std::fs::write(dir.join("bench.toml"), toml).unwrap();
}

/// The two request paths, as cheap clones for the per-request tasks.
#[derive(Clone)]
struct Clients {
    http: reqwest::Client,
    body: Arc<serde_json::Value>,
    kubemq: KubemqClient,
}

impl Clients {
    /// client → sim, OpenAI Chat Completions.
    async fn direct(self, sim_port: u16) -> bool {
        let url = format!("http://127.0.0.1:{sim_port}/v1/chat/completions");
        match self.http.post(url).json(&*self.body).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        }
    }

    /// client → broker → worker → sim → back, seed mode.
    async fn via_broker(self, channel: &'static str) -> bool {
        let query = Query::builder()
            .channel(channel)
            .body(PROMPT.as_bytes().to_vec())
            .timeout(Duration::from_secs(10))
            .build();
        match self.kubemq.send_query(query).await {
            Ok(r) => r.executed && r.error.is_empty(),
            Err(_) => false,
        }
    }
}

/// Closed loop: `MAX_IN_FLIGHT` senders on the 0 ms route for 1 s warm-up + `measure`.
struct MaxFigures {
    rate: f64,
    failed: usize,
    worker_cores: f64,
    broker_cores: f64,
    sim_cores: f64,
    loadgen_cores: f64,
    worker_cpu_per_10k: f64,
    broker_cpu_per_10k: f64,
}

async fn max_rate(setup: &Setup, clients: &Clients, measure: Duration) -> MaxFigures {
    let c = clients.clone();
    let load = common::ClosedLoop::start(MAX_IN_FLIGHT, move || {
        c.clone().via_broker("bench0_requests")
    });
    tokio::time::sleep(WARM_UP).await;
    let cpu = |s: &Setup| {
        [
            s.worker.0.cpu_seconds(),
            s.broker.0.cpu_seconds(),
            s.sim0.0.cpu_seconds(),
            process_cpu_seconds("self"),
        ]
    };
    let before = cpu(setup);
    let start = Instant::now();
    load.count();
    tokio::time::sleep(measure).await;
    let elapsed = start.elapsed().as_secs_f64();
    let after = cpu(setup);
    let (ok, failed) = load.finish().await;
    let used: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    MaxFigures {
        rate: ok as f64 / elapsed,
        failed,
        worker_cores: used[0] / elapsed,
        broker_cores: used[1] / elapsed,
        sim_cores: used[2] / elapsed,
        loadgen_cores: used[3] / elapsed,
        worker_cpu_per_10k: used[0] / ok as f64 * 10_000.0,
        broker_cpu_per_10k: used[1] / ok as f64 * 10_000.0,
    }
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 3);
    let measure = Duration::from_secs(env_or("BENCH_SECONDS", 5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Runs::default();
    let mut failures = 0usize;
    for run in 0..runs {
        let mut values: Vec<(String, f64)> = Vec::new();
        rt.block_on(async {
            let setup = Setup::start().await;
            let kubemq = KubemqClient::builder()
                .host("127.0.0.1")
                .port(setup.broker.1)
                .client_id("router-bench")
                .build()
                .await
                .expect("connect to the broker");
            let clients = Clients {
                http: reqwest::Client::builder()
                    .tcp_nodelay(true)
                    .build()
                    .unwrap(),
                body: Arc::new(serde_json::json!({
                    "model": "sim-model",
                    "messages": [{ "role": "user", "content": PROMPT }],
                })),
                kubemq,
            };
            tokio::time::sleep(Duration::from_millis(500)).await;
            values.push((
                "worker RSS idle MB".into(),
                setup.worker.0.status_mb("VmRSS:"),
            ));
            for latency in [0u64, 60] {
                let channel: &'static str = if latency == 0 {
                    "bench0_requests"
                } else {
                    "bench60_requests"
                };
                let port = setup.sim(latency);
                for rate in [1000.0, 5000.0] {
                    let c = clients.clone();
                    let direct = open_loop(rate, measure, || c.clone().direct(port)).await;
                    let c = clients.clone();
                    let w0 = setup.worker.0.cpu_seconds();
                    let b0 = setup.broker.0.cpu_seconds();
                    let (ws0, bs0) = (
                        setup.worker.0.context_switches(),
                        setup.broker.0.context_switches(),
                    );
                    let via = open_loop(rate, measure, || c.clone().via_broker(channel)).await;
                    let wcpu = setup.worker.0.cpu_seconds() - w0;
                    let bcpu = setup.broker.0.cpu_seconds() - b0;
                    let sent = via.sent as f64;
                    let wsw = (setup.worker.0.context_switches() - ws0) as f64 / sent;
                    let bsw = (setup.broker.0.context_switches() - bs0) as f64 / sent;
                    failures += direct.failed + via.failed;
                    let cell = format!("{rate:.0}/s, sim {latency} ms");
                    let dp50 = percentile(&direct.lat, 0.50);
                    let dp99 = percentile(&direct.lat, 0.99);
                    let vp50 = percentile(&via.lat, 0.50);
                    let vp99 = percentile(&via.lat, 0.99);
                    println!(
                        "run {} {cell}: direct p50 {dp50:.3} p99 {dp99:.3} ({:.0}/s, {} failed); \
                         via broker p50 {vp50:.3} p99 {vp99:.3} ({:.0}/s, {} failed); \
                         worker {:.2} cores, broker {:.2} cores; \
                         context switches per request: worker {wsw:.2}, broker {bsw:.2}",
                        run + 1,
                        direct.rate,
                        direct.failed,
                        via.rate,
                        via.failed,
                        wcpu / (measure + WARM_UP).as_secs_f64(),
                        bcpu / (measure + WARM_UP).as_secs_f64(),
                    );
                    values.extend([
                        (format!("{cell}: direct p50 ms"), dp50),
                        (format!("{cell}: direct p99 ms"), dp99),
                        (format!("{cell}: via broker p50 ms"), vp50),
                        (format!("{cell}: via broker p99 ms"), vp99),
                        (format!("{cell}: added p50 ms"), vp50 - dp50),
                        (format!("{cell}: added p99 ms"), vp99 - dp99),
                        (format!("{cell}: via broker achieved req/s"), via.rate),
                        (format!("{cell}: worker context switches per request"), wsw),
                        (format!("{cell}: broker context switches per request"), bsw),
                        (
                            format!("{cell}: worker RSS after the cell MB"),
                            setup.worker.0.status_mb("VmRSS:"),
                        ),
                    ]);
                }
            }
            let max = max_rate(&setup, &clients, measure).await;
            failures += max.failed;
            println!(
                "run {} max: {:.0}/s ({} failed)",
                run + 1,
                max.rate,
                max.failed
            );
            values.extend([
                (
                    format!("max req/s, one worker, {MAX_IN_FLIGHT} in flight, sim 0 ms"),
                    max.rate,
                ),
                ("max phase: worker CPU cores".into(), max.worker_cores),
                ("max phase: broker CPU cores".into(), max.broker_cores),
                ("max phase: sim CPU cores".into(), max.sim_cores),
                (
                    "max phase: load generator CPU cores".into(),
                    max.loadgen_cores,
                ),
                (
                    "max phase: worker CPU-s per 10k".into(),
                    max.worker_cpu_per_10k,
                ),
                (
                    "max phase: broker CPU-s per 10k".into(),
                    max.broker_cpu_per_10k,
                ),
                (
                    "worker RSS after max phase MB".into(),
                    setup.worker.0.status_mb("VmRSS:"),
                ),
                (
                    "worker peak RSS (VmHWM) MB".into(),
                    setup.worker.0.status_mb("VmHWM:"),
                ),
            ]);
        });
        rows.push(values);
    }
    println!("\nfailed requests, all runs and phases: {failures}");
    println!("\n{}", rows.table());
}
