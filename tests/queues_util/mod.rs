//! Helpers for the queue tests: message builders and thin wrappers over the raw client.
#![allow(dead_code)]

use llm_router::kubemq::kubemq_client::KubemqClient;
use llm_router::kubemq::*;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

pub type Raw = KubemqClient<Channel>;

pub fn msg(channel: &str, body: &str) -> QueueMessage {
    QueueMessage {
        client_id: "tester".into(),
        channel: channel.into(),
        body: body.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub fn with_policy(
    mut m: QueueMessage,
    exp: i32,
    delay: i32,
    max_rc: i32,
    dlq: &str,
) -> QueueMessage {
    m.policy = Some(QueueMessagePolicy {
        expiration_seconds: exp,
        delay_seconds: delay,
        max_receive_count: max_rc,
        max_receive_queue: dlq.into(),
    });
    m
}

pub async fn send(raw: &mut Raw, m: QueueMessage) -> SendQueueMessageResult {
    raw.send_queue_message(m).await.unwrap().into_inner()
}

pub async fn send_n(raw: &mut Raw, channel: &str, n: usize) {
    let messages = (0..n).map(|i| msg(channel, &format!("m{i}"))).collect();
    let r = raw
        .send_queue_messages_batch(QueueMessagesBatchRequest {
            batch_id: "b".into(),
            messages,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.have_errors, "{r:?}");
}

pub fn receive_req(channel: &str, max: i32, wait: i32, peek: bool) -> ReceiveQueueMessagesRequest {
    ReceiveQueueMessagesRequest {
        request_id: "r1".into(),
        client_id: "tester".into(),
        channel: channel.into(),
        max_number_of_messages: max,
        wait_time_seconds: wait,
        is_peak: peek,
    }
}

pub async fn receive(
    raw: &mut Raw,
    channel: &str,
    max: i32,
    wait: i32,
    peek: bool,
) -> ReceiveQueueMessagesResponse {
    raw.receive_queue_messages(receive_req(channel, max, wait, peek))
        .await
        .unwrap()
        .into_inner()
}

pub fn attrs(m: &QueueMessage) -> QueueMessageAttributes {
    m.attributes.clone().unwrap()
}

pub fn seqs(msgs: &[QueueMessage]) -> Vec<u64> {
    msgs.iter().map(|m| attrs(m).sequence).collect()
}

pub fn bodies(msgs: &[QueueMessage]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

/// A raw QueuesDownstream stream.
pub struct Down {
    pub tx: mpsc::Sender<QueuesDownstreamRequest>,
    pub rx: Streaming<QueuesDownstreamResponse>,
}

impl Down {
    pub async fn open(raw: &mut Raw) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let rx = raw
            .queues_downstream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Self { tx, rx }
    }

    pub async fn send(&mut self, req: QueuesDownstreamRequest) {
        self.tx.send(req).await.unwrap();
    }

    pub async fn get(
        &mut self,
        channel: &str,
        max: i32,
        wait_ms: i32,
        auto_ack: bool,
    ) -> QueuesDownstreamResponse {
        self.send(QueuesDownstreamRequest {
            request_id: "get-1".into(),
            client_id: "tester".into(),
            request_type_data: QueuesDownstreamRequestType::Get as i32,
            channel: channel.into(),
            max_items: max,
            wait_timeout: wait_ms,
            auto_ack,
            ..Default::default()
        })
        .await;
        self.next().await.unwrap()
    }

    pub async fn settle(
        &mut self,
        kind: QueuesDownstreamRequestType,
        txn: &str,
        seqs: Vec<i64>,
        requeue: &str,
    ) {
        self.send(QueuesDownstreamRequest {
            request_id: "settle-1".into(),
            client_id: "tester".into(),
            request_type_data: kind as i32,
            ref_transaction_id: txn.into(),
            sequence_range: seqs,
            re_queue_channel: requeue.into(),
            ..Default::default()
        })
        .await;
    }

    pub async fn next(&mut self) -> Option<QueuesDownstreamResponse> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .unwrap()
            .unwrap()
    }

    /// The next response if one comes within 300 ms.
    pub async fn maybe_next(&mut self) -> Option<QueuesDownstreamResponse> {
        tokio::time::timeout(Duration::from_millis(300), self.rx.message())
            .await
            .ok()
            .and_then(|r| r.unwrap())
    }
}

/// A raw StreamQueueMessage stream.
pub struct Single {
    pub tx: mpsc::Sender<StreamQueueMessagesRequest>,
    pub rx: Streaming<StreamQueueMessagesResponse>,
}

impl Single {
    pub async fn open(raw: &mut Raw) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let rx = raw
            .stream_queue_message(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Self { tx, rx }
    }

    pub async fn request(
        &mut self,
        kind: StreamRequestType,
        channel: &str,
        seq: u64,
        visibility: i32,
        wait: i32,
    ) -> StreamQueueMessagesResponse {
        self.send(kind, channel, seq, visibility, wait).await;
        self.next().await.unwrap()
    }

    pub async fn send(
        &mut self,
        kind: StreamRequestType,
        channel: &str,
        seq: u64,
        visibility: i32,
        wait: i32,
    ) {
        self.tx
            .send(StreamQueueMessagesRequest {
                request_id: format!("req-{}", kind as i32),
                client_id: "tester".into(),
                stream_request_type_data: kind as i32,
                channel: channel.into(),
                visibility_seconds: visibility,
                wait_time_seconds: wait,
                ref_sequence: seq,
                modified_message: None,
            })
            .await
            .unwrap();
    }

    pub async fn next(&mut self) -> Option<StreamQueueMessagesResponse> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .unwrap()
            .unwrap()
    }
}

/// Starts a broker on `dir` again after a stop; `shutdown` released the file, so the
/// open must succeed at once.
pub async fn restart(dir: tempfile::TempDir) -> super::common::TestBroker {
    let config = super::common::config(dir.path());
    super::common::start_broker_with(config, dir).await
}

/// Waits for `cond` (for effects of requests that get no response).
pub async fn eventually(cond: impl Fn() -> bool) {
    super::common::eventually("queue condition", cond).await;
}
