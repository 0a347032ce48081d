//! Broker memory with a deep queue: the release binary in its own process gets N queued
//! 1 KiB messages (sent in batches by the official `kubemq` SDK, never consumed), and its
//! VmRSS is read from /proc; then the broker is restarted on the same data directory and
//! read again, since recovery rebuilds the queue from the store. Loopback only.
//!
//! Run: `cargo bench --bench queue_memory`. Env: `BENCH_BIN=<binary>` measures another
//! build (e.g. the one before a change), `BENCH_QUEUE_MESSAGES` (default 1,000,000),
//! `BENCH_BATCH` (default 1,000 per send), `BENCH_PRODUCERS` (default 4 concurrent senders).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

mod common;
use common::{free_port, wait_for_port, Proc};
use kubemq::{KubemqClient, PollRequest, QueueMessage};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const BODY: [u8; 1024] = [b'x'; 1024];
const CHANNEL: &str = "bench.memory";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Waits until the broker's REST `/ready` answers 200. The listeners are bound before
/// recovery, so an open port alone does not mean the queue is back.
fn wait_ready(rest: u16) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", rest)) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(600)));
            let _ = conn.write_all(b"GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut head = [0u8; 12];
            if conn.read_exact(&mut head).is_ok() && head.ends_with(b"200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("broker not ready after 600 s");
}

/// A broker on free loopback ports over `dir`, ready (recovered) when this returns.
fn start(dir: &Path) -> (Proc, u16) {
    let (port, rest) = (free_port(), free_port());
    let args = [
        "broker",
        "--bind",
        "127.0.0.1",
        "--grpc-port",
        &port.to_string(),
        "--rest-port",
        &rest.to_string(),
        "--data-dir",
    ];
    let proc = Proc::spawn(&args, &[dir.as_os_str()]);
    wait_for_port(port);
    wait_ready(rest);
    (proc, port)
}

async fn client(port: u16, id: &str) -> KubemqClient {
    KubemqClient::builder()
        .host("127.0.0.1")
        .port(port)
        .client_id(id)
        .max_send_message_size(64 * 1024 * 1024)
        .build()
        .await
        .expect("connect")
}

/// Sends `total` messages in batches of `batch` from `producers` concurrent clients.
async fn fill(port: u16, total: usize, batch: usize, producers: usize) {
    let per = total / producers;
    let mut tasks = Vec::new();
    for p in 0..producers {
        let c = client(port, &format!("producer-{p}")).await;
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < per {
                let n = batch.min(per - sent);
                let msgs = (0..n)
                    .map(|_| {
                        QueueMessage::builder()
                            .channel(CHANNEL)
                            .body(BODY.to_vec())
                            .build()
                    })
                    .collect();
                let results = c.send_queue_messages(msgs).await.expect("send batch");
                let failed = results.iter().find(|r| r.is_error);
                assert!(failed.is_none(), "refused: {failed:?}");
                sent += n;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Takes (and acks) a few messages and checks their bodies came back whole.
async fn check_bodies(port: u16) {
    let c = client(port, "checker").await;
    let mut rx = c.new_queue_downstream_receiver().await.expect("downstream");
    let resp = rx
        .poll(PollRequest {
            channel: CHANNEL.into(),
            max_items: 100,
            wait_timeout_seconds: 1,
            auto_ack: true,
        })
        .await
        .expect("poll");
    assert_eq!(resp.messages.len(), 100, "messages came back");
    assert!(resp.messages.iter().all(|m| m.message.body[..] == BODY[..]));
}

fn main() {
    let total = env_or("BENCH_QUEUE_MESSAGES", 1_000_000);
    let batch = env_or("BENCH_BATCH", 1_000);
    let producers = env_or("BENCH_PRODUCERS", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!("messages queued: {total} x 1 KiB, batches of {batch}, {producers} producers");
    println!("| figure | value |\n|---|---|");
    let (broker, port) = start(dir.path());
    println!("| RSS idle | {:.1} MB |", broker.status_mb("VmRSS:"));
    let began = Instant::now();
    rt.block_on(fill(port, total, batch, producers));
    let secs = began.elapsed().as_secs_f64();
    println!(
        "| send time | {secs:.1} s ({:.0} msgs/s) |",
        total as f64 / secs
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "| RSS with the queue full | {:.1} MB |",
        broker.status_mb("VmRSS:")
    );
    println!(
        "| peak RSS while filling (VmHWM) | {:.1} MB |",
        broker.status_mb("VmHWM:")
    );
    drop(broker);
    let began = Instant::now();
    let (broker, port) = start(dir.path());
    let secs = began.elapsed().as_secs_f64();
    println!("| restart until ready (recovery) | {secs:.1} s |");
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "| RSS after restart | {:.1} MB |",
        broker.status_mb("VmRSS:")
    );
    println!(
        "| peak RSS during recovery (VmHWM) | {:.1} MB |",
        broker.status_mb("VmHWM:")
    );
    let began = Instant::now();
    rt.block_on(check_bodies(port));
    println!(
        "| first take of 100 after restart | {:.1} ms |",
        began.elapsed().as_secs_f64() * 1000.0
    );
}
