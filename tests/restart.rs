//! Durability across a hard crash: the real binary is killed with SIGKILL after the broker
//! acknowledged queue and events-store messages, then restarted on the same data dir.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

use llm_router::kubemq::kubemq_client::KubemqClient;
use llm_router::kubemq::subscribe::{EventsStoreType, SubscribeType};
use llm_router::kubemq::{
    Event, QueueMessage, QueueMessagesBatchRequest, ReceiveQueueMessagesRequest, Subscribe,
};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

struct Proc {
    child: Child,
    grpc: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn(dir: &std::path::Path) -> Proc {
    let (grpc, rest) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_llm-router"))
        .args([
            "broker",
            "--grpc-port",
            &grpc.to_string(),
            "--rest-port",
            &rest.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn broker binary");
    Proc { child, grpc }
}

async fn connect(port: u16) -> KubemqClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = KubemqClient::connect(format!("http://127.0.0.1:{port}")).await {
            if c.ping(llm_router::kubemq::Empty {}).await.is_ok() {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "broker did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn queue_msg(i: usize) -> QueueMessage {
    QueueMessage {
        client_id: "restart".into(),
        channel: "restart.q".into(),
        body: format!("m{i}").into_bytes(),
        ..Default::default()
    }
}

async fn receive_all(client: &mut KubemqClient<Channel>, max: i32) -> Vec<QueueMessage> {
    let req = ReceiveQueueMessagesRequest {
        client_id: "restart".into(),
        channel: "restart.q".into(),
        max_number_of_messages: max,
        wait_time_seconds: 1,
        ..Default::default()
    };
    let resp = client
        .receive_queue_messages(req)
        .await
        .expect("receive")
        .into_inner();
    assert!(!resp.is_error, "{}", resp.error);
    resp.messages
}

async fn stored_events(client: &mut KubemqClient<Channel>, n: usize) -> Vec<(u64, Vec<u8>)> {
    let sub = Subscribe {
        subscribe_type_data: SubscribeType::EventsStore as i32,
        client_id: format!("reader-{}", llm_router::broker::ids::nuid()),
        channel: "restart.es".into(),
        events_store_type_data: EventsStoreType::StartFromFirst as i32,
        ..Default::default()
    };
    let mut stream = client
        .subscribe_to_events(sub)
        .await
        .expect("subscribe")
        .into_inner();
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("events-store replay stalled")
            .expect("stream ended")
            .expect("stream error");
        out.push((ev.sequence, ev.body));
    }
    out
}

#[tokio::test]
async fn acknowledged_messages_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = spawn(dir.path());
    let mut client = connect(first.grpc).await;
    let batch = QueueMessagesBatchRequest {
        batch_id: "b".into(),
        messages: (0..500).map(queue_msg).collect(),
    };
    let sent = client
        .send_queue_messages_batch(batch)
        .await
        .expect("batch")
        .into_inner();
    assert!(sent.results.iter().all(|r| !r.is_error));
    for i in 0..20 {
        let ev = Event {
            client_id: "restart".into(),
            channel: "restart.es".into(),
            body: format!("e{i}").into_bytes(),
            store: true,
            ..Default::default()
        };
        let r = client
            .send_event(ev)
            .await
            .expect("store event")
            .into_inner();
        assert!(r.sent, "{}", r.error);
    }
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reap");

    let mut second = spawn(dir.path());
    let mut client = connect(second.grpc).await;
    let got = receive_all(&mut client, 1000).await;
    let mut bodies: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into())
        .collect();
    bodies.sort();
    let mut want: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(
        bodies, want,
        "every acknowledged queue message is back after kill -9"
    );
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|m| m.attributes.as_ref())
        .map(|a| a.sequence)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "queue order kept");

    let events = stored_events(&mut client, 20).await;
    let expected: Vec<(u64, Vec<u8>)> = (0..20)
        .map(|i| (i as u64 + 1, format!("e{i}").into_bytes()))
        .collect();
    assert_eq!(
        events, expected,
        "events store keeps messages and sequences"
    );

    // New sends continue the sequences instead of reusing them.
    client
        .send_queue_message(queue_msg(999))
        .await
        .expect("send");
    let next = receive_all(&mut client, 1).await;
    let seq = next[0].attributes.as_ref().map(|a| a.sequence).unwrap_or(0);
    assert!(
        seq > 500,
        "queue sequence continues after restart, got {seq}"
    );
    second.child.kill().ok();
    second.child.wait().ok();
}

#[tokio::test]
async fn unacknowledged_deliveries_come_back_after_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = spawn(dir.path());
    let mut client = connect(first.grpc).await;
    for i in 0..10 {
        let r = client
            .send_queue_message(queue_msg(i))
            .await
            .expect("send")
            .into_inner();
        assert!(!r.is_error, "{}", r.error);
    }
    // A downstream transaction takes all ten and never settles them.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let get = llm_router::kubemq::QueuesDownstreamRequest {
        request_id: "get".into(),
        client_id: "restart".into(),
        request_type_data: llm_router::kubemq::QueuesDownstreamRequestType::Get as i32,
        channel: "restart.q".into(),
        max_items: 10,
        wait_timeout: 1000,
        ..Default::default()
    };
    tx.send(get).await.expect("queue get");
    let mut responses = client
        .queues_downstream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("downstream")
        .into_inner();
    let taken = responses.next().await.expect("response").expect("ok");
    assert_eq!(taken.messages.len(), 10);
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reap");
    drop(tx);

    let mut second = spawn(dir.path());
    let mut client = connect(second.grpc).await;
    let back = receive_all(&mut client, 10).await;
    assert_eq!(
        back.len(),
        10,
        "un-acked deliveries are redelivered after restart"
    );
    second.child.kill().ok();
    second.child.wait().ok();
}
