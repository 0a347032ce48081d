//! Queue sends, receives, peeks, ack-all, expiry, delay, info and restart, over gRPC
//! (raw client for exact texts, the official SDK where it has the operation).
#![expect(clippy::unwrap_used, reason = "test assertions")]

mod common;
mod queues_util;

use llm_router::kubemq::*;
use queues_util::*;
use std::time::{Duration, Instant};

const E120: &str =
    "Error 120: invalid queue name value, cannot be empty, contains wildcards ,white spaces and end with dot";

#[tokio::test]
async fn send_validation_errors_are_in_band_and_ordered() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let cases: Vec<(QueueMessage, &str)> = vec![
        (QueueMessage { client_id: String::new(), channel: String::new(), ..msg("q", "x") },
            "Error 101: invalid clientID value, cannot be empty"),
        (msg("", "x"), E120),
        (msg("a.*", "x"), E120),
        (msg("a b", "x"), E120),
        (msg("a.", "x"), E120),
        (msg("q", ""), "Error 110: invalid message, cannot be empty"),
        (with_policy(msg("q", "x"), 43201, 0, 0, ""),
            "Error 133: invalid expiration seconds, exceed max expiration seconds setting in kubemq config"),
        (with_policy(msg("q", "x"), -1, 0, 0, ""),
            "Error 133: invalid expiration seconds, exceed max expiration seconds setting in kubemq config"),
        (with_policy(msg("q", "x"), 0, 0, 1025, ""),
            "Error 134: invalid max received count, cannot be negative or exceed max receive count setting in kubemq config"),
        (with_policy(msg("q", "x"), 0, 43201, 0, ""),
            "Error 135: invalid delay seconds, exceed max delay seconds setting in kubemq config"),
        (with_policy(msg("q", "x"), 0, 0, 0, "dl*"), E120),
    ];
    for (m, text) in cases {
        let r = send(&mut raw, m).await;
        assert!(r.is_error, "{r:?}");
        assert_eq!(r.error, text);
        assert_eq!(r.message_id.len(), 22, "generated id is echoed");
        assert_eq!(r.sent_at, 0);
    }
    let kept = send(
        &mut raw,
        QueueMessage {
            message_id: "mine".into(),
            ..msg("q", "")
        },
    )
    .await;
    assert_eq!((kept.message_id.as_str(), kept.is_error), ("mine", true));
    broker.stop().await;
}

#[tokio::test]
async fn batch_empty_is_unknown_and_results_are_positional() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let err = raw
        .send_queue_messages_batch(QueueMessagesBatchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unknown);
    assert_eq!(err.message(), "empty messages batch");
    let r = raw
        .send_queue_messages_batch(QueueMessagesBatchRequest {
            batch_id: "b7".into(),
            messages: vec![msg("q", "a"), msg("q", ""), msg("other", "c")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.batch_id, "b7");
    assert_eq!(
        r.results.iter().map(|x| x.is_error).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert!(r.have_errors, "divergence: any failed item sets HaveErrors");
    assert_eq!(broker.running.broker.queues.depth("q"), 1);
    assert_eq!(broker.running.broker.queues.depth("other"), 1);
    broker.stop().await;
}

#[tokio::test]
async fn send_resets_attributes_and_applies_policy_defaults() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let mut m = with_policy(msg("attrs", "x"), 30, 0, 0, "");
    m.attributes = Some(QueueMessageAttributes {
        sequence: 77,
        receive_count: 9,
        re_routed: true,
        ..Default::default()
    });
    let before = llm_router::broker::ids::now_ns();
    let r = send(&mut raw, m).await;
    assert!(!r.is_error);
    assert!(r.sent_at >= before && r.sent_at - before < 5_000_000_000);
    assert_eq!(r.expiration_at, r.sent_at + 30_000_000_000);
    assert_eq!(r.delayed_to, 0);
    send(&mut raw, msg("attrs", "y")).await;
    let got = receive(&mut raw, "attrs", 2, 1, false).await;
    assert_eq!(got.messages_received, 2);
    assert_eq!(seqs(&got.messages), [1, 2]);
    let a = attrs(&got.messages[0]);
    assert_eq!(
        (a.receive_count, a.re_routed, a.timestamp),
        (1, false, r.sent_at)
    );
    assert_eq!(a.expiration_at, r.expiration_at);
    let p = got.messages[1].policy.clone().unwrap();
    assert_eq!(p.max_receive_count, 1024);
    broker.stop().await;
}

#[tokio::test]
async fn receive_validation_errors() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let e122 =
        "Error 122: max messages should be between 1 and max message setting in kubemq config  ";
    let e136 = "Error 136: invalid wait timeout, value cannot be negative or exceed max wait timeout seconds setting in kubemq config";
    let mut no_client = receive_req("q", 1, 1, false);
    no_client.client_id.clear();
    let cases = vec![
        (
            no_client,
            "Error 101: invalid clientID value, cannot be empty",
        ),
        (receive_req("q.>", 1, 1, false), E120),
        (receive_req("q", 0, 1, false), e122),
        (receive_req("q", 1025, 1, true), e122),
        (receive_req("q", 1, -1, false), e136),
        (receive_req("q", 1, 3601, false), e136),
    ];
    for (req, text) in cases {
        let peek = req.is_peak;
        let r = raw.receive_queue_messages(req).await.unwrap().into_inner();
        assert!(r.is_error);
        assert_eq!(r.error, text);
        assert_eq!((r.request_id.as_str(), r.is_peak), ("r1", peek));
    }
    let mut no_id = receive_req("q", 1, -1, false);
    no_id.request_id.clear();
    let r = raw
        .receive_queue_messages(no_id)
        .await
        .unwrap()
        .into_inner();
    assert!(!r.request_id.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn receive_returns_early_only_when_the_count_is_filled() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "w", 3).await;
    let t = Instant::now();
    let r = receive(&mut raw, "w", 1, 5, false).await;
    assert_eq!(r.messages_received, 1);
    assert!(t.elapsed() < Duration::from_millis(500));
    let t = Instant::now();
    let r = receive(&mut raw, "w", 10, 1, false).await;
    assert_eq!(bodies(&r.messages), ["m1", "m2"]);
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "partial batch waits the full time"
    );
    let t = Instant::now();
    let r = receive(&mut raw, "w", 1, 0, false).await;
    assert_eq!(r.messages_received, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "0 means the 1 s default"
    );
    broker.stop().await;
}

#[tokio::test]
async fn receive_wakes_on_a_later_send() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let mut sender = broker.raw().await;
    let t = Instant::now();
    let waiter = tokio::spawn(async move { receive(&mut raw, "late", 1, 5, false).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut sender, msg("late", "hello")).await;
    let r = waiter.await.unwrap();
    assert_eq!(bodies(&r.messages), ["hello"]);
    assert!(t.elapsed() < Duration::from_secs(2));
    broker.stop().await;
}

#[tokio::test]
async fn peek_keeps_sequence_and_receive_count() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "pk", 2).await;
    let p = receive(&mut raw, "pk", 2, 1, true).await;
    assert!(p.is_peak);
    assert_eq!(seqs(&p.messages), [1, 2]);
    assert_eq!(attrs(&p.messages[0]).receive_count, 1);
    assert_eq!(broker.running.broker.queues.depth("pk"), 2);
    let r = receive(&mut raw, "pk", 2, 1, false).await;
    assert_eq!(seqs(&r.messages), [1, 2]);
    assert_eq!(
        attrs(&r.messages[0]).receive_count,
        1,
        "peek does not count"
    );
    assert_eq!(broker.running.broker.queues.depth("pk"), 0);
    broker.stop().await;
}

#[tokio::test]
async fn ack_all_consumes_for_the_whole_wait() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "aa", 3).await;
    let t = Instant::now();
    let r = raw
        .ack_all_queue_messages(AckAllQueueMessagesRequest {
            request_id: "x".into(),
            client_id: "c".into(),
            channel: "aa".into(),
            wait_time_seconds: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.affected_messages, r.is_error, r.request_id.as_str()),
        (3, false, "x")
    );
    assert!(t.elapsed() >= Duration::from_millis(950));
    let bad = raw
        .ack_all_queue_messages(AckAllQueueMessagesRequest {
            client_id: "c".into(),
            channel: "aa".into(),
            wait_time_seconds: -1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bad.error.starts_with("Error 136:"));
    let bad = raw
        .ack_all_queue_messages(AckAllQueueMessagesRequest {
            channel: "aa".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bad.error.starts_with("Error 101:"));
    broker.stop().await;
}

#[tokio::test]
async fn sdk_send_receive_and_ack_all() {
    let broker = common::start_broker().await;
    let sdk = broker.sdk("sdk-q").await;
    let m = kubemq::QueueMessage::builder()
        .channel("sdkq")
        .body(b"one".to_vec())
        .build();
    let r = sdk.send_queue_message(m).await.unwrap();
    assert!(!r.is_error && r.sent_at > 0);
    let batch = (0..3)
        .map(|i| {
            kubemq::QueueMessage::builder()
                .channel("sdkq")
                .body(format!("b{i}").into_bytes())
                .build()
        })
        .collect();
    let rs = sdk.send_queue_messages(batch).await.unwrap();
    assert_eq!(rs.len(), 3);
    let got = sdk
        .receive_queue_messages("sdkq", 2, 1, false)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, b"one");
    let a = got[1].attributes.clone().unwrap();
    assert_eq!((a.sequence, a.receive_count), (2, 1));
    let peeked = sdk
        .receive_queue_messages("sdkq", 1, 1, true)
        .await
        .unwrap();
    assert_eq!(peeked[0].attributes.clone().unwrap().sequence, 3);
    let acked = sdk
        .ack_all_queue_messages(&kubemq::AckAllQueueMessagesRequest {
            request_id: String::new(),
            client_id: String::new(),
            channel: "sdkq".into(),
            wait_time_seconds: 1,
        })
        .await
        .unwrap();
    assert_eq!(acked.affected_messages, 2);
    broker.stop().await;
}

#[tokio::test]
async fn expired_messages_are_dropped_and_counted() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send(&mut raw, with_policy(msg("exp", "old"), 1, 0, 0, "")).await;
    send(&mut raw, msg("exp", "fresh")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = receive(&mut raw, "exp", 1, 1, false).await;
    assert_eq!(bodies(&r.messages), ["fresh"]);
    assert_eq!(r.messages_expired, 1);
    let stats = broker.running.broker.queues.list("exp");
    assert_eq!(stats[0].expired, 1);
    broker.stop().await;
}

#[tokio::test]
async fn delayed_messages_arrive_later_with_fresh_attributes() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let r = send(&mut raw, with_policy(msg("dly", "later"), 5, 1, 0, "")).await;
    assert_eq!(r.delayed_to, r.sent_at + 1_000_000_000);
    assert_eq!(r.expiration_at, r.sent_at + 6_000_000_000);
    send(&mut raw, msg("dly", "now")).await;
    assert_eq!(broker.running.broker.queues.list("dly")[0].delayed, 1);
    let first = receive(&mut raw, "dly", 1, 1, false).await;
    assert_eq!(bodies(&first.messages), ["now"]);
    let t = Instant::now();
    let later = receive(&mut raw, "dly", 1, 3, false).await;
    assert_eq!(bodies(&later.messages), ["later"]);
    assert!(t.elapsed() < Duration::from_millis(1500));
    let m = &later.messages[0];
    let a = attrs(m);
    assert_eq!((a.sequence, a.delayed_to, a.receive_count), (2, 0, 1));
    assert!(a.expiration_at >= r.sent_at + 6_000_000_000);
    assert_eq!(a.expiration_at, a.timestamp + 5_000_000_000);
    assert_eq!(m.policy.clone().unwrap().delay_seconds, 0);
    broker.stop().await;
}

#[tokio::test]
async fn upstream_answers_each_request_by_id() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut out = raw
        .queues_upstream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(QueuesUpstreamRequest {
        request_id: "u1".into(),
        messages: vec![msg("up", "a"), msg("up", "")],
    })
    .await
    .unwrap();
    tx.send(QueuesUpstreamRequest {
        request_id: "u2".into(),
        messages: vec![],
    })
    .await
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(out.message().await.unwrap().unwrap());
    }
    seen.sort_by(|a, b| a.ref_request_id.cmp(&b.ref_request_id));
    assert_eq!(seen[0].ref_request_id, "u1");
    assert!(!seen[0].is_error);
    assert_eq!(
        seen[0]
            .results
            .iter()
            .map(|r| r.is_error)
            .collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(
        (seen[1].is_error, seen[1].error.as_str()),
        (true, "no messages to send")
    );
    assert!(seen[1].results.is_empty());
    drop(tx);
    assert!(out.message().await.unwrap().is_none());
    broker.stop().await;
}

#[tokio::test]
async fn info_list_create_delete() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "info.a", 2).await;
    let queues = &broker.running.broker.queues;
    queues.create("info.b");
    let info = raw
        .queues_info(QueuesInfoRequest {
            request_id: "i".into(),
            queue_name: "info.a;info.b;nope".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.ref_request_id, "i");
    let i = info.info.unwrap();
    assert_eq!((i.total_queue, i.sent, i.waiting), (2, 2, 2));
    assert_eq!(
        (i.queues[0].name.as_str(), i.queues[0].last_sequence),
        ("info.a", 2)
    );
    let listed = queues.list("info");
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[0].incoming_messages, listed[0].waiting), (2, 2));
    queues.delete("info.a").await.unwrap();
    assert_eq!(queues.list("info").len(), 1);
    assert_eq!(queues.depth("info.a"), 0);
    let r = send(&mut raw, msg("info.a", "again")).await;
    assert!(!r.is_error);
    let got = receive(&mut raw, "info.a", 1, 1, false).await;
    assert_eq!(seqs(&got.messages), [1], "a deleted queue starts over");
    broker.stop().await;
}

#[tokio::test]
async fn restart_restores_messages_and_continues_sequences() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "rs", 5).await;
    send_n(&mut raw, "done", 2).await;
    send(&mut raw, with_policy(msg("rs", "delayed"), 0, 2, 0, "")).await;
    assert_eq!(
        receive(&mut raw, "rs", 2, 1, false).await.messages_received,
        2
    );
    assert_eq!(
        receive(&mut raw, "done", 2, 1, false)
            .await
            .messages_received,
        2
    );
    let mut down = Down::open(&mut raw).await;
    let held = down.get("rs", 1, 1000, false).await;
    assert_eq!(seqs(&held.messages), [3]);
    drop(down);
    drop(raw);
    let dir = broker.stop().await;

    let broker = restart(dir).await;
    let mut raw = broker.raw().await;
    let r = receive(&mut raw, "rs", 3, 1, false).await;
    assert_eq!(
        seqs(&r.messages),
        [3, 4, 5],
        "in-flight message keeps its sequence"
    );
    assert_eq!(attrs(&r.messages[0]).receive_count, 1);
    send(&mut raw, msg("done", "next")).await;
    let d = receive(&mut raw, "done", 1, 1, false).await;
    assert_eq!(
        seqs(&d.messages),
        [3],
        "a drained queue does not reuse sequences"
    );
    let late = receive(&mut raw, "rs", 1, 3, false).await;
    assert_eq!(bodies(&late.messages), ["delayed"]);
    assert_eq!(seqs(&late.messages), [6]);
    broker.stop().await;
}

#[tokio::test]
async fn cancelled_receive_returns_its_messages() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "cxl", 2).await;
    let mut req = tonic::Request::new(receive_req("cxl", 10, 3, false));
    req.set_timeout(Duration::from_millis(300));
    let err = raw.receive_queue_messages(req).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
        ),
        "{err:?}"
    );
    let queues = broker.running.broker.queues.clone();
    eventually(|| queues.depth("cxl") == 2).await;
    let r = receive(&mut raw, "cxl", 2, 1, false).await;
    assert_eq!(
        seqs(&r.messages),
        [1, 2],
        "divergence: nothing lost, same sequences"
    );
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_ends_long_waits_promptly() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let waiter = tokio::spawn(async move { receive(&mut raw, "long", 5, 60, false).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    broker.stop().await;
    let r = waiter.await.unwrap();
    assert_eq!(r.messages_received, 0);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn metrics_track_depth_and_flow() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "metrics.q", 3).await;
    receive(&mut raw, "metrics.q", 1, 1, false).await;
    let body = reqwest::get(format!("{}/metrics", broker.rest_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix) && l.contains("channel=\"metrics.q\""))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
    };
    assert_eq!(
        line("llm_router_broker_queue_depth").as_deref(),
        Some("2"),
        "{body}"
    );
    assert_eq!(
        line("llm_router_broker_messages_in_total").as_deref(),
        Some("3")
    );
    assert_eq!(
        line("llm_router_broker_messages_out_total").as_deref(),
        Some("1")
    );
    broker.stop().await;
}

/// A broker whose queues hold at most `depth` messages and `bytes` body bytes.
async fn limited_broker(depth: u64, bytes: u64) -> common::TestBroker {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.queues.max_queue_depth = depth;
    config.queues.max_queue_bytes = bytes;
    common::start_broker_with(config, dir).await
}

fn errors(r: &QueueMessagesBatchResponse) -> Vec<&str> {
    r.results.iter().map(|x| x.error.as_str()).collect()
}

const FULL_3: &str =
    "Error 139: queue lim is full: 3 messages held, limit 3; consume from it or raise --max-queue-depth";

#[tokio::test]
async fn depth_limit_refuses_only_what_does_not_fit() {
    let broker = limited_broker(3, 0).await;
    let mut raw = broker.raw().await;
    // Just under the limit: two ready and one delayed make three.
    send_n(&mut raw, "lim", 2).await;
    let delayed = send(&mut raw, with_policy(msg("lim", "later"), 0, 60, 0, "")).await;
    assert!(!delayed.is_error, "{delayed:?}");
    let full = send(&mut raw, msg("lim", "x")).await;
    assert!(full.is_error);
    assert_eq!(full.error, FULL_3);
    assert_eq!(
        full.message_id.len(),
        22,
        "the id is echoed as for other errors"
    );
    assert!(
        !send(&mut raw, msg("other", "x")).await.is_error,
        "limits are per queue"
    );

    // A message in flight still counts; settled, it frees its place.
    let mut down = Down::open(&mut raw).await;
    let got = down.get("lim", 1, 1000, false).await;
    assert_eq!(got.messages.len(), 1);
    assert_eq!(send(&mut raw, msg("lim", "x")).await.error, FULL_3);
    down.settle(
        QueuesDownstreamRequestType::AckAll,
        &got.transaction_id,
        vec![],
        "",
    )
    .await;
    eventually(|| broker.running.broker.queues.depth("lim") == 1).await;
    let r = raw
        .send_queue_messages_batch(QueueMessagesBatchRequest {
            batch_id: "b".into(),
            messages: vec![msg("lim", "fits"), msg("lim", "no room"), msg("other", "y")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errors(&r), ["", FULL_3, ""]);
    assert!(r.have_errors);
    let left = receive(&mut raw, "lim", 10, 1, false).await;
    assert_eq!(bodies(&left.messages), ["m1", "fits"]);
    broker.stop().await;
}

#[tokio::test]
async fn byte_limit_admits_a_body_that_reaches_it_exactly() {
    let broker = limited_broker(0, 10).await;
    let mut raw = broker.raw().await;
    assert!(!send(&mut raw, msg("bytes", "12345")).await.is_error);
    assert!(!send(&mut raw, msg("bytes", "1234")).await.is_error);
    let full = send(&mut raw, msg("bytes", "12")).await;
    assert_eq!(
        full.error,
        "Error 140: queue bytes is full: 9 body bytes held and this message adds 2, limit 10; consume from it or raise --max-queue-bytes"
    );
    assert!(
        !send(&mut raw, msg("bytes", "1")).await.is_error,
        "exactly at the limit"
    );
    assert!(send(&mut raw, msg("bytes", "1")).await.is_error);
    // Metadata-only messages have no body and always fit the byte limit.
    let meta = QueueMessage {
        metadata: "m".into(),
        ..msg("bytes", "")
    };
    assert!(!send(&mut raw, meta).await.is_error);
    broker.stop().await;
}

#[tokio::test]
async fn redeliveries_are_never_refused_by_a_limit() {
    let broker = limited_broker(1, 0).await;
    let mut raw = broker.raw().await;
    let dlq = send(
        &mut raw,
        with_policy(msg("lim.src", "once"), 0, 0, 1, "lim.dlq"),
    )
    .await;
    assert!(!dlq.is_error);
    assert!(
        !send(&mut raw, msg("lim.dlq", "already here"))
            .await
            .is_error
    );
    let mut down = Down::open(&mut raw).await;
    let got = down.get("lim.src", 1, 1000, false).await;
    down.settle(
        QueuesDownstreamRequestType::NAckAll,
        &got.transaction_id,
        vec![],
        "",
    )
    .await;
    // The dead-lettered copy goes over lim.dlq's limit instead of being lost.
    eventually(|| broker.running.broker.queues.depth("lim.dlq") == 2).await;
    let both = receive(&mut raw, "lim.dlq", 2, 1, false).await;
    assert_eq!(bodies(&both.messages), ["already here", "once"]);
    broker.stop().await;
}

#[tokio::test]
async fn a_jobs_queues_are_forgotten_once_empty_and_idle_and_others_stay() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let job = "batch_0123456789abcdef0123456789abcdef";
    let results = format!("llm-router.batch.{job}.results");
    let dlq = format!("llm-router.batch.{job}.dlq");
    for channel in [&results, &dlq, &"user-queue".to_owned()] {
        let sent = raw
            .send_queue_message(QueueMessage {
                client_id: "c".into(),
                channel: channel.clone(),
                body: b"x".to_vec(),
                ..QueueMessage::default()
            })
            .await
            .expect("send")
            .into_inner();
        assert!(!sent.is_error, "{}", sent.error);
    }
    let queues = &b.running.broker.queues;
    assert_eq!(
        queues.forget_idle(Duration::ZERO).await,
        0,
        "queues holding messages stay"
    );
    for channel in [&results, &"user-queue".to_owned()] {
        let got = raw
            .receive_queue_messages(ReceiveQueueMessagesRequest {
                client_id: "c".into(),
                channel: channel.clone(),
                max_number_of_messages: 1,
                wait_time_seconds: 1,
                ..ReceiveQueueMessagesRequest::default()
            })
            .await
            .expect("receive")
            .into_inner();
        assert_eq!(got.messages.len(), 1);
    }
    assert_eq!(
        queues.forget_idle(Duration::from_secs(3600)).await,
        0,
        "recently used queues stay"
    );
    // The receive's settlement may still be finishing; once it has, the queue goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut forgotten = 0;
    while forgotten == 0 && Instant::now() < deadline {
        forgotten = queues.forget_idle(Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        forgotten, 1,
        "the job's drained results queue goes; its dead-letter queue still holds a message, and a user's queue is never forgotten"
    );
    assert_eq!(
        queues.forget_idle(Duration::ZERO).await,
        0,
        "nothing else goes"
    );
    let info = queues.info(QueuesInfoRequest {
        request_id: "r".into(),
        queue_name: String::new(),
    });
    let names: Vec<String> = info
        .info
        .map(|i| i.queues.into_iter().map(|q| q.name).collect())
        .unwrap_or_default();
    assert!(!names.contains(&results), "{names:?}");
    assert!(
        names.contains(&dlq) && names.contains(&"user-queue".to_owned()),
        "{names:?}"
    );
    b.stop().await;
}
