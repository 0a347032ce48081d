//! Batch benchmark (issue 4).
//!
//! Separate processes on 127.0.0.1, all from the release binary: the broker (fsync
//! always), a simulated provider, and three workers, each its own process; this process
//! submits and collects through the library (the same code as `llm-router batch`).
//!
//! - (a) capacity utilisation: the sim enforces BENCH_RPM (6,000) requests in any 60 s
//!   window and the endpoint is configured with the same requests/min, shared by the three
//!   workers. A BENCH_LINES (20,000) job runs; achieved rate = lines / (first result to
//!   last result collected), as a share of the limit; and the 429s the sim sent.
//! - (b) raw throughput: an unlimited 0 ms sim; lines/s from the start of submit to the
//!   last result collected, and the processing rate alone (first to last result).
//! - (c) interactive latency: open loop of BENCH_INTERACTIVE_RPS (20) seed-mode queries on
//!   the same route for 10 s, idle and then while the (a) job runs; p50/p99.
//!
//! Run: `cargo bench --bench batch` (env BENCH_RUNS=3, BENCH_LINES, BENCH_RPM, BENCH_PARTS=abc).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

mod common;
use common::{
    env_or, median, percentile, spawn_broker, spawn_sim, spawn_worker, wait_for_port, Proc,
    BUILTIN_ROUTES_OFF,
};
use llm_router::batch::collect::{self, CollectOptions};
use llm_router::batch::history;
use llm_router::batch::submit::{self, SubmitOptions};
use llm_router::kubemq::client::{Client, ClientOptions};
use llm_router::kubemq::queues::QueueClient;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

const WORKERS: usize = 3;

/// Fields drop in order: workers stop before the broker.
struct Setup {
    _workers: Vec<Proc>,
    broker: (Proc, u16),
    sim: (Proc, u16),
    dir: tempfile::TempDir,
}

impl Setup {
    /// `rpm`: the sim's enforced limit and the endpoint's configured one (None: unlimited).
    async fn start(rpm: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rpm_text = rpm.map(|r| r.to_string()).unwrap_or_default();
        let mut args = vec!["--latency-ms", "0"];
        if rpm.is_some() {
            args.extend(["--rpm-limit", &rpm_text]);
        }
        let (sim, sim_port) = spawn_sim(&args);
        let (broker, grpc) = spawn_broker(dir.path());
        wait_for_port(sim_port);
        let config = dir.path().join("config");
        write_config(&config, sim_port, rpm);
        let mut workers = Vec::new();
        for i in 0..WORKERS {
            let (w, _) = spawn_worker(grpc, &config, &format!("bench-batch-worker-{i}")).await;
            workers.push(w);
        }
        // One heartbeat round, so each worker knows its share before the job starts.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Self {
            _workers: workers,
            broker: (broker, grpc),
            sim: (sim, sim_port),
            dir,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.broker.1)
    }

    async fn sim_stats(&self) -> serde_json::Value {
        reqwest::get(format!("http://127.0.0.1:{}/stats", self.sim.1))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// One `sim` endpoint and one route on it; the built-in routes are off, so no key is needed.
fn write_config(dir: &Path, sim: u16, rpm: Option<u32>) {
    std::fs::create_dir_all(dir).unwrap();
    let limits = rpm
        .map(|r| format!("limits = {{ requests-per-minute = {r} }}\n"))
        .unwrap_or_default();
    let toml = format!(
        r#"[endpoints.sim]
kind = "sim"
base-url = "http://127.0.0.1:{sim}"
{limits}
[routes.bench]
channel = "bench_requests"
targets = [{{ endpoint = "sim", model = "sim-model" }}]

{BUILTIN_ROUTES_OFF}"#
    );
    std::fs::write(dir.join("bench.toml"), toml).unwrap();
}

fn job_text(lines: usize) -> String {
    let mut out = String::with_capacity(lines * 160);
    for i in 0..lines {
        out.push_str(&format!(
            "{{\"custom_id\":\"l{i}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"messages\":[{{\"role\":\"user\",\"content\":\"Classify line {i} of the benchmark.\"}}]}}}}\n"
        ));
    }
    out
}

struct JobRun {
    lines: usize,
    submit: Duration,
    /// Submit start to the last result collected.
    total: Duration,
    /// First result collected to the last.
    processing: Duration,
}

async fn run_job(setup: &Setup, lines: usize) -> JobRun {
    let client = Client::connect(ClientOptions::new(setup.address(), "bench-batch"))
        .await
        .unwrap();
    let queues = QueueClient::new(&setup.address(), "bench-batch").unwrap();
    let text = job_text(lines);
    let options = SubmitOptions {
        route: "bench".into(),
        max_attempts: 5,
        skip_invalid: false,
        input: "bench.jsonl".into(),
    };
    let start = Instant::now();
    let config = llm_router::config::load_with_env(
        Some(&setup.dir.path().join("config")),
        &std::collections::HashMap::new(),
    )
    .unwrap();
    let names = llm_router::config::models::ModelNames::new(&config);
    let job = submit::submit(&client, &queues, &text, &names, &options)
        .await
        .unwrap();
    let submit = start.elapsed();
    let record = history::replay(&client)
        .await
        .unwrap()
        .get(&job.job)
        .cloned()
        .unwrap();
    let out = setup.dir.path().join(format!("{}.jsonl", job.job));
    let collect_options = CollectOptions {
        errors: collect::default_errors_path(&out),
        output: out,
        wait: true,
    };
    let mut first: Option<Instant> = None;
    let mut seen = |p: collect::Progress| {
        if p.done() > 0 && first.is_none() {
            first = Some(Instant::now());
        }
    };
    let done = collect::collect(&client, &queues, &record, &collect_options, &mut seen)
        .await
        .unwrap();
    let end = Instant::now();
    assert_eq!(done.done() as usize, lines, "every line accounted for");
    assert_eq!(done.failed, 0, "no failed lines");
    JobRun {
        lines,
        submit,
        total: end - start,
        processing: end - first.unwrap_or(start),
    }
}

/// Open loop of seed-mode queries at `rate`/s for `secs`; latencies sorted.
async fn interactive(setup: &Setup, rate: f64, secs: u64) -> Vec<Duration> {
    let client = Client::connect(ClientOptions::new(setup.address(), "bench-interactive"))
        .await
        .unwrap();
    let lat = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let client = client.clone();
        let lat = lat.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let resp = client
                .send_request(llm_router::kubemq::Request {
                    request_type_data: llm_router::kubemq::request::RequestType::Query as i32,
                    client_id: "bench-interactive".into(),
                    channel: "bench_requests".into(),
                    body: b"Interactive question during the batch benchmark.".to_vec(),
                    timeout: 30_000,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(resp.executed, "interactive failed: {}", resp.error);
            lat.lock().push(start.elapsed());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut v = std::mem::take(&mut *lat.lock());
    v.sort();
    v
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 3);
    let lines: usize = env_or("BENCH_LINES", 20_000);
    let rpm: u32 = env_or("BENCH_RPM", 6_000);
    let rps: f64 = env_or("BENCH_INTERACTIVE_RPS", 20.0);
    let parts: String = env_or("BENCH_PARTS", "abc".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut share = Vec::new();
        let mut rejected = Vec::new();
        let mut idle = (Vec::new(), Vec::new());
        let mut busy = (Vec::new(), Vec::new());
        let mut raw_total = Vec::new();
        let mut raw_processing = Vec::new();
        for run in 1..=runs {
            if parts.contains('a') || parts.contains('c') {
                let setup = Setup::start(Some(rpm)).await;
                if parts.contains('c') {
                    let lat = interactive(&setup, rps, 10).await;
                    println!(
                        "run {run} (c) idle: p50 {:.2} ms p99 {:.2} ms ({} requests)",
                        percentile(&lat, 0.5),
                        percentile(&lat, 0.99),
                        lat.len()
                    );
                    idle.0.push(percentile(&lat, 0.5));
                    idle.1.push(percentile(&lat, 0.99));
                }
                let job = {
                    let setup = &setup;
                    async move { run_job(setup, lines).await }
                };
                let probe = async {
                    if !parts.contains('c') {
                        return None;
                    }
                    // Let the job reach its steady state, then measure beside it.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Some(interactive(&setup, rps, 10).await)
                };
                let (job, lat) = tokio::join!(job, probe);
                if let Some(lat) = lat {
                    println!(
                        "run {run} (c) during job: p50 {:.2} ms p99 {:.2} ms ({} requests)",
                        percentile(&lat, 0.5),
                        percentile(&lat, 0.99),
                        lat.len()
                    );
                    busy.0.push(percentile(&lat, 0.5));
                    busy.1.push(percentile(&lat, 0.99));
                }
                let stats = setup.sim_stats().await;
                let limit_per_s = f64::from(rpm) / 60.0;
                let achieved = job.lines as f64 / job.processing.as_secs_f64();
                println!(
                    "run {run} (a) {} lines in {:.1} s: {:.1} lines/s = {:.1}% of {rpm}/min; sim 429s: {}; sim stats {stats}",
                    job.lines,
                    job.processing.as_secs_f64(),
                    achieved,
                    100.0 * achieved / limit_per_s,
                    stats["rate_limited"]
                );
                share.push(100.0 * achieved / limit_per_s);
                rejected.push(stats["rate_limited"].as_f64().unwrap_or(f64::NAN));
            }
            if parts.contains('b') {
                let setup = Setup::start(None).await;
                let cpu = |s: &Setup| {
                    let workers: f64 = s._workers.iter().map(Proc::cpu_seconds).sum();
                    [
                        s.broker.0.cpu_seconds(),
                        workers,
                        s.sim.0.cpu_seconds(),
                        common::process_cpu_seconds("self"),
                    ]
                };
                let before = cpu(&setup);
                let job = run_job(&setup, lines).await;
                let after = cpu(&setup);
                let per_10k = |i: usize| (after[i] - before[i]) * 10_000.0 / job.lines as f64;
                println!(
                    "run {run} (b) CPU-s per 10k lines: broker {:.2}, workers {:.2}, sim {:.2}, submit+collect {:.2}",
                    per_10k(0),
                    per_10k(1),
                    per_10k(2),
                    per_10k(3)
                );
                println!(
                    "run {run} (b) {} lines: submit {:.2} s, end to end {:.2} s = {:.0} lines/s; processing {:.2} s = {:.0} lines/s",
                    job.lines,
                    job.submit.as_secs_f64(),
                    job.total.as_secs_f64(),
                    job.lines as f64 / job.total.as_secs_f64(),
                    job.processing.as_secs_f64(),
                    job.lines as f64 / job.processing.as_secs_f64(),
                );
                raw_total.push(job.lines as f64 / job.total.as_secs_f64());
                raw_processing.push(job.lines as f64 / job.processing.as_secs_f64());
            }
        }
        println!("--- medians of {runs} run(s), {lines} lines, {WORKERS} workers");
        if !share.is_empty() {
            println!(
                "(a) utilisation {:.1}% of {rpm}/min, sim 429s {}",
                median(share),
                median(rejected)
            );
        }
        if !idle.0.is_empty() {
            println!(
                "(c) interactive at {rps}/s: idle p50 {:.2} p99 {:.2} ms; during job p50 {:.2} p99 {:.2} ms",
                median(idle.0),
                median(idle.1),
                median(busy.0),
                median(busy.1)
            );
        }
        if !raw_total.is_empty() {
            println!(
                "(b) raw: {:.0} lines/s end to end, {:.0} lines/s processing",
                median(raw_total),
                median(raw_processing)
            );
        }
    });
}
