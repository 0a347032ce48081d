//! Quiet when idle: a gateway and two workers with nothing in flight make a bounded number
//! of broker calls a minute, send no HTTP/2 keep-alive pings (a real KubeMQ answers early
//! pings with GOAWAY `too_many_pings`), and open no new subscriptions. Counted by a
//! loopback proxy between them and the broker that reads the client's HTTP/2 frames, so
//! the same count works on both brokers (`LLM_ROUTER_TEST_BROKER`).
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::stack::{self, start_gateway, start_worker};
use common::Broker;
use llm_router::sim::SimConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the clients sent, frame by frame, over every connection.
#[derive(Default)]
struct Counts {
    /// HEADERS frames opening a new stream: one per gRPC call (unary or streaming).
    calls: AtomicU64,
    /// DATA frames: request messages, on new or long-lived streams.
    messages: AtomicU64,
    /// PING frames that are not acknowledgements.
    pings: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.messages.load(Ordering::Relaxed),
            self.pings.load(Ordering::Relaxed),
        )
    }
}

/// Reads the client side of one HTTP/2 connection, counting frames, and passes every
/// byte on unchanged.
async fn client_to_server(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counts: Arc<Counts>,
) {
    const PREFACE: usize = 24;
    let mut pending: Vec<u8> = Vec::new();
    let mut preface_left = PREFACE;
    let mut highest_stream = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let skip = preface_left.min(pending.len());
        pending.drain(..skip);
        preface_left -= skip;
        while pending.len() >= 9 {
            let len = (usize::from(pending[0]) << 16)
                | (usize::from(pending[1]) << 8)
                | usize::from(pending[2]);
            if pending.len() < 9 + len {
                break;
            }
            let (kind, flags) = (pending[3], pending[4]);
            let stream =
                u32::from_be_bytes([pending[5], pending[6], pending[7], pending[8]]) & 0x7fff_ffff;
            match kind {
                0 => {
                    counts.messages.fetch_add(1, Ordering::Relaxed);
                }
                1 if stream > highest_stream => {
                    highest_stream = stream;
                    counts.calls.fetch_add(1, Ordering::Relaxed);
                }
                6 if flags & 1 == 0 => {
                    counts.pings.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            pending.drain(..9 + len);
        }
    }
    let _ = to.shutdown().await;
}

/// A proxy on a free loopback port in front of `upstream`.
async fn counting_proxy(upstream: String) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let address = listener.local_addr().expect("addr").to_string();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, mut client_write) = client.into_split();
            let (mut server_read, server_write) = server.into_split();
            tokio::spawn(client_to_server(client_read, server_write, c.clone()));
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                let _ = client_write.shutdown().await;
            });
        }
    });
    (address, counts)
}

/// Calls a minute an idle gateway and two idle workers may make (docs/kubemq.md, "Idle
/// traffic"): 2 x 60 membership heartbeats, 2 x 4 routes x 4 queue-depth reads, nothing
/// from the gateway; with a margin for the window's edges.
const MAX_CALLS_PER_MINUTE: f64 = 170.0;
/// DATA frames a minute: the calls' own requests (152), each worker's 8 batch pull loops
/// asking once every 10 s and closing the transaction (2 x 8 x 6 x 2 = 192), and the
/// frames some requests take besides (measured: 400 on both brokers); with a margin.
const MAX_MESSAGES_PER_MINUTE: f64 = 460.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_and_two_workers_make_a_bounded_number_of_calls() {
    let broker = Broker::start().await;
    let (proxy, counts) = counting_proxy(broker.grpc_address()).await;
    let sim = stack::start_sim(SimConfig::default()).await;
    let config = stack::sim_routes(&sim, &[]);
    let workers = vec![
        start_worker(&proxy, &config, "idle-w1").await,
        start_worker(&proxy, &config, "idle-w2").await,
    ];
    let gateway = start_gateway(proxy.clone(), &config, |_| {}).await;
    let http = reqwest::Client::new();
    stack::wait_ok(
        &http,
        &[format!("{}/ready", gateway.url())],
        Duration::from_secs(10),
    )
    .await;
    // One request of each kind first, so every lazily opened stream is open.
    let chat =
        serde_json::json!({"model": "openai", "messages": [{"role": "user", "content": "hi"}]});
    for stream in [false, true] {
        let mut body = chat.clone();
        body["stream"] = serde_json::json!(stream);
        let r = http
            .post(format!("{}/v1/chat/completions", gateway.url()))
            .json(&body)
            .send()
            .await
            .expect("chat");
        assert!(r.status().is_success(), "{}", r.status());
        let _ = r.bytes().await;
    }
    let log_before = broker.server_log().lines().count();
    // Settle past start-up (first pulls, first scans), then count a window.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let window = Duration::from_secs(30);
    let (calls0, messages0, pings0) = counts.snapshot();
    tokio::time::sleep(window).await;
    let (calls1, messages1, pings1) = counts.snapshot();
    let per_minute = |n: u64| n as f64 * 60.0 / window.as_secs_f64();
    let (calls, messages) = (
        per_minute(calls1 - calls0),
        per_minute(messages1 - messages0),
    );
    eprintln!(
        "idle on {:?}: {calls:.0} calls/min, {messages:.0} messages/min, {} pings",
        broker.kind(),
        pings1 - pings0
    );
    assert!(calls <= MAX_CALLS_PER_MINUTE, "{calls:.0} calls a minute");
    assert!(
        messages <= MAX_MESSAGES_PER_MINUTE,
        "{messages:.0} messages a minute"
    );
    assert!(
        calls >= 100.0,
        "heartbeats missing: {calls:.0} calls a minute"
    );
    assert_eq!(pings1, 0, "keep-alive pings on idle connections");
    // On the real server its own log shows any subscription opened while idle.
    let new_subscriptions: Vec<String> = broker
        .server_log()
        .lines()
        .skip(log_before)
        .filter(|l| l.contains("subscribe to"))
        .map(str::to_owned)
        .collect();
    assert!(
        new_subscriptions.is_empty(),
        "subscriptions while idle: {new_subscriptions:#?}"
    );
    gateway.stop().await;
    stack::stop_workers(workers).await;
    sim.shutdown.cancel();
    broker.stop().await;
}
