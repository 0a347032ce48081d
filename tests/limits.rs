//! Every limit at the broker's and gateway's edges, each at the limit (the error text
//! asserted) and just under it (works), over real loopback sockets.
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

mod common;

use axum::routing::post;
use llm_router::broker::config::EdgeLimits;
use llm_router::edge::{self, HttpLimits};
use llm_router::kubemq::request::RequestType;
use llm_router::kubemq::subscribe::SubscribeType;
use llm_router::kubemq::{Event, QueueMessage, Request, Subscribe};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn event(channel: &str) -> Event {
    Event {
        client_id: "limits".into(),
        channel: channel.into(),
        body: b"x".to_vec(),
        ..Event::default()
    }
}

fn queue_message(channel: &str) -> QueueMessage {
    QueueMessage {
        client_id: "limits".into(),
        channel: channel.into(),
        body: b"x".to_vec(),
        ..QueueMessage::default()
    }
}

const NAME_ERROR: &str = "Error 150: invalid channel value, longer than 246 bytes; use a shorter name or raise the broker's --max-channel-name-bytes";

#[tokio::test]
async fn channel_names_up_to_246_bytes_work_and_longer_ones_get_error_150() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let fits = "n".repeat(246);
    let long = "n".repeat(247);
    raw.send_event(event(&fits)).await.expect("246 bytes fit");
    let refused = raw.send_event(event(&long)).await.expect_err("247 bytes");
    assert_eq!(refused.message(), NAME_ERROR);

    let sent = raw
        .send_queue_message(queue_message(&fits))
        .await
        .expect("call")
        .into_inner();
    assert!(!sent.is_error, "{}", sent.error);
    let refused = raw
        .send_queue_message(queue_message(&long))
        .await
        .expect("queue errors come in-band")
        .into_inner();
    assert!(refused.is_error);
    assert_eq!(refused.error, NAME_ERROR);

    let sub = Subscribe {
        subscribe_type_data: SubscribeType::Events as i32,
        client_id: "limits".into(),
        channel: long,
        ..Subscribe::default()
    };
    let refused = raw.subscribe_to_events(sub).await.expect_err("subscribe");
    assert_eq!(refused.message(), NAME_ERROR);
    b.stop().await;
}

#[tokio::test]
async fn metadata_and_tags_up_to_1_mib_work_and_more_gets_error_151() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let max = EdgeLimits::default().max_metadata_bytes;
    let tags = HashMap::from([("k".to_owned(), "v".repeat(max - 2))]);
    let fits = Event {
        metadata: "m".into(),
        tags: tags.clone(),
        ..event("limits.meta")
    };
    raw.send_event(fits.clone())
        .await
        .expect("exactly the limit");
    let over = Event {
        metadata: "mm".into(),
        ..fits
    };
    let refused = raw.send_event(over).await.expect_err("one byte over");
    assert_eq!(
        refused.message(),
        "Error 151: invalid message, metadata and tags are larger than 1048576 bytes; move the data into the body or raise the broker's --max-metadata-bytes"
    );
    let queued = raw
        .send_queue_message(QueueMessage {
            metadata: "mm".into(),
            tags,
            ..queue_message("limits.meta")
        })
        .await
        .expect("call")
        .into_inner();
    assert!(queued.is_error);
    assert!(queued.error.starts_with("Error 151:"), "{}", queued.error);
    b.stop().await;
}

#[tokio::test]
async fn request_timeouts_up_to_an_hour_work_and_longer_get_error_152() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let channel = "limits.q";
    let mut responder = raw
        .subscribe_to_requests(Subscribe {
            subscribe_type_data: SubscribeType::Queries as i32,
            client_id: "responder".into(),
            channel: channel.into(),
            ..Subscribe::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    common::eventually("the responder is subscribed", || {
        b.running
            .broker
            .pubsub
            .subscriber_count(llm_router::broker::pubsub::stats::Kind::Queries, channel)
            == 1
    })
    .await;
    let mut answerer = b.raw().await;
    tokio::spawn(async move {
        while let Some(Ok(req)) = responder.message().await.transpose() {
            let response = llm_router::kubemq::Response {
                client_id: "responder".into(),
                request_id: req.request_id,
                reply_channel: req.reply_channel,
                body: b"pong".to_vec(),
                executed: true,
                ..Default::default()
            };
            let _ = answerer.send_response(response).await;
        }
    });
    let query = |timeout: i32| Request {
        request_type_data: RequestType::Query as i32,
        client_id: "caller".into(),
        channel: channel.into(),
        body: b"ping".to_vec(),
        timeout,
        ..Request::default()
    };
    let answer = raw
        .send_request(query(3_600_000))
        .await
        .expect("an hour is allowed")
        .into_inner();
    assert_eq!(answer.body, b"pong");
    let refused = raw
        .send_request(query(3_600_001))
        .await
        .expect_err("over an hour");
    assert_eq!(
        refused.message(),
        "Error 152: invalid set timeout value, longer than the broker's limit of 3600000 ms; use a shorter timeout or raise the broker's --max-request-timeout"
    );
    b.stop().await;
}

/// Whether the server closes a fresh connection at once (over its cap) or keeps it open.
async fn closed_at_once(addr: std::net::SocketAddr) -> bool {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), conn.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

#[tokio::test]
async fn grpc_and_rest_connections_beyond_their_caps_are_closed_and_slots_come_back() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = common::config(dir.path());
    config.limits.max_grpc_connections = 2;
    config.limits.max_rest_connections = 2;
    let b = common::start_broker_with(config, dir).await;
    let mut first = b.raw().await;
    let mut second = b.raw().await;
    first
        .ping(llm_router::kubemq::Empty {})
        .await
        .expect("first");
    second
        .ping(llm_router::kubemq::Empty {})
        .await
        .expect("second");
    assert!(
        closed_at_once(b.running.grpc_addr).await,
        "a third gRPC connection is over the cap"
    );
    drop(first);
    let mut third = None;
    for _ in 0..50 {
        let url = format!("http://{}", b.running.grpc_addr);
        if let Ok(mut c) = llm_router::kubemq::kubemq_client::KubemqClient::connect(url).await {
            if c.ping(llm_router::kubemq::Empty {}).await.is_ok() {
                third = Some(c);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(third.is_some(), "the slot of a closed connection is reused");

    let rest = b.running.rest_addr;
    let hold_a = TcpStream::connect(rest).await.expect("a");
    let hold_b = TcpStream::connect(rest).await.expect("b");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        closed_at_once(rest).await,
        "a third REST connection is over the cap"
    );
    drop((hold_a, hold_b));
    let http = reqwest::Client::new();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("{}/health", b.rest_url())).send().await {
            ok = r.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "REST answers again once connections close");
    b.stop().await;
}

#[tokio::test]
async fn grpc_calls_beyond_the_per_connection_stream_cap_wait_for_a_free_stream() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = common::config(dir.path());
    config.limits.max_grpc_streams_per_connection = 2;
    let b = common::start_broker_with(config, dir).await;
    let raw = b.raw().await;
    let sub = |n: u32| Subscribe {
        subscribe_type_data: SubscribeType::Events as i32,
        client_id: format!("s{n}"),
        channel: "limits.streams".into(),
        ..Subscribe::default()
    };
    let first = raw.clone().subscribe_to_events(sub(1)).await.expect("1");
    let second = raw.clone().subscribe_to_events(sub(2)).await.expect("2");
    let mut waiting = raw.clone();
    let ping = tokio::spawn(async move { waiting.ping(llm_router::kubemq::Empty {}).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !ping.is_finished(),
        "a third stream waits while two are open"
    );
    drop(first);
    let pinged = tokio::time::timeout(Duration::from_secs(5), ping)
        .await
        .expect("the call proceeds once a stream ends")
        .expect("task");
    assert!(pinged.is_ok(), "{pinged:?}");
    drop(second);
    b.stop().await;
}

/// A tiny app served by the shared edge, with short deadlines.
async fn edge_server(
    limits: HttpLimits,
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken) {
    let app = axum::Router::new().route("/echo", post(|body: String| async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(edge::serve(
        listener,
        app,
        "test",
        limits,
        stop.clone().cancelled_owned(),
    ));
    (addr, stop)
}

async fn read_all(conn: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, conn.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_slow_loris_head_is_cut_off_at_the_deadline_and_a_prompt_one_is_answered() {
    let limits = HttpLimits {
        max_connections: 16,
        header_timeout: Duration::from_millis(500),
        body_stall_timeout: Duration::from_millis(500),
    };
    let (addr, stop) = edge_server(limits).await;
    let mut loris = TcpStream::connect(addr).await.expect("connect");
    loris
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let cut = read_all(&mut loris, Duration::from_secs(5)).await;
    assert!(
        cut.is_some(),
        "the connection is closed after the head deadline"
    );

    let mut prompt = TcpStream::connect(addr).await.expect("connect");
    prompt
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        )
        .await
        .expect("write");
    let answer = read_all(&mut prompt, Duration::from_secs(5))
        .await
        .expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hi"), "{answer}");

    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
        .await
        .expect("write");
    let answer = read_all(&mut stalled, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(
        !answer.contains("half"),
        "a stalled body is never echoed: {answer}"
    );
    stop.cancel();
}

#[tokio::test]
async fn the_gateway_answers_429_beyond_its_in_flight_cap_and_serves_again_after() {
    use common::stack::{self, Stack};
    let sim = stack::start_sim(stack::slow_sim(400)).await;
    let config = stack::sim_routes(&sim, &[]);
    let s = Stack::start(vec![sim], config, ["w1".to_owned()], |o| {
        o.max_in_flight = 1
    })
    .await;
    s.wait_ready().await;
    let body =
        serde_json::json!({"model": "openai", "messages": [{"role": "user", "content": "hi"}]});
    let url = s.url("/v1/chat/completions");
    let first = {
        let (http, url, body) = (s.http.clone(), url.clone(), body.clone());
        tokio::spawn(async move { http.post(url).json(&body).send().await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let busy = s.http.post(&url).json(&body).send().await.expect("send");
    assert_eq!(busy.status(), 429);
    assert_eq!(
        busy.headers().get("retry-after").map(|v| v.to_str().ok()),
        Some(Some("1"))
    );
    let err: serde_json::Value = busy.json().await.expect("json");
    assert_eq!(err["error"]["code"], "gateway_busy");
    assert_eq!(
        err["error"]["message"],
        "this gateway is answering 1 requests already, the most it takes at once: retry in a second, or raise --max-in-flight"
    );
    let first = first.await.expect("task").expect("first");
    assert_eq!(first.status(), 200);
    let after = s.http.post(&url).json(&body).send().await.expect("send");
    assert_eq!(after.status(), 200, "the slot came back");
    s.stop().await;
}

#[tokio::test]
async fn grpc_connections_that_send_nothing_are_closed_after_ten_seconds_freeing_their_slots() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = common::config(dir.path());
    config.limits.max_grpc_connections = 2;
    let b = common::start_broker_with(config, dir).await;
    let addr = b.running.grpc_addr;
    let mut silent = [
        TcpStream::connect(addr).await.expect("a"),
        TcpStream::connect(addr).await.expect("b"),
    ];
    let started = std::time::Instant::now();
    for conn in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(20), conn.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection is closed: {read:?}"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
    let mut client = b.raw().await;
    client
        .ping(llm_router::kubemq::Empty {})
        .await
        .expect("the slots are free again");
    b.stop().await;
}
