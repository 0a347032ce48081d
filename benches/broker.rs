//! Broker benchmark: the release binary in its own process, driven by the official `kubemq`
//! Rust SDK from this process, on the same machine (the shapes of the reference figures in
//! BENCHMARKS.md). Run: `cargo bench --bench broker` (env BENCH_RUNS=3, BENCH_SECONDS=5;
//! BENCH_BIN=<binary> measures another build).
//!
//! Measures: query round trips/s with 64 in flight and a group of 2 responders (p50/p99);
//! serial round-trip latency; queue messages/s end to end (batch send of 100, poll up to
//! 100, ack); broker CPU-seconds per 10,000 operations from /proc; broker RSS idle and
//! after the queue run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

mod common;
use common::{free_port, percentile, process_cpu_seconds, wait_for_port};
use kubemq::{KubemqClient, PollRequest, Query, QueryReply, QueueMessage};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BODY: [u8; 256] = [b'x'; 256];

struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let rest = free_port();
        // BENCH_BIN runs another build (an A/B comparison) under the same bench.
        let bin = std::env::var_os("BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_llm-router").into());
        let child = Command::new(bin)
            .args([
                "broker",
                "--grpc-port",
                &port.to_string(),
                "--rest-port",
                &rest.to_string(),
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .envs(
                std::env::var("BENCH_BROKER_THREADS")
                    .ok()
                    .map(|n| ("TOKIO_WORKER_THREADS", n)),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start broker binary");
        wait_for_port(port);
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime of the broker process, in seconds.
    fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(&self.pid().to_string())
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb / 1024.0
    }

    async fn client(&self, id: &str) -> KubemqClient {
        KubemqClient::builder()
            .host("127.0.0.1")
            .port(self.port)
            .client_id(id)
            .build()
            .await
            .expect("connect")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn responders(broker: &Broker, channel: &str, n: usize) -> Vec<kubemq::Subscription> {
    let mut subs = Vec::new();
    for i in 0..n {
        let client = broker.client(&format!("responder-{i}")).await;
        let replier = client.clone();
        let sub = client
            .subscribe_to_queries(
                channel,
                "bench",
                move |q| {
                    let c = replier.clone();
                    Box::pin(async move {
                        let reply = QueryReply::builder()
                            .request_id(&q.id)
                            .response_to(&q.response_to)
                            .body(q.body)
                            .build();
                        let _ = c.send_query_response(reply).await;
                    })
                },
                None,
            )
            .await
            .expect("subscribe");
        subs.push(sub);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    subs
}

fn query(channel: &str) -> Query {
    Query::builder()
        .channel(channel)
        .body(BODY.to_vec())
        .timeout(Duration::from_secs(10))
        .build()
}

struct QueryFigures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_per_10k: f64,
    /// CPU of this process (the SDK load generator: 64 senders, 2 responders).
    loadgen_cpu_per_10k: f64,
}

async fn bench_queries(broker: &Broker, seconds: u64) -> QueryFigures {
    let channel = format!("bench.q.{}", rand_suffix());
    let _subs = responders(broker, &channel, 2).await;
    let sender = broker.client("sender").await;
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = broker.cpu_seconds();
    let self0 = process_cpu_seconds("self");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (c, ch, stop) = (sender.clone(), channel.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.send_query(query(&ch)).await.expect("query");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = broker.cpu_seconds() - cpu0;
    let loadgen = process_cpu_seconds("self") - self0;
    all.sort();
    QueryFigures {
        rate: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        cpu_per_10k: cpu / all.len() as f64 * 10_000.0,
        loadgen_cpu_per_10k: loadgen / all.len() as f64 * 10_000.0,
    }
}

async fn bench_serial(broker: &Broker, n: usize) -> f64 {
    let channel = format!("bench.s.{}", rand_suffix());
    let _subs = responders(broker, &channel, 1).await;
    let sender = broker.client("serial").await;
    for _ in 0..100 {
        sender.send_query(query(&channel)).await.expect("warm-up");
    }
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        sender.send_query(query(&channel)).await.expect("query");
        lat.push(t.elapsed());
    }
    lat.sort();
    percentile(&lat, 0.50)
}

struct QueueFigures {
    rate: f64,
    cpu_per_10k: f64,
}

async fn bench_queue(broker: &Broker, total: usize) -> QueueFigures {
    let channel = format!("bench.queue.{}", rand_suffix());
    let producer = broker.client("producer").await;
    let consumer = broker.client("consumer").await;
    let cpu0 = broker.cpu_seconds();
    let start = Instant::now();
    let ch = channel.clone();
    let send = tokio::spawn(async move {
        for _ in 0..total / 100 {
            let batch = (0..100)
                .map(|_| {
                    QueueMessage::builder()
                        .channel(&ch)
                        .body(BODY.to_vec())
                        .build()
                })
                .collect();
            producer
                .send_queue_messages(batch)
                .await
                .expect("send batch");
        }
    });
    let mut receiver = consumer
        .new_queue_downstream_receiver()
        .await
        .expect("downstream");
    let mut received = 0;
    while received < total {
        let poll = PollRequest {
            channel: channel.clone(),
            max_items: 100,
            wait_timeout_seconds: 1,
            auto_ack: false,
        };
        let resp = receiver.poll(poll).await.expect("poll");
        if resp.messages.is_empty() {
            continue;
        }
        received += resp.messages.len();
        resp.ack_all().await.expect("ack");
    }
    send.await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = broker.cpu_seconds() - cpu0;
    QueueFigures {
        rate: total as f64 / elapsed,
        // One operation = one message through send, receive and ack.
        cpu_per_10k: cpu / total as f64 * 10_000.0,
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let queue_total: usize = std::env::var("BENCH_QUEUE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows: Vec<(&str, Vec<f64>)> = [
        "query round trips/s (64 in flight, group of 2)",
        "query p50 ms",
        "query p99 ms",
        "query broker CPU-s per 10k",
        "query load-generator CPU-s per 10k",
        "serial round trip p50 ms",
        "queue msgs/s end to end (batch 100)",
        "queue broker CPU-s per 10k",
        "RSS idle MB",
        "RSS after queue run MB",
    ]
    .into_iter()
    .map(|n| (n, Vec::new()))
    .collect();
    for run in 0..runs {
        let broker = Broker::start();
        rt.block_on(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle = broker.rss_mb();
            let q = bench_queries(&broker, seconds).await;
            let serial = bench_serial(&broker, 2000).await;
            let queue = bench_queue(&broker, queue_total).await;
            let after = broker.rss_mb();
            let values = [
                q.rate,
                q.p50_ms,
                q.p99_ms,
                q.cpu_per_10k,
                q.loadgen_cpu_per_10k,
                serial,
                queue.rate,
                queue.cpu_per_10k,
                idle,
                after,
            ];
            println!(
                "run {}: {:?}",
                run + 1,
                values.map(|v| (v * 100.0).round() / 100.0)
            );
            for (row, v) in rows.iter_mut().zip(values) {
                row.1.push(v);
            }
        });
    }
    println!("\n| figure | median of {runs} | runs |\n|---|---|---|");
    for (name, values) in rows {
        let shown: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
        println!(
            "| {name} | {:.2} | {} |",
            median(values.clone()),
            shown.join(", ")
        );
    }
}
