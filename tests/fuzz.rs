//! Robustness: random and malformed requests at every gRPC method (raw protobuf bytes,
//! broken gRPC framing, random field values, oversized messages, random stream traffic)
//! and at every REST endpoint. Before the barrage a known set of queue messages is sent;
//! afterwards the broker must still answer and every one of them must still be there.
//!
//! Seeded: set `FUZZ_SEED` to replay a run; the seed in use is printed on stderr.
//! Bounded: every phase has a case count and every call a timeout.

mod common;

use common::raw_codec::RawCodec;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use llm_router::kubemq::kubemq_client::KubemqClient;
use llm_router::kubemq::{
    AckAllQueueMessagesRequest, Empty, Event, QueueMessage, QueueMessageAttributes,
    QueueMessagePolicy, QueueMessagesBatchRequest, QueuesDownstreamRequest, QueuesInfoRequest,
    QueuesUpstreamRequest, ReceiveQueueMessagesRequest, Request, Response,
    StreamQueueMessagesRequest, Subscribe,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::codegen::http;
use tonic::transport::Channel;
use tonic::{Code, Status};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Broker limit for this test: small, so oversized messages are cheap to make.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Calls in flight at once during a barrage.
const CONCURRENCY: usize = 16;
/// Deadline sent with each call (grpc-timeout) ...
const CALL_DEADLINE: Duration = Duration::from_millis(300);
/// ... and the hard bound the client waits, should the server ignore it.
const CALL_BOUND: Duration = Duration::from_secs(3);
/// How many known messages must survive.
const KEPT: usize = 25;

const UNARY: [&str; 9] = [
    "SendEvent",
    "SendRequest",
    "SendResponse",
    "SendQueueMessage",
    "SendQueueMessagesBatch",
    "ReceiveQueueMessages",
    "AckAllQueueMessages",
    "Ping",
    "QueuesInfo",
];

const STREAMING: [&str; 6] = [
    "SendEventsStream",
    "SubscribeToEvents",
    "SubscribeToRequests",
    "StreamQueueMessage",
    "QueuesDownstream",
    "QueuesUpstream",
];

fn path(method: &str) -> Result<http::uri::PathAndQuery, http::Error> {
    Ok(http::uri::PathAndQuery::try_from(format!(
        "/kubemq.kubemq/{method}"
    ))?)
}

// ---------------------------------------------------------------------------------------
// Random values.

/// Random inputs, biased towards the values validation rules care about.
struct Fuzz {
    rng: StdRng,
}

impl Fuzz {
    fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.rng.gen_range(0..=max);
        (0..len).map(|_| self.rng.gen()).collect()
    }

    fn string(&mut self) -> String {
        const SPECIAL: [&str; 16] = [
            "",
            " ",
            "a b",
            "*",
            ">",
            "a.",
            "a..b",
            "x.*.y",
            "x.>",
            "fuzz",
            "fuzz.q",
            "\u{0}",
            "ünï.cødé",
            "kubemq.cluster.internal.requests",
            "_QUEUES_.x",
            "\t",
        ];
        match self.rng.gen_range(0..10) {
            0..=4 => SPECIAL[self.rng.gen_range(0..SPECIAL.len())].to_owned(),
            5..=7 => (0..self.rng.gen_range(1..24))
                .map(|_| self.rng.gen_range(b' '..=b'~') as char)
                .collect(),
            8 => (0..self.rng.gen_range(1..12))
                .map(|_| self.rng.gen::<char>())
                .collect(),
            _ => "x".repeat(self.rng.gen_range(100..4000)),
        }
    }

    fn int(&mut self) -> i32 {
        const SPECIAL: [i32; 9] = [0, -1, 1, 2, 1000, 3601, 43201, i32::MIN, i32::MAX];
        if self.chance(0.6) {
            SPECIAL[self.rng.gen_range(0..SPECIAL.len())]
        } else {
            self.rng.gen()
        }
    }

    /// Mostly small; sometimes over the broker's limit.
    fn body(&mut self) -> Vec<u8> {
        if self.chance(0.04) {
            vec![b'z'; MAX_MESSAGE_BYTES + self.rng.gen_range(1..4096)]
        } else {
            self.bytes(64)
        }
    }

    fn tags(&mut self) -> HashMap<String, String> {
        const KEYS: [&str; 4] = ["channel_type", "channel", "client_id", "channel_search"];
        const TYPES: [&str; 6] = [
            "events",
            "events_store",
            "commands",
            "queries",
            "queues",
            "?",
        ];
        let mut tags = HashMap::new();
        for key in KEYS {
            if self.chance(0.3) {
                let value = if key == "channel_type" {
                    TYPES[self.rng.gen_range(0..TYPES.len())].to_owned()
                } else {
                    self.string()
                };
                tags.insert(key.to_owned(), value);
            }
        }
        if self.chance(0.2) {
            tags.insert(self.string(), self.string());
        }
        tags
    }

    fn metadata(&mut self) -> String {
        const OPS: [&str; 3] = ["create-channel", "list-channels", "delete-channel"];
        if self.chance(0.3) {
            OPS[self.rng.gen_range(0..OPS.len())].to_owned()
        } else {
            self.string()
        }
    }

    fn event(&mut self) -> Event {
        Event {
            event_id: self.string(),
            client_id: self.string(),
            channel: self.string(),
            metadata: self.metadata(),
            body: self.body(),
            store: self.chance(0.5),
            tags: self.tags(),
        }
    }

    fn request(&mut self) -> Request {
        Request {
            request_id: self.string(),
            request_type_data: self.rng.gen_range(-1..4),
            client_id: self.string(),
            channel: self.string(),
            metadata: self.metadata(),
            body: self.body(),
            reply_channel: self.string(),
            timeout: self.int(),
            cache_key: self.string(),
            cache_ttl: self.int(),
            span: self.bytes(8),
            tags: self.tags(),
        }
    }

    fn response(&mut self) -> Response {
        Response {
            client_id: self.string(),
            request_id: self.string(),
            reply_channel: self.string(),
            metadata: self.metadata(),
            body: self.body(),
            cache_hit: self.chance(0.5),
            timestamp: self.rng.gen(),
            executed: self.chance(0.5),
            error: self.string(),
            span: self.bytes(8),
            tags: self.tags(),
        }
    }

    fn policy(&mut self) -> Option<QueueMessagePolicy> {
        self.chance(0.6).then(|| QueueMessagePolicy {
            expiration_seconds: self.int(),
            delay_seconds: self.int(),
            max_receive_count: self.int(),
            max_receive_queue: self.string(),
        })
    }

    fn queue_message(&mut self) -> QueueMessage {
        QueueMessage {
            message_id: self.string(),
            client_id: self.string(),
            channel: self.string(),
            metadata: self.string(),
            body: self.body(),
            tags: self.tags(),
            attributes: self.chance(0.2).then(|| QueueMessageAttributes {
                sequence: self.rng.gen(),
                receive_count: self.int(),
                ..Default::default()
            }),
            policy: self.policy(),
            topic: self.string(),
            partition: self.int(),
            partition_key: self.string(),
        }
    }

    fn batch(&mut self) -> QueueMessagesBatchRequest {
        let n = self.rng.gen_range(0..5);
        QueueMessagesBatchRequest {
            batch_id: self.string(),
            messages: (0..n).map(|_| self.queue_message()).collect(),
        }
    }

    fn receive(&mut self) -> ReceiveQueueMessagesRequest {
        ReceiveQueueMessagesRequest {
            request_id: self.string(),
            client_id: self.string(),
            channel: self.string(),
            max_number_of_messages: self.int(),
            wait_time_seconds: self.int(),
            is_peak: self.chance(0.5),
        }
    }

    fn ack_all(&mut self) -> AckAllQueueMessagesRequest {
        AckAllQueueMessagesRequest {
            request_id: self.string(),
            client_id: self.string(),
            channel: self.string(),
            wait_time_seconds: self.int(),
        }
    }

    fn subscribe(&mut self) -> Subscribe {
        Subscribe {
            subscribe_type_data: self.rng.gen_range(-1..6),
            client_id: self.string(),
            channel: self.string(),
            group: self.string(),
            events_store_type_data: self.rng.gen_range(-1..8),
            events_store_type_value: self.rng.gen(),
        }
    }

    fn stream_request(&mut self) -> StreamQueueMessagesRequest {
        StreamQueueMessagesRequest {
            request_id: self.string(),
            client_id: self.string(),
            stream_request_type_data: self.rng.gen_range(-1..8),
            channel: self.string(),
            visibility_seconds: self.int(),
            wait_time_seconds: self.int(),
            ref_sequence: self.rng.gen_range(0..4),
            modified_message: self.chance(0.3).then(|| self.queue_message()),
        }
    }

    fn downstream_request(&mut self) -> QueuesDownstreamRequest {
        QueuesDownstreamRequest {
            request_id: self.string(),
            client_id: self.string(),
            request_type_data: self.rng.gen_range(-1..13),
            channel: self.string(),
            max_items: self.int(),
            wait_timeout: self.int(),
            auto_ack: self.chance(0.5),
            re_queue_channel: self.string(),
            sequence_range: (0..self.rng.gen_range(0..4))
                .map(|_| self.rng.gen_range(-2..6))
                .collect(),
            ref_transaction_id: self.string(),
            metadata: self.tags(),
        }
    }

    fn upstream_request(&mut self) -> QueuesUpstreamRequest {
        QueuesUpstreamRequest {
            request_id: self.string(),
            messages: (0..self.rng.gen_range(0..4))
                .map(|_| self.queue_message())
                .collect(),
        }
    }

    /// Garbage shaped like gRPC length-prefixed frames (bad flags, lying lengths).
    fn frames(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..self.rng.gen_range(0..4) {
            let payload = self.bytes(40);
            out.push(
                *[0u8, 1, 2, 0xff]
                    .get(self.rng.gen_range(0..4))
                    .unwrap_or(&0),
            );
            let len = match self.rng.gen_range(0..3) {
                0 => payload.len() as u32,
                1 => self.rng.gen(),
                _ => payload.len() as u32 + 1,
            };
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&payload);
        }
        if self.chance(0.3) {
            out.extend(self.bytes(7));
        }
        out
    }

    /// A JSON body for REST: random bytes, broken JSON, or an object with known keys
    /// and values of random types.
    fn rest_body(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..4) {
            0 => self.bytes(200),
            1 => {
                const BROKEN: [&str; 8] =
                    ["{", "}", "[", "null", "true", "\"x\"", "1e999", "{\"a\":}"];
                BROKEN[self.rng.gen_range(0..BROKEN.len())]
                    .as_bytes()
                    .to_vec()
            }
            _ => self.json_object().to_string().into_bytes(),
        }
    }

    fn json_object(&mut self) -> serde_json::Value {
        const KEYS: [&str; 16] = [
            "ClientID",
            "clientid",
            "Channel",
            "Body",
            "BodyString",
            "Metadata",
            "Timeout",
            "RequestTypeData",
            "Messages",
            "Policy",
            "MaxNumberOfMessages",
            "WaitTimeSeconds",
            "IsPeak",
            "Tags",
            "RequestID",
            "ReplyChannel",
        ];
        let mut map = serde_json::Map::new();
        for _ in 0..self.rng.gen_range(0..8) {
            let key = KEYS[self.rng.gen_range(0..KEYS.len())].to_owned();
            let value = self.json_value(2);
            map.insert(key, value);
        }
        serde_json::Value::Object(map)
    }

    fn json_value(&mut self, depth: u32) -> serde_json::Value {
        use serde_json::{json, Value};
        match self.rng.gen_range(0..if depth == 0 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.chance(0.5)),
            // Small waits and timeouts mostly, so REST calls do not all block.
            2 => json!(self.rng.gen_range(-3..3)),
            3 => json!(self.int()),
            4 => json!(self.rng.gen::<f64>() * 1e12),
            5 => json!(self.string()),
            6 => Value::Array((0..3).map(|_| self.json_value(depth - 1)).collect()),
            _ => self.json_object(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Calls.

/// What the barrage saw, to show it reached past validation.
#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    errors: HashMap<String, usize>,
    unbounded: usize,
}

impl Tally {
    fn add(&mut self, outcome: Option<Result<(), Status>>) {
        match outcome {
            Some(Ok(())) => self.ok += 1,
            Some(Err(status)) => {
                *self
                    .errors
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1
            }
            None => self.unbounded += 1,
        }
    }
}

/// Runs `calls` with bounded concurrency, each bounded by [`CALL_BOUND`].
async fn barrage<F>(calls: Vec<F>) -> Tally
where
    F: Future<Output = Result<(), Status>>,
{
    let outcomes: Vec<_> = stream::iter(calls)
        .map(|call| async move { tokio::time::timeout(CALL_BOUND, call).await.ok() })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut tally = Tally::default();
    outcomes.into_iter().for_each(|o| tally.add(o));
    tally
}

fn deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_DEADLINE);
    request
}

async fn raw_unary(channel: Channel, method: &'static str, body: Bytes) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let path = path(method).map_err(|e| Status::unknown(e.to_string()))?;
    grpc.unary(deadline(body), path, RawCodec).await.map(drop)
}

/// Opens a bidirectional raw stream, sends `messages`, reads for a short while.
async fn raw_streaming(
    channel: Channel,
    method: &'static str,
    messages: Vec<Bytes>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let path = path(method).map_err(|e| Status::unknown(e.to_string()))?;
    let input = stream::iter(messages);
    let response = grpc.streaming(deadline(input), path, RawCodec).await?;
    drain(response.into_inner()).await
}

/// Reads a response stream until it ends, fails, or 300 ms pass.
async fn drain<T>(mut stream: tonic::Streaming<T>) -> Result<(), Status> {
    let reading = async {
        while let Some(item) = stream.next().await {
            item?;
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_millis(300), reading)
        .await
        .unwrap_or(Ok(()))
}

/// Sends `body` as the whole HTTP/2 request body, framing and all.
async fn raw_http(channel: Channel, method: String, body: Vec<u8>) -> Result<(), Status> {
    use tonic::codegen::Service;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://fuzz/kubemq.kubemq/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::boxed(axum::body::Body::from(body)))
        .map_err(|e| Status::unknown(e.to_string()))?;
    let mut svc = channel;
    futures::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let response = svc
        .call(request)
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    if response.status() != http::StatusCode::OK {
        return Err(Status::unknown(format!("HTTP {}", response.status())));
    }
    let trailers_only = Status::from_header_map(response.headers());
    let body = axum::body::Body::new(response.into_body());
    // An open stream (the garbage happened to be a valid subscription) is fine too.
    let read = tokio::time::timeout(
        Duration::from_millis(500),
        axum::body::to_bytes(body, 1 << 20),
    );
    if let Ok(Err(e)) = read.await {
        return Err(Status::unknown(e.to_string()));
    }
    match trailers_only {
        Some(status) if status.code() != Code::Ok => Err(status),
        _ => Ok(()),
    }
}

/// One random typed call to `method` through the generated client.
fn typed_unary(
    fuzz: &mut Fuzz,
    mut client: KubemqClient<Channel>,
    method: &str,
) -> futures::future::BoxFuture<'static, Result<(), Status>> {
    macro_rules! call {
        ($rpc:ident, $msg:expr) => {{
            let msg = $msg;
            Box::pin(async move { client.$rpc(deadline(msg)).await.map(drop) })
        }};
    }
    match method {
        "SendEvent" => call!(send_event, fuzz.event()),
        "SendRequest" => call!(send_request, fuzz.request()),
        "SendResponse" => call!(send_response, fuzz.response()),
        "SendQueueMessage" => call!(send_queue_message, fuzz.queue_message()),
        "SendQueueMessagesBatch" => call!(send_queue_messages_batch, fuzz.batch()),
        "ReceiveQueueMessages" => call!(receive_queue_messages, fuzz.receive()),
        "AckAllQueueMessages" => call!(ack_all_queue_messages, fuzz.ack_all()),
        "QueuesInfo" => call!(
            queues_info,
            QueuesInfoRequest {
                request_id: fuzz.string(),
                queue_name: fuzz.string(),
            }
        ),
        _ => call!(ping, Empty {}),
    }
}

/// One random typed stream on `method`, fed `n` random messages.
fn typed_stream(
    fuzz: &mut Fuzz,
    mut client: KubemqClient<Channel>,
    method: &str,
    n: usize,
) -> futures::future::BoxFuture<'static, Result<(), Status>> {
    macro_rules! bidi {
        ($rpc:ident, $gen:ident) => {{
            let input: Vec<_> = (0..n).map(|_| fuzz.$gen()).collect();
            Box::pin(async move {
                let response = client.$rpc(deadline(stream::iter(input))).await?;
                drain(response.into_inner()).await
            })
        }};
    }
    macro_rules! server {
        ($rpc:ident) => {{
            let sub = fuzz.subscribe();
            Box::pin(async move { drain(client.$rpc(deadline(sub)).await?.into_inner()).await })
        }};
    }
    match method {
        "SendEventsStream" => bidi!(send_events_stream, event),
        "SubscribeToEvents" => server!(subscribe_to_events),
        "SubscribeToRequests" => server!(subscribe_to_requests),
        "StreamQueueMessage" => bidi!(stream_queue_message, stream_request),
        "QueuesDownstream" => bidi!(queues_downstream, downstream_request),
        _ => bidi!(queues_upstream, upstream_request),
    }
}

// ---------------------------------------------------------------------------------------
// The test.

fn seed() -> u64 {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("fuzz: FUZZ_SEED={seed}");
    seed
}

/// The messages that must survive: one queue no random name can hit.
async fn send_kept(
    client: &mut KubemqClient<Channel>,
    queue: &str,
) -> Result<Vec<Vec<u8>>, Status> {
    let mut bodies = Vec::new();
    for i in 0..KEPT {
        let body = format!("kept-{i}-{}", "k".repeat(i * 97)).into_bytes();
        let result = client
            .send_queue_message(QueueMessage {
                client_id: "fuzz-keeper".to_owned(),
                channel: queue.to_owned(),
                body: body.clone(),
                tags: HashMap::from([("i".to_owned(), i.to_string())]),
                ..Default::default()
            })
            .await?
            .into_inner();
        if result.is_error {
            return Err(Status::internal(result.error));
        }
        bodies.push(body);
    }
    Ok(bodies)
}

async fn phase_raw_grpc(fuzz: &mut Fuzz, channel: &Channel) -> Tally {
    let mut calls = Vec::new();
    for method in UNARY {
        for _ in 0..150 {
            let body = Bytes::from(fuzz.bytes(120));
            calls.push(futures::future::Either::Left(raw_unary(
                channel.clone(),
                method,
                body,
            )));
        }
    }
    for method in STREAMING {
        for _ in 0..30 {
            let messages = (0..fuzz.rng.gen_range(0..5))
                .map(|_| Bytes::from(fuzz.bytes(80)))
                .collect();
            calls.push(futures::future::Either::Right(raw_streaming(
                channel.clone(),
                method,
                messages,
            )));
        }
    }
    barrage(calls).await
}

async fn phase_framing(fuzz: &mut Fuzz, channel: &Channel) -> Tally {
    let mut calls = Vec::new();
    for method in UNARY
        .iter()
        .chain(STREAMING.iter())
        .chain(["Nope", ""].iter())
    {
        for _ in 0..25 {
            calls.push(raw_http(
                channel.clone(),
                (*method).to_owned(),
                fuzz.frames(),
            ));
        }
    }
    barrage(calls).await
}

async fn phase_typed(fuzz: &mut Fuzz, client: &KubemqClient<Channel>) -> Tally {
    let mut calls = Vec::new();
    for method in UNARY {
        for _ in 0..250 {
            calls.push(typed_unary(fuzz, client.clone(), method));
        }
    }
    for method in STREAMING {
        for _ in 0..40 {
            let n = fuzz.rng.gen_range(0..12);
            calls.push(typed_stream(fuzz, client.clone(), method, n));
        }
    }
    barrage(calls).await
}

/// Every unary call carrying a body over the limit gets a clear size error.
async fn check_oversized(client: &mut KubemqClient<Channel>) -> TestResult {
    let body = vec![b'o'; MAX_MESSAGE_BYTES + 1];
    let msg = QueueMessage {
        client_id: "c".to_owned(),
        channel: "fuzz.big".to_owned(),
        body: body.clone(),
        ..Default::default()
    };
    let outcomes = [
        client.send_queue_message(msg.clone()).await.map(drop),
        client
            .send_queue_messages_batch(QueueMessagesBatchRequest {
                batch_id: "b".to_owned(),
                messages: vec![msg],
            })
            .await
            .map(drop),
        client
            .send_event(Event {
                client_id: "c".to_owned(),
                channel: "fuzz.big".to_owned(),
                body: body.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        client
            .send_request(Request {
                request_type_data: 2,
                client_id: "c".to_owned(),
                channel: "fuzz.big".to_owned(),
                body: body.clone(),
                timeout: 1000,
                ..Default::default()
            })
            .await
            .map(drop),
    ];
    for outcome in outcomes {
        let Err(status) = outcome else {
            return Err("an oversized message was accepted".into());
        };
        assert!(
            matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
            "{status:?}"
        );
        assert!(status.message().contains("too large"), "{status:?}");
    }
    Ok(())
}

const REST_POSTS: [&str; 8] = [
    "/send/event",
    "/send/request",
    "/send/response",
    "/queue/send",
    "/queue/send_batch",
    "/queue/receive",
    "/queue/ack_all",
    "/ping",
];

async fn phase_rest(fuzz: &mut Fuzz, base: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()?;
    let mut calls = Vec::new();
    for path in REST_POSTS
        .iter()
        .chain(["/queue/info", "/", "/nope"].iter())
    {
        for _ in 0..100 {
            let mut request = if fuzz.chance(0.8) {
                client.post(format!("{base}{path}"))
            } else {
                client.get(format!("{base}{path}?QueueName={}", fuzz.rng.gen::<u16>()))
            };
            if fuzz.chance(0.85) {
                request = request.header("content-type", "application/json");
            }
            calls.push(request.body(fuzz.rest_body()).send());
        }
    }
    let statuses: Vec<_> = stream::iter(calls)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut answered = 0;
    for outcome in statuses {
        // A client timeout is a long poll the fuzzer asked for; anything else must answer.
        let Ok(response) = outcome else { continue };
        answered += 1;
        let status = response.status();
        assert!(!status.is_server_error(), "REST answered {status}");
    }
    Ok(answered)
}

async fn receive_all(
    client: &mut KubemqClient<Channel>,
    queue: &str,
) -> Result<Vec<Vec<u8>>, Status> {
    let response = client
        .receive_queue_messages(ReceiveQueueMessagesRequest {
            client_id: "fuzz-keeper".to_owned(),
            channel: queue.to_owned(),
            max_number_of_messages: KEPT as i32 + 1,
            wait_time_seconds: 2,
            ..Default::default()
        })
        .await?
        .into_inner();
    if response.is_error {
        return Err(Status::internal(response.error));
    }
    Ok(response.messages.into_iter().map(|m| m.body).collect())
}

/// Pings on its own connection until `stop`; counts answers and failures, so the broker
/// is seen to keep serving during the barrage, not only after it.
fn canary(
    addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let Ok(mut client) = KubemqClient::connect(format!("http://{addr}")).await else {
            return (0, 1);
        };
        let (mut answered, mut failed) = (0, 0);
        while !stop.is_cancelled() {
            match tokio::time::timeout(CALL_BOUND, client.ping(Empty {})).await {
                Ok(Ok(_)) => answered += 1,
                _ => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (answered, failed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_and_malformed_requests_lose_nothing() -> TestResult {
    let started = Instant::now();
    let mut fuzz = Fuzz::new(seed());
    let dir = tempfile::tempdir()?;
    let mut config = common::config(dir.path());
    config.max_message_bytes = MAX_MESSAGE_BYTES;
    let broker = common::start_broker_with(config, dir).await;
    let channel = Channel::from_shared(format!("http://{}", broker.running.grpc_addr))?
        .connect()
        .await?;
    let mut client = KubemqClient::new(channel.clone());
    let kept_queue = format!("fuzz.kept.{}", uuid::Uuid::new_v4().simple());
    let kept = send_kept(&mut client, &kept_queue).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let pings = canary(broker.running.grpc_addr, stop.clone());

    let raw = phase_raw_grpc(&mut fuzz, &channel).await;
    eprintln!("fuzz: raw protobuf {raw:?} after {:?}", started.elapsed());
    let framing = phase_framing(&mut fuzz, &channel).await;
    eprintln!(
        "fuzz: raw framing {framing:?} after {:?}",
        started.elapsed()
    );
    let typed = phase_typed(&mut fuzz, &client).await;
    eprintln!("fuzz: typed {typed:?} after {:?}", started.elapsed());
    check_oversized(&mut client).await?;
    let answered = phase_rest(&mut fuzz, &broker.rest_url()).await?;
    eprintln!(
        "fuzz: REST answered {answered} after {:?}",
        started.elapsed()
    );

    stop.cancel();
    let (answered_pings, failed_pings) = pings.await?;
    eprintln!("fuzz: canary pings answered {answered_pings}, failed {failed_pings}");
    assert!(
        answered_pings > 0 && failed_pings == 0,
        "the broker stopped answering"
    );
    assert!(typed.ok > 0, "no typed call got past validation: {typed:?}");
    assert!(answered > 0, "REST never answered");
    let pong = client.ping(Empty {}).await?.into_inner();
    assert_eq!(pong.version, "v2.4.0");
    let ready = reqwest::get(format!("{}/ready", broker.rest_url())).await?;
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
    let mut got = receive_all(&mut client, &kept_queue).await?;
    got.sort();
    let mut want = kept;
    want.sort();
    assert_eq!(got.len(), want.len(), "kept messages lost");
    assert!(got == want, "kept messages changed");
    eprintln!("fuzz: done in {:?}", started.elapsed());
    broker.stop().await;
    Ok(())
}
