//! Hostile clients against real binaries (broker, sim, worker, gateway as child
//! processes): oversize channel names, bodies and metadata; thousands of connections
//! opened and dropped on the gRPC, REST and gateway ports, and more held open than the
//! caps allow; slow-loris heads and stalled bodies on REST and the gateway; garbage on the
//! gRPC port, raw and inside HTTP/2 gRPC frames. Beside them steady clients (queue send
//! and receive and events over gRPC, chats through the gateway) must see no failed call,
//! and the broker's resident memory must stay bounded.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::raw_codec::RawCodec;

use bytes::Bytes;
use common::procs::{self, Proc};
use futures::future::join_all;
use llm_router::kubemq::kubemq_client::KubemqClient;
use llm_router::kubemq::subscribe::SubscribeType;
use llm_router::kubemq::{Event, QueueMessage, ReceiveQueueMessagesRequest, Subscribe};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use tonic::Status;

/// The broker's message limit for this test, small so oversize bodies are cheap.
const MAX_MESSAGE: usize = 2 * 1024 * 1024;
/// The metadata limit (the broker's default), under the message limit so Error 151 is
/// what a message with too much metadata meets.
const MAX_METADATA: usize = 1024 * 1024;
/// Connection caps of every listener here.
const CAP: usize = 256;
/// The gateway's body limit.
const MAX_BODY: usize = 1024 * 1024;
/// Connections opened and dropped per port.
const FLOOD: usize = 3000;
/// The broker's resident memory may not pass this.
const RSS_CEILING: u64 = 200 * 1024 * 1024;
/// Every call of a steady client must end within this.
const CALL_LIMIT: Duration = Duration::from_secs(10);

struct Stack {
    dir: tempfile::TempDir,
    grpc: u16,
    rest: u16,
    gateway_port: u16,
    broker: Proc,
    _sim: Proc,
    worker: Proc,
    gateway: Proc,
}

impl Stack {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim_port = procs::free_port();
        let sim = procs::sim(
            sim_port,
            &["--latency-ms", "5"],
            &dir.path().join("sim.log"),
        );
        let (grpc, rest, gateway_port) =
            (procs::free_port(), procs::free_port(), procs::free_port());
        let cap = CAP.to_string();
        let broker = procs::broker(
            grpc,
            rest,
            &dir.path().join("data"),
            &[
                "--max-message-bytes",
                &MAX_MESSAGE.to_string(),
                "--max-metadata-bytes",
                &MAX_METADATA.to_string(),
                "--max-grpc-connections",
                &cap,
                "--max-rest-connections",
                &cap,
            ],
            &dir.path().join("broker.log"),
        );
        let sim_url = format!("http://127.0.0.1:{sim_port}");
        let mut worker = procs::bin();
        worker
            .args(["worker", "--broker", &format!("127.0.0.1:{grpc}")])
            .args(["--metrics-port", "0", "--config"])
            .arg(dir.path().join("config"))
            .env("OPENAI_API_KEY", "sk-test")
            .env("ANTHROPIC_API_KEY", "sk-test")
            .env("LLM_ROUTER__ENDPOINTS__OPENAI__BASE_URL", &sim_url)
            .env("LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__BASE_URL", &sim_url)
            .env("LLM_ROUTER__ENDPOINTS__ANTHROPIC__BASE_URL", &sim_url);
        let worker = Proc::spawn(worker, &dir.path().join("worker.log"));
        let mut gateway = procs::bin();
        gateway
            .args(["gateway", "--broker", &format!("127.0.0.1:{grpc}")])
            .args(["--listen", &format!("127.0.0.1:{gateway_port}")])
            .args(["--max-connections", &cap])
            .args(["--max-body", &MAX_BODY.to_string(), "--config"])
            .arg(dir.path().join("config"));
        let gateway = Proc::spawn(gateway, &dir.path().join("gateway.log"));
        procs::wait_port(gateway_port, Duration::from_secs(20), "the gateway");
        Self {
            dir,
            grpc,
            rest,
            gateway_port,
            broker,
            _sim: sim,
            worker,
            gateway,
        }
    }

    fn addr(&self, port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    fn chat_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/chat/completions", self.gateway_port)
    }

    async fn raw(&self) -> KubemqClient<Channel> {
        KubemqClient::connect(self.grpc_url())
            .await
            .expect("connect to the broker")
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024)
    }
}

// ---------------------------------------------------------------------------------------
// Steady clients: every call must succeed, whatever the hostile ones do.

/// What the steady clients did; any failure is listed.
#[derive(Default)]
struct Steady {
    queue_rounds: AtomicUsize,
    events_sent: AtomicUsize,
    events_received: AtomicUsize,
    chats: AtomicUsize,
    failures: parking_lot::Mutex<Vec<String>>,
}

impl Steady {
    fn fail(&self, what: String) {
        self.failures.lock().push(what);
    }
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_LIMIT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {CALL_LIMIT:?}")),
    }
}

/// Sends a queue message and receives it back, every 50 ms.
async fn steady_queue(mut client: KubemqClient<Channel>, s: Arc<Steady>, stop: Arc<AtomicBool>) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let body = format!("steady {i}").into_bytes();
        let msg = QueueMessage {
            client_id: "steady".into(),
            channel: "hostile.steady".into(),
            body: body.clone(),
            ..QueueMessage::default()
        };
        match bounded("queue send", client.send_queue_message(msg)).await {
            Ok(r) if !r.get_ref().is_error => {}
            Ok(r) => s.fail(format!("queue send: {}", r.get_ref().error)),
            Err(e) => s.fail(e),
        }
        let receive = ReceiveQueueMessagesRequest {
            client_id: "steady".into(),
            channel: "hostile.steady".into(),
            max_number_of_messages: 1,
            wait_time_seconds: 2,
            ..ReceiveQueueMessagesRequest::default()
        };
        match bounded("queue receive", client.receive_queue_messages(receive)).await {
            Ok(r) if r.get_ref().messages.first().map(|m| &m.body) == Some(&body) => {
                s.queue_rounds.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => s.fail(format!("queue receive: {:?}", r.get_ref())),
            Err(e) => s.fail(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes an event every 50 ms to a channel `steady_events_reader` subscribes to.
async fn steady_events(mut client: KubemqClient<Channel>, s: Arc<Steady>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let event = Event {
            client_id: "steady".into(),
            channel: "hostile.events".into(),
            body: b"tick".to_vec(),
            store: false,
            ..Event::default()
        };
        match bounded("event send", client.send_event(event)).await {
            Ok(r) if r.get_ref().sent => {
                s.events_sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => s.fail(format!("event send: {}", r.get_ref().error)),
            Err(e) => s.fail(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Counts the events of [`steady_events`]; subscribed before any is sent.
async fn subscribe_events(
    mut client: KubemqClient<Channel>,
    s: Arc<Steady>,
) -> tokio::task::JoinHandle<()> {
    let sub = Subscribe {
        subscribe_type_data: SubscribeType::Events as i32,
        client_id: "steady-reader".into(),
        channel: "hostile.events".into(),
        ..Subscribe::default()
    };
    let mut stream = client
        .subscribe_to_events(sub)
        .await
        .expect("subscribe")
        .into_inner();
    tokio::spawn(async move {
        while let Ok(Some(_)) = stream.message().await {
            s.events_received.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// One chat through the gateway at a time, 100 ms apart, on one kept-alive connection.
async fn steady_chats(url: String, s: Arc<Steady>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let body =
        serde_json::json!({"model": "openai", "messages": [{"role": "user", "content": "hi"}]});
    while !stop.load(Ordering::Relaxed) {
        match bounded("chat", http.post(&url).json(&body).send()).await {
            Ok(r) if r.status().is_success() => {
                s.chats.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => s.fail(format!("chat: {}", r.status())),
            Err(e) => s.fail(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Samples the broker's VmRSS every 100 ms until `stop`; the peak is in `peak`.
fn sample_rss(
    pid: u32,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(rss) = procs::rss_bytes(pid) {
                peak.fetch_max(rss, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

// ---------------------------------------------------------------------------------------
// Oversize names, bodies and metadata.

fn event(channel: &str, body: Vec<u8>, metadata: String) -> Event {
    Event {
        client_id: "hostile".into(),
        channel: channel.into(),
        body,
        metadata,
        ..Event::default()
    }
}

/// Channel names over 246 bytes on every kind of call: Error 150.
async fn oversize_names(client: &mut KubemqClient<Channel>, rest: &str, http: &reqwest::Client) {
    for len in [247, 4096, 200_000] {
        let name = "n".repeat(len);
        let refused = client
            .send_event(event(&name, b"x".to_vec(), String::new()))
            .await
            .expect_err("a long name");
        assert!(refused.message().starts_with("Error 150:"), "{refused:?}");
        let queued = client
            .send_queue_message(QueueMessage {
                client_id: "hostile".into(),
                channel: name.clone(),
                body: b"x".to_vec(),
                ..QueueMessage::default()
            })
            .await
            .expect("queue errors come in-band")
            .into_inner();
        assert!(queued.error.starts_with("Error 150:"), "{}", queued.error);
        let sub = Subscribe {
            subscribe_type_data: SubscribeType::Events as i32,
            client_id: "hostile".into(),
            channel: name.clone(),
            ..Subscribe::default()
        };
        let refused = client
            .subscribe_to_events(sub)
            .await
            .expect_err("subscribe");
        assert!(refused.message().starts_with("Error 150:"), "{refused:?}");
        let body = serde_json::json!({"Channel": name, "ClientID": "hostile", "BodyString": "x"});
        let answer: serde_json::Value = http
            .post(format!("{rest}/send/event"))
            .json(&body)
            .send()
            .await
            .expect("REST send")
            .json()
            .await
            .expect("REST envelope");
        assert_eq!(answer["is_error"], true, "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("Error 150:"), "{answer}");
    }
}

/// Bodies over the message limit (gRPC, REST) and the gateway's body limit, several at
/// once; metadata over 1 MiB. Returns how many were refused.
async fn oversize_messages(
    client: &KubemqClient<Channel>,
    rest: &str,
    chat_url: &str,
    http: &reqwest::Client,
) -> usize {
    let big = vec![b'b'; MAX_MESSAGE + 1024 * 1024];
    let grpc = (0..8).map(|_| {
        let mut c = client.clone();
        let e = event("hostile.big", big.clone(), String::new());
        async move {
            let refused = c.send_event(e).await.expect_err("over the message limit");
            // README says RESOURCE_EXHAUSTED (as KubeMQ's grpc-go answers); tonic's decoder
            // answers OUT_OF_RANGE. Either refuses the message; the code is reported.
            assert!(
                matches!(
                    refused.code(),
                    tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
                ),
                "{refused:?}"
            );
            assert!(
                refused
                    .message()
                    .contains("decoded message length too large"),
                "{refused:?}"
            );
        }
    });
    let rest_body = serde_json::json!({
        "Channel": "hostile.big", "ClientID": "hostile",
        "BodyString": "b".repeat(MAX_MESSAGE + 1024 * 1024),
    })
    .to_string();
    let rest_calls = (0..8).map(|_| {
        let request = http
            .post(format!("{rest}/send/event"))
            .header("content-type", "application/json")
            .body(rest_body.clone());
        async move {
            let r = request.send().await.expect("REST send");
            assert_eq!(r.status(), 413, "REST over the message limit");
        }
    });
    let chat_body = serde_json::json!({
        "model": "openai",
        "messages": [{"role": "user", "content": "c".repeat(MAX_BODY + 1024)}],
    })
    .to_string();
    let chats = (0..8).map(|_| {
        let request = http
            .post(chat_url)
            .header("content-type", "application/json")
            .body(chat_body.clone());
        async move {
            let r = request.send().await.expect("gateway send");
            assert_eq!(r.status(), 413, "gateway over --max-body");
        }
    });
    tokio::join!(join_all(grpc), join_all(rest_calls), join_all(chats));

    let mut c = client.clone();
    let metadata = "m".repeat(MAX_METADATA + 1024);
    let refused = c
        .send_event(event("hostile.meta", b"x".to_vec(), metadata.clone()))
        .await
        .expect_err("metadata over 1 MiB");
    assert!(refused.message().starts_with("Error 151:"), "{refused:?}");
    let queued = c
        .send_queue_message(QueueMessage {
            client_id: "hostile".into(),
            channel: "hostile.meta".into(),
            metadata,
            body: b"x".to_vec(),
            ..QueueMessage::default()
        })
        .await
        .expect("queue errors come in-band")
        .into_inner();
    assert!(queued.error.starts_with("Error 151:"), "{}", queued.error);
    26
}

// ---------------------------------------------------------------------------------------
// Connection floods and the caps.

/// Opens `n` connections to `addr`, 64 at a time, and drops each at once: a third
/// silently, a third after a few random bytes, a third with a reset (SO_LINGER 0).
async fn flood(addr: std::net::SocketAddr, n: usize, seed: u64) -> usize {
    use futures::stream::{self, StreamExt};
    let opened = AtomicUsize::new(0);
    stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let opened = &opened;
            async move {
                let Ok(mut conn) = TcpStream::connect(addr).await else {
                    return;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                match i % 3 {
                    0 => {}
                    1 => {
                        let junk: Vec<u8> = StdRng::seed_from_u64(seed + i as u64)
                            .sample_iter(rand::distributions::Standard)
                            .take(64)
                            .collect();
                        let _ = conn.write_all(&junk).await;
                    }
                    _ => {
                        // With a zero linger the close is a reset and never blocks.
                        #[expect(deprecated, reason = "SO_LINGER 0 is the reset wanted here")]
                        let _ = conn.set_linger(Some(Duration::ZERO));
                    }
                }
            }
        })
        .await;
    opened.into_inner()
}

/// Opens `n` connections at once and holds them: those the server closed at once (over
/// its cap) and those it kept. The kept ones are returned, to be dropped by the caller.
async fn hold(addr: std::net::SocketAddr, n: usize) -> (usize, Vec<TcpStream>) {
    let conns = join_all((0..n).map(|_| async move {
        let mut conn = TcpStream::connect(addr).await.ok()?;
        let mut byte = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(700), conn.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            // The gRPC server speaks first (SETTINGS); HTTP servers wait for a request.
            Ok(Ok(_)) | Err(_) => Some(conn),
        }
    }))
    .await;
    let kept: Vec<TcpStream> = conns.into_iter().flatten().collect();
    (n - kept.len(), kept)
}

/// Floods each port, then holds more connections than its cap allows, then checks a new
/// client is served again once they are gone.
async fn floods_and_caps(stack: &Stack) -> Vec<(String, usize, usize, usize)> {
    let ports = [
        ("grpc", stack.grpc),
        ("rest", stack.rest),
        ("gateway", stack.gateway_port),
    ];
    let floods = ports
        .iter()
        .enumerate()
        .map(|(i, (_, port))| flood(stack.addr(*port), FLOOD, 1000 * i as u64));
    let opened = join_all(floods).await;
    let holds = ports
        .iter()
        .map(|(_, port)| hold(stack.addr(*port), CAP + 64));
    let held = join_all(holds).await;
    let mut report = Vec::new();
    for (((name, _), opened), (closed, kept)) in ports.iter().zip(opened).zip(held) {
        assert!(
            closed >= 64,
            "{name}: {closed} of {} closed at the cap",
            CAP + 64
        );
        assert!(
            kept.len() <= CAP,
            "{name}: {} held, over the cap of {CAP}",
            kept.len()
        );
        report.push(((*name).to_owned(), opened, closed, kept.len()));
        drop(kept);
    }
    report
}

/// Waits until a new client is served on every port (the slots of the dropped
/// connections came back).
async fn fresh_clients_served(stack: &Stack) -> Duration {
    let started = Instant::now();
    let http = reqwest::Client::new();
    let urls = [
        format!("http://127.0.0.1:{}/health", stack.rest),
        format!("http://127.0.0.1:{}/health", stack.gateway_port),
    ];
    loop {
        let mut ok = true;
        for url in &urls {
            let r = http.get(url).send().await;
            ok &= r.is_ok_and(|r| r.status().is_success());
        }
        if let Ok(mut c) = KubemqClient::connect(stack.grpc_url()).await {
            ok &= c.ping(llm_router::kubemq::Empty {}).await.is_ok();
        } else {
            ok = false;
        }
        if ok {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "new clients not served after the flood"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Slow loris.

/// How a slow client is treated: sends `head`, then one byte of `trickle` per second
/// (nothing when it is empty); returns when the server closed the connection, or None if
/// it still had not after `limit`.
async fn loris(
    addr: std::net::SocketAddr,
    head: &'static [u8],
    trickle: &'static [u8],
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(head).await.ok()?;
    let mut next = trickle.iter().cycle();
    let mut buf = [0u8; 1024];
    while started.elapsed() < limit {
        tokio::select! {
            read = conn.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                // A response (a 400 or 408) before the close is fine.
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if let Some(b) = next.next() {
                    if conn.write_all(&[*b]).await.is_err() {
                        return Some(started.elapsed());
                    }
                }
            }
        }
    }
    None
}

const HEAD_START: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n";
const HEADER_TRICKLE: &[u8] = b"X-Slow-Header-Name-That-Never-Ends";
const STALLED_BODY: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":";
const STALLED_REST_BODY: &[u8] = b"POST /send/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"Channel\":";

/// Per HTTP port: trickled heads (cut at the 10 s head deadline), idle connections that
/// never send a byte, and bodies that stall after their first bytes (cut after 30 s).
/// Returns (what, port name, when the server closed it).
async fn slow_loris(stack: &Stack) -> Vec<(&'static str, &'static str, Option<Duration>)> {
    let limit = Duration::from_secs(45);
    let mut cases = Vec::new();
    for (name, port, body) in [
        ("rest", stack.rest, STALLED_REST_BODY),
        ("gateway", stack.gateway_port, STALLED_BODY),
    ] {
        let addr = stack.addr(port);
        for _ in 0..5 {
            cases.push((
                "trickled head",
                name,
                loris(addr, HEAD_START, HEADER_TRICKLE, limit),
            ));
        }
        for _ in 0..3 {
            cases.push(("idle", name, loris(addr, b"", b"", limit)));
            cases.push(("stalled body", name, loris(addr, body, b"", limit)));
        }
    }
    // The gRPC listener hands a connection to HTTP/2 only once its first byte arrives,
    // within the same 10 s as an HTTP head.
    cases.push((
        "idle",
        "grpc",
        loris(stack.addr(stack.grpc), b"", b"", Duration::from_secs(35)),
    ));
    let (labels, calls): (Vec<_>, Vec<_>) = cases.into_iter().map(|(w, n, f)| ((w, n), f)).unzip();
    let closed = join_all(calls).await;
    labels
        .into_iter()
        .zip(closed)
        .map(|((what, name), at)| (what, name, at))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Garbage on the gRPC port.

const METHODS: [&str; 7] = [
    "SendEvent",
    "SendRequest",
    "SendQueueMessage",
    "SendQueueMessagesBatch",
    "ReceiveQueueMessages",
    "AckAllQueueMessages",
    "QueuesInfo",
];

/// Random bytes as the protobuf of unary calls (valid gRPC framing). Every call must end
/// within 5 s, with an answer or an error status; returns how many got an error.
async fn garbage_protobuf(channel: Channel, n: usize, seed: u64) -> usize {
    let calls = (0..n).map(|i| {
        let mut rng = StdRng::seed_from_u64(seed + i as u64);
        let len = rng.gen_range(0..2048);
        let body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let method = METHODS[i % METHODS.len()];
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        async move {
            let call = async {
                grpc.ready()
                    .await
                    .map_err(|e| Status::unknown(e.to_string()))?;
                let path = tonic::codegen::http::uri::PathAndQuery::try_from(format!(
                    "/kubemq.kubemq/{method}"
                ))
                .map_err(|e| Status::unknown(e.to_string()))?;
                grpc.unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
                    .await
            };
            let ended = tokio::time::timeout(Duration::from_secs(5), call).await;
            assert!(ended.is_ok(), "{method} with garbage hung");
            ended.is_ok_and(|r| r.is_err())
        }
    });
    join_all(calls).await.into_iter().filter(|e| *e).count()
}

/// Raw bytes on the gRPC port: random junk, and the HTTP/2 preface followed by junk
/// frames. The server must close each connection within 5 s; returns how many it did.
async fn garbage_frames(addr: std::net::SocketAddr, n: usize, seed: u64) -> usize {
    use futures::stream::{self, StreamExt};
    let closed = AtomicUsize::new(0);
    stream::iter(0..n)
        .for_each_concurrent(32, |i| {
            let closed = &closed;
            async move {
                let mut rng = StdRng::seed_from_u64(seed + i as u64);
                let mut junk = Vec::new();
                if i % 2 == 1 {
                    junk.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
                }
                let len = rng.gen_range(1..4096);
                junk.extend((0..len).map(|_| rng.gen::<u8>()));
                let Ok(mut conn) = TcpStream::connect(addr).await else {
                    return;
                };
                let _ = conn.write_all(&junk).await;
                let mut sink = Vec::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut sink));
                if read.await.is_ok() {
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    closed.into_inner()
}

// ---------------------------------------------------------------------------------------

/// Waits until a chat through the gateway succeeds (the worker is subscribed).
async fn wait_chat(url: &str) {
    let http = reqwest::Client::new();
    let body =
        serde_json::json!({"model": "openai", "messages": [{"role": "user", "content": "hi"}]});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http.post(url).json(&body).send().await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "no chat succeeded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_leave_steady_clients_unharmed_and_memory_bounded() {
    let started = Instant::now();
    let stack = tokio::task::block_in_place(Stack::start);
    wait_chat(&stack.chat_url()).await;
    let rss_before = procs::rss_bytes(stack.broker.pid()).unwrap_or_default();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(stack.broker.pid(), peak.clone(), stop.clone());

    let steady = Arc::new(Steady::default());
    let reader = subscribe_events(stack.raw().await, steady.clone()).await;
    let steady_tasks = [
        tokio::spawn(steady_queue(
            stack.raw().await,
            steady.clone(),
            stop.clone(),
        )),
        tokio::spawn(steady_events(
            stack.raw().await,
            steady.clone(),
            stop.clone(),
        )),
        tokio::spawn(steady_chats(stack.chat_url(), steady.clone(), stop.clone())),
    ];

    let http = reqwest::Client::new();
    let rest = format!("http://127.0.0.1:{}", stack.rest);
    let loris = slow_loris(&stack);
    let barrage = async {
        let mut client = stack.raw().await;
        oversize_names(&mut client, &rest, &http).await;
        let refused = oversize_messages(&client, &rest, &stack.chat_url(), &http).await;
        let caps = floods_and_caps(&stack).await;
        let served_again = fresh_clients_served(&stack).await;
        let channel = Channel::from_shared(stack.grpc_url())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let errors = garbage_protobuf(channel, 600, 7).await;
        let closed = garbage_frames(stack.addr(stack.grpc), 600, 9).await;
        (refused, caps, served_again, errors, closed)
    };
    let (loris, (refused, caps, served_again, garbage_errors, garbage_closed)) =
        tokio::join!(loris, barrage);

    // Let the steady clients run a moment past the last hostile call, then stop them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for task in steady_tasks {
        task.await.expect("steady client");
    }
    let sent = steady.events_sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while steady.events_received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader.abort();
    let _ = sampler.join();
    let peak = peak.load(Ordering::Relaxed);

    let failures = steady.failures.lock().clone();
    eprintln!(
        "hostile: {refused} oversize calls refused; floods and caps (port, opened, closed at \
         the cap, held): {caps:?}; new clients served {served_again:.1?} after; {garbage_errors} \
         of 600 garbage protobuf calls got an error status, {garbage_closed} of 600 junk \
         connections closed by the broker; slow loris (kind, port, closed after): {loris:?}; \
         steady: {} queue rounds, {sent} events sent, {} received, {} chats, {} failures; \
         broker RSS {} MiB before, {} MiB peak; whole test {:.1?}",
        steady.queue_rounds.load(Ordering::Relaxed),
        steady.events_received.load(Ordering::Relaxed),
        steady.chats.load(Ordering::Relaxed),
        failures.len(),
        rss_before / (1024 * 1024),
        peak / (1024 * 1024),
        started.elapsed()
    );
    assert!(failures.is_empty(), "steady clients failed: {failures:?}");
    assert_eq!(
        steady.events_received.load(Ordering::Relaxed),
        sent,
        "every steady event arrived"
    );
    assert!(
        steady.chats.load(Ordering::Relaxed) > 100,
        "chats kept coming"
    );
    assert!(peak < RSS_CEILING, "broker RSS peaked at {peak} bytes");
    assert_eq!(
        garbage_closed, 600,
        "the broker closed every junk connection"
    );
    for (what, port, closed) in &loris {
        let closed = closed.unwrap_or_else(|| panic!("{what} on {port} never cut off"));
        let (low, high) = match *what {
            "stalled body" => (Duration::from_secs(25), Duration::from_secs(40)),
            _ => (Duration::from_secs(8), Duration::from_secs(15)),
        };
        assert!(
            closed >= low && closed <= high,
            "{what} on {port} cut after {closed:?}, not within {low:?}..{high:?}"
        );
    }
    let mut broker = stack.broker;
    assert!(broker.exited().is_none(), "the broker kept running");
    let (mut worker, mut gateway) = (stack.worker, stack.gateway);
    assert!(worker.exited().is_none() && gateway.exited().is_none());
    drop(stack.dir);
}
