//! Gateway benchmark: the overhead of the OpenAI-compatible gateway (issue 5).
//!
//! Separate processes on 127.0.0.1, all from the release binary: two simulated providers
//! (`sim-provider --latency-ms 0`, and one more with `--chunk-delay-ms 20` for streams), the
//! broker, ONE worker and the gateway (`llm-router gateway`), worker and gateway on the same
//! config dir: route `bench` on the first sim, `bench-stream` on the second. This process is
//! the load generator, with one shared reqwest client (keep-alive) for both paths.
//!
//! - overhead: open loop at 1,000 and 200 requests/s (one task per tick, missed ticks
//!   burst), 1 s warm-up then BENCH_SECONDS (5) measured: direct = POST to the sim's
//!   /v1/chat/completions; via gateway = POST to the gateway's /v1/chat/completions with
//!   model `bench` (HTTP → gateway → broker → worker → sim → back). Added = via gateway minus
//!   direct at p50 and p99, within the run. CPU (utime+stime) of the gateway, worker and
//!   broker over the via-gateway phase, per 10,000 requests sent in it.
//! - time to first chunk: `stream: true` at BENCH_STREAM_RATE (100) requests/s, from sending
//!   the request to the first SSE `data:` line, directly from the streaming sim vs through
//!   the gateway (model `bench-stream`); each stream is read to its `data: [DONE]`.
//! - throughput: closed loop through the gateway, 128 requests in flight, 1 s warm-up then
//!   BENCH_SECONDS; answers per second.
//!
//! Run: `cargo bench --bench gateway` (env BENCH_RUNS=3, BENCH_SECONDS=5, BENCH_STREAM_RATE).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

mod common;
use common::{
    env_or, free_port, open_loop, open_loop_timed, percentile, spawn_broker, spawn_sim,
    spawn_worker, wait_for_port, wait_ready, Phase, Proc, Runs, BUILTIN_ROUTES_OFF,
};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROMPT: &str = "Say hello to the gateway benchmark.";
/// Pause between the streaming sim's chunks.
const CHUNK_DELAY_MS: &str = "20";

/// The processes of one run. Fields drop in order: gateway and worker stop before the
/// broker they are connected to.
struct Setup {
    gateway: (Proc, u16),
    worker: (Proc, u16),
    broker: (Proc, u16),
    sim: (Proc, u16),
    sim_stream: (Proc, u16),
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sim = spawn_sim(&["--latency-ms", "0"]);
        let sim_stream = spawn_sim(&["--latency-ms", "0", "--chunk-delay-ms", CHUNK_DELAY_MS]);
        let broker = spawn_broker(dir.path());
        wait_for_port(sim.1);
        wait_for_port(sim_stream.1);
        let config = dir.path().join("config");
        write_config(&config, sim.1, sim_stream.1);
        let worker = spawn_worker(broker.1, &config, "bench-worker").await;
        let port = free_port();
        let gateway = Proc::spawn(
            &[
                "gateway",
                "--broker",
                &format!("127.0.0.1:{}", broker.1),
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
            broker,
            sim,
            sim_stream,
            _dir: dir,
        }
    }

    /// CPU seconds of gateway, worker and broker.
    fn cpu(&self) -> [f64; 3] {
        [
            self.gateway.0.cpu_seconds(),
            self.worker.0.cpu_seconds(),
            self.broker.0.cpu_seconds(),
        ]
    }
}

/// One `sim` endpoint per simulated provider and one route on each; the built-in routes
/// are off, so no key is needed.
fn write_config(dir: &Path, sim: u16, sim_stream: u16) {
    std::fs::create_dir_all(dir).unwrap();
    let toml = format!(
        r#"[endpoints.sim]
kind = "sim"
base-url = "http://127.0.0.1:{sim}"

[endpoints.sim-stream]
kind = "sim"
base-url = "http://127.0.0.1:{sim_stream}"

[routes.bench]
channel = "bench_requests"
targets = [{{ endpoint = "sim", model = "sim-model" }}]

[routes.bench-stream]
channel = "bench_stream_requests"
targets = [{{ endpoint = "sim-stream", model = "sim-model" }}]
{BUILTIN_ROUTES_OFF}"#
    );
    std::fs::write(dir.join("bench.toml"), toml).unwrap();
}

/// The shared HTTP client and the request bodies, as cheap clones for the request tasks.
#[derive(Clone)]
struct Clients {
    http: reqwest::Client,
    /// Chat request bodies by model: `sim-model`, `bench`, and their `stream: true` forms.
    bodies: Arc<[serde_json::Value; 4]>,
}

fn body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{ "role": "user", "content": PROMPT }],
        "stream": stream,
    })
}

impl Clients {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .tcp_nodelay(true)
                .build()
                .unwrap(),
            bodies: Arc::new([
                body("sim-model", false),
                body("bench", false),
                body("sim-model", true),
                body("bench-stream", true),
            ]),
        }
    }

    /// A whole non-streamed chat completion from `port` (sim or gateway); true on a 2xx
    /// answer read to its end.
    async fn chat(self, port: u16, via_gateway: bool) -> bool {
        let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
        let body = &self.bodies[usize::from(via_gateway)];
        match self.http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        }
    }

    /// Time from sending a `stream: true` request to the first SSE `data:` line; `None`
    /// unless the answer is a 2xx stream that ends with `data: [DONE]`.
    async fn first_chunk(self, port: u16, via_gateway: bool) -> Option<Duration> {
        let sent = Instant::now();
        let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
        let body = &self.bodies[2 + usize::from(via_gateway)];
        let mut r = self.http.post(url).json(body).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        let mut seen = Vec::new();
        let mut first = None;
        while let Some(bytes) = r.chunk().await.ok()? {
            seen.extend_from_slice(&bytes);
            if first.is_none() && contains(&seen, b"data:") {
                first = Some(sent.elapsed());
            }
        }
        first.filter(|_| contains(&seen, b"data: [DONE]"))
    }
}

/// Requests in flight in the throughput phase.
const MAX_IN_FLIGHT: usize = 128;

/// Closed loop through the gateway: [`MAX_IN_FLIGHT`] requests always in flight, 1 s
/// warm-up, then `measure`; answers per second and failures.
async fn max_rate(c: &Clients, gw: u16, measure: Duration) -> (f64, usize) {
    let c = c.clone();
    let load = common::ClosedLoop::start(MAX_IN_FLIGHT, move || c.clone().chat(gw, true));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now();
    load.count();
    tokio::time::sleep(measure).await;
    let elapsed = start.elapsed().as_secs_f64();
    let (ok, failed) = load.finish().await;
    (ok as f64 / elapsed, failed)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// p50 and p99 of both paths, and the difference, as named figures of `cell`.
fn compare(cell: &str, what: &str, direct: &Phase, via: &Phase) -> Vec<(String, f64)> {
    let dp50 = percentile(&direct.lat, 0.50);
    let dp99 = percentile(&direct.lat, 0.99);
    let vp50 = percentile(&via.lat, 0.50);
    let vp99 = percentile(&via.lat, 0.99);
    println!(
        "  {cell}: {what} direct p50 {dp50:.3} p99 {dp99:.3} ({:.0}/s, {} failed); \
         via gateway p50 {vp50:.3} p99 {vp99:.3} ({:.0}/s, {} failed); \
         added p50 {:.3} p99 {:.3}",
        direct.rate,
        direct.failed,
        via.rate,
        via.failed,
        vp50 - dp50,
        vp99 - dp99,
    );
    vec![
        (format!("{cell}: {what} direct p50 ms"), dp50),
        (format!("{cell}: {what} direct p99 ms"), dp99),
        (format!("{cell}: {what} via gateway p50 ms"), vp50),
        (format!("{cell}: {what} via gateway p99 ms"), vp99),
        (format!("{cell}: {what} added p50 ms"), vp50 - dp50),
        (format!("{cell}: {what} added p99 ms"), vp99 - dp99),
        (format!("{cell}: via gateway achieved req/s"), via.rate),
    ]
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 3);
    let measure = Duration::from_secs(env_or("BENCH_SECONDS", 5));
    let stream_rate: f64 = env_or("BENCH_STREAM_RATE", 100.0);
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
            let clients = Clients::new();
            println!("run {}", run + 1);
            for rate in [1000.0, 200.0] {
                let (sim, gw) = (setup.sim.1, setup.gateway.1);
                let c = clients.clone();
                let direct = open_loop(rate, measure, || c.clone().chat(sim, false)).await;
                let before = setup.cpu();
                let via = open_loop(rate, measure, || c.clone().chat(gw, true)).await;
                let after = setup.cpu();
                failures += direct.failed + via.failed;
                let cell = format!("{rate:.0}/s");
                values.extend(compare(&cell, "latency", &direct, &via));
                let per_10k = |i: usize| (after[i] - before[i]) / via.sent as f64 * 10_000.0;
                println!(
                    "  {cell}: CPU-s per 10k requests: gateway {:.3}, worker {:.3}, broker {:.3}",
                    per_10k(0),
                    per_10k(1),
                    per_10k(2),
                );
                values.extend([
                    (format!("{cell}: gateway CPU-s per 10k"), per_10k(0)),
                    (format!("{cell}: worker CPU-s per 10k"), per_10k(1)),
                    (format!("{cell}: broker CPU-s per 10k"), per_10k(2)),
                ]);
            }
            let (sim, gw) = (setup.sim_stream.1, setup.gateway.1);
            let c = clients.clone();
            let direct =
                open_loop_timed(stream_rate, measure, || c.clone().first_chunk(sim, false)).await;
            let via =
                open_loop_timed(stream_rate, measure, || c.clone().first_chunk(gw, true)).await;
            failures += direct.failed + via.failed;
            let cell = format!("stream {stream_rate:.0}/s");
            values.extend(compare(&cell, "first chunk", &direct, &via));
            let (rate, failed) = max_rate(&clients, setup.gateway.1, measure).await;
            failures += failed;
            println!("  max: {rate:.0} requests/s through the gateway ({MAX_IN_FLIGHT} in flight, {failed} failed)");
            values.push(("max: via gateway req/s".to_owned(), rate));
        });
        rows.push(values);
    }
    println!("\nfailed requests, all runs and phases: {failures}");
    println!("\n{}", rows.table());
}
