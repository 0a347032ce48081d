//! Commands and queries over gRPC: groups, timeouts, first response wins, pass-through
//! rules, reply-channel shape and every validation error (KUBEMQ.md §2.5–2.7).
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

mod common;

use common::TestBroker;
use futures::StreamExt;
use kubemq::prelude::*;
use llm_router::broker::pubsub::stats::Kind;
use llm_router::kubemq::kubemq_client::KubemqClient;
use llm_router::kubemq::{Request as RawRequest, Response as RawResponse, Subscribe};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const COMMAND: i32 = 1;
const QUERY: i32 = 2;

/// Waits until `n` subscriptions on `channel` have reached the broker (SDK subscribes in
/// a background task).
async fn wait_subs(b: &TestBroker, kind: Kind, channel: &str, n: usize) {
    let mut count = 0;
    for _ in 0..500 {
        count = b.running.broker.pubsub.subscriber_count(kind, channel);
        if count >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(count >= n, "{n} subscriptions on {channel} never arrived");
}

fn raw_request(kind: i32, channel: &str, timeout: i32) -> RawRequest {
    RawRequest {
        request_type_data: kind,
        client_id: "caller".into(),
        channel: channel.into(),
        body: b"ping".to_vec(),
        timeout,
        ..RawRequest::default()
    }
}

fn raw_sub(kind: i32, channel: &str, group: &str) -> Subscribe {
    Subscribe {
        subscribe_type_data: kind,
        client_id: "responder".into(),
        channel: channel.into(),
        group: group.into(),
        ..Subscribe::default()
    }
}

/// A responder counting what it gets and answering with its name as body.
async fn query_responder(
    b: &TestBroker,
    name: &str,
    channel: &str,
    group: &str,
) -> (kubemq::KubemqClient, Subscription, Arc<AtomicUsize>) {
    let client = b.sdk(name).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let (c, s, n) = (client.clone(), seen.clone(), name.to_owned());
    let sub = client
        .subscribe_to_queries(
            channel,
            group,
            move |q| {
                let (c, s, n) = (c.clone(), s.clone(), n.clone());
                Box::pin(async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    let reply = QueryReply::builder()
                        .request_id(&q.id)
                        .response_to(&q.response_to)
                        .body(n.into_bytes())
                        .build();
                    c.send_query_response(reply).await.expect("reply");
                })
            },
            None,
        )
        .await
        .expect("subscribe to queries");
    (client, sub, seen)
}

#[tokio::test]
async fn queries_go_to_every_ungrouped_responder_and_one_per_group() {
    let b = common::start_broker().await;
    let ch = "rpc.q.groups";
    let (_c1, _s1, g1) = query_responder(&b, "g1", ch, "workers").await;
    let (_c2, _s2, g2) = query_responder(&b, "g2", ch, "workers").await;
    let (_c3, _s3, solo) = query_responder(&b, "solo", ch, "").await;
    wait_subs(&b, Kind::Queries, ch, 3).await;
    let caller = b.sdk("caller").await;
    for i in 0..20 {
        let q = Query::builder()
            .channel(ch)
            .body(format!("q{i}").into_bytes())
            .timeout(Duration::from_secs(5))
            .build();
        let resp = caller.send_query(q).await.expect("query");
        assert!(resp.executed);
        let who = String::from_utf8(resp.body).expect("utf8");
        assert!(["g1", "g2", "solo"].contains(&who.as_str()), "{who}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (g1, g2, solo) = (
        g1.load(Ordering::SeqCst),
        g2.load(Ordering::SeqCst),
        solo.load(Ordering::SeqCst),
    );
    assert_eq!(solo, 20);
    assert_eq!(g1 + g2, 20);
    assert!(g1 > 0 && g2 > 0, "random member choice: {g1}/{g2}");
    b.stop().await;
}

#[tokio::test]
async fn commands_with_groups_return_executed_without_body() {
    let b = common::start_broker().await;
    let ch = "rpc.c.groups";
    let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut keep = Vec::new();
    for (i, group) in ["a", "a", "b"].iter().enumerate() {
        let client = b.sdk(&format!("cmd{i}")).await;
        let (c, n) = (client.clone(), counts[i].clone());
        let sub = client
            .subscribe_to_commands(
                ch,
                group,
                move |cmd| {
                    let (c, n) = (c.clone(), n.clone());
                    Box::pin(async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        let reply = CommandReply::builder()
                            .request_id(&cmd.id)
                            .response_to(&cmd.response_to)
                            .build();
                        c.send_command_response(reply).await.expect("reply");
                    })
                },
                None,
            )
            .await
            .expect("subscribe to commands");
        keep.push((client, sub));
    }
    wait_subs(&b, Kind::Commands, ch, 3).await;
    let caller = b.sdk("caller").await;
    for _ in 0..10 {
        let cmd = Command::builder()
            .channel(ch)
            .body(b"do".to_vec())
            .timeout(Duration::from_secs(5))
            .build();
        let resp = caller.send_command(cmd).await.expect("command");
        assert!(resp.executed);
        assert!(resp.error.is_empty());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(n[0] + n[1], 10, "group a gets each command once: {n:?}");
    assert_eq!(n[2], 10, "group b has one member: {n:?}");
    b.stop().await;
}

#[tokio::test]
async fn query_without_responder_waits_the_whole_timeout_then_301() {
    let b = common::start_broker().await;
    let caller = b.sdk("caller").await;
    let q = Query::builder()
        .channel("rpc.nobody")
        .body(b"x".to_vec())
        .timeout(Duration::from_millis(300))
        .build();
    let started = Instant::now();
    let err = caller.send_query(q).await.expect_err("must time out");
    let waited = started.elapsed();
    assert!(
        err.to_string()
            .contains("Error 301: timeout for request message"),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");

    let mut raw = b.raw().await;
    let started = Instant::now();
    let status = raw
        .send_request(raw_request(COMMAND, "rpc.nobody", 200))
        .await
        .expect_err("timeout");
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(status.message(), "Error 301: timeout for request message");
    assert!(started.elapsed() >= Duration::from_millis(200));
    b.stop().await;
}

/// Subscribes with the raw client; returns the request stream.
async fn raw_responder(
    b: &TestBroker,
    kind: i32,
    channel: &str,
) -> (KubemqClient<Channel>, tonic::Streaming<RawRequest>) {
    let mut raw = b.raw().await;
    let stream = raw
        .subscribe_to_requests(raw_sub(kind, channel, ""))
        .await
        .expect("subscribe")
        .into_inner();
    (raw, stream)
}

async fn next_request(s: &mut tonic::Streaming<RawRequest>) -> RawRequest {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("request arrives")
        .expect("stream open")
        .expect("no stream error")
}

fn reply_to(req: &RawRequest, body: &str) -> RawResponse {
    RawResponse {
        client_id: "responder".into(),
        request_id: req.request_id.clone(),
        reply_channel: req.reply_channel.clone(),
        body: body.as_bytes().to_vec(),
        executed: true,
        ..RawResponse::default()
    }
}

#[tokio::test]
async fn first_response_wins_and_late_ones_are_accepted_silently() {
    let b = common::start_broker().await;
    let (mut slow, mut slow_in) = raw_responder(&b, 4, "rpc.race").await;
    let (mut fast, mut fast_in) = raw_responder(&b, 4, "rpc.race").await;
    let mut caller = b.raw().await;
    let call = tokio::spawn(async move {
        caller
            .send_request(raw_request(QUERY, "rpc.race", 5000))
            .await
    });
    let r1 = next_request(&mut slow_in).await;
    let r2 = next_request(&mut fast_in).await;
    assert_eq!(r1.reply_channel, r2.reply_channel);
    fast.send_response(reply_to(&r2, "fast"))
        .await
        .expect("first response");
    let resp = call.await.expect("join").expect("query").into_inner();
    assert_eq!(resp.body, b"fast");
    slow.send_response(reply_to(&r1, "slow"))
        .await
        .expect("late response is OK");
    b.stop().await;
}

#[tokio::test]
async fn responder_sees_the_full_request_with_an_inbox_reply_channel() {
    let b = common::start_broker().await;
    let (_r, mut incoming) = raw_responder(&b, 4, "rpc.*.shape").await;
    let mut caller = b.raw().await;
    let mut req = raw_request(QUERY, "rpc.x.shape", 700);
    req.metadata = "meta".into();
    req.cache_key = "ck".into();
    req.cache_ttl = 30;
    req.span = vec![1, 2, 3];
    req.tags = HashMap::from([("k".to_owned(), "v".to_owned())]);
    let sent = req.clone();
    let call = tokio::spawn(async move { caller.send_request(req).await });
    let got = next_request(&mut incoming).await;
    assert_eq!(got.request_id.len(), 22, "empty RequestID gets a NUID");
    let parts: Vec<&str> = got.reply_channel.split('.').collect();
    assert_eq!(parts.len(), 3, "{}", got.reply_channel);
    assert_eq!(parts[0], "_INBOX");
    assert_eq!(parts[1].len(), 22);
    assert_eq!(parts[2].len(), 8);
    let expected = RawRequest {
        request_id: got.request_id.clone(),
        reply_channel: got.reply_channel.clone(),
        ..sent
    };
    assert_eq!(got, expected, "everything else passes through");
    let status = call.await.expect("join").expect_err("no reply");
    assert_eq!(status.message(), "Error 301: timeout for request message");
    b.stop().await;
}

fn full_response(req: &RawRequest) -> RawResponse {
    RawResponse {
        client_id: "resp-client".into(),
        request_id: "rewritten-id".into(),
        reply_channel: req.reply_channel.clone(),
        metadata: "resp-meta".into(),
        body: b"resp-body".to_vec(),
        cache_hit: true,
        timestamp: 42,
        executed: false,
        error: "boom".into(),
        span: vec![9],
        tags: HashMap::from([("t".to_owned(), "1".to_owned())]),
    }
}

async fn round_trip(b: &TestBroker, kind: i32, channel: &str) -> (RawResponse, RawResponse) {
    let sub_kind = if kind == QUERY { 4 } else { 3 };
    let (mut responder, mut incoming) = raw_responder(b, sub_kind, channel).await;
    let mut caller = b.raw().await;
    let req = raw_request(kind, channel, 5000);
    let call = tokio::spawn(async move { caller.send_request(req).await });
    let got = next_request(&mut incoming).await;
    let sent = full_response(&got);
    responder
        .send_response(sent.clone())
        .await
        .expect("respond");
    let resp = call.await.expect("join").expect("request ok").into_inner();
    (sent, resp)
}

#[tokio::test]
async fn query_returns_the_response_verbatim_minus_reply_channel() {
    let b = common::start_broker().await;
    let (sent, got) = round_trip(&b, QUERY, "rpc.pass.q").await;
    let expected = RawResponse {
        reply_channel: String::new(),
        ..sent
    };
    assert_eq!(got, expected);
    b.stop().await;
}

#[tokio::test]
async fn command_response_drops_body_metadata_and_cache_hit() {
    let b = common::start_broker().await;
    let (sent, got) = round_trip(&b, COMMAND, "rpc.pass.c").await;
    let expected = RawResponse {
        reply_channel: String::new(),
        body: Vec::new(),
        metadata: String::new(),
        cache_hit: false,
        ..sent
    };
    assert_eq!(got, expected);
    assert!(!got.executed);
    assert_eq!(got.error, "boom");
    assert_eq!(got.request_id, "rewritten-id");
    b.stop().await;
}

#[tokio::test]
async fn send_request_validation_errors_in_upstream_order() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let ok = raw_request(QUERY, "rpc.v", 1000);
    let cases: Vec<(RawRequest, &str)> = vec![
        (
            RawRequest {
                request_type_data: 0,
                client_id: String::new(),
                ..ok.clone()
            },
            "Error 206: invalid request type",
        ),
        (
            RawRequest {
                request_type_data: 3,
                ..ok.clone()
            },
            "Error 206: invalid request type",
        ),
        (
            RawRequest {
                client_id: String::new(),
                channel: String::new(),
                ..ok.clone()
            },
            "Error 101: invalid clientID value, cannot be empty",
        ),
        (
            RawRequest {
                channel: String::new(),
                timeout: 0,
                ..ok.clone()
            },
            "Error 102: invalid channel value, cannot be empty",
        ),
        (
            RawRequest {
                channel: "a b.".into(),
                ..ok.clone()
            },
            "Error 119: invalid channel value, cannot end with `.`",
        ),
        (
            RawRequest {
                channel: "a *".into(),
                ..ok.clone()
            },
            "Error 108: invalid channel value, no white spaces are allowed",
        ),
        (
            RawRequest {
                channel: "a.>".into(),
                timeout: 0,
                ..ok.clone()
            },
            "Error 107: invalid channel value, no wildcards are allowed",
        ),
        (
            RawRequest {
                timeout: -5,
                body: Vec::new(),
                ..ok.clone()
            },
            "Error 109: invalid set timeout value, cannot be 0 or negative",
        ),
        (
            RawRequest {
                body: Vec::new(),
                cache_key: "k".into(),
                ..ok.clone()
            },
            "Error 115: invalid request, cannot be empty",
        ),
        (
            RawRequest {
                cache_key: "k".into(),
                cache_ttl: 0,
                ..ok.clone()
            },
            "Error 116: invalid cache ttl value, cannot be 0 or negative",
        ),
    ];
    for (req, text) in cases {
        let status = raw.send_request(req.clone()).await.expect_err(text);
        assert_eq!(status.code(), tonic::Code::Internal, "{text}");
        assert_eq!(status.message(), text, "{req:?}");
    }
    b.stop().await;
}

#[tokio::test]
async fn send_response_validation_and_unknown_reply_channel() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let ok = RawResponse {
        client_id: "r".into(),
        request_id: "id".into(),
        reply_channel: "_INBOX.nobody.waits".into(),
        ..RawResponse::default()
    };
    raw.send_response(ok.clone())
        .await
        .expect("unknown reply channel is OK");
    let cases: Vec<(RawResponse, &str)> = vec![
        (
            RawResponse {
                client_id: String::new(),
                reply_channel: String::new(),
                ..ok.clone()
            },
            "Error 101: invalid clientID value, cannot be empty",
        ),
        (
            RawResponse {
                reply_channel: String::new(),
                request_id: String::new(),
                ..ok.clone()
            },
            "Error 102: invalid channel value, cannot be empty",
        ),
        (
            RawResponse {
                reply_channel: "x.".into(),
                ..ok.clone()
            },
            "Error 119: invalid channel value, cannot end with `.`",
        ),
        (
            RawResponse {
                reply_channel: "x y".into(),
                ..ok.clone()
            },
            "Error 108: invalid channel value, no white spaces are allowed",
        ),
        (
            RawResponse {
                reply_channel: "x.*".into(),
                ..ok.clone()
            },
            "Error 107: invalid channel value, no wildcards are allowed",
        ),
        (
            RawResponse {
                request_id: String::new(),
                ..ok.clone()
            },
            "Error 117: invalid request id, cannot be empty",
        ),
    ];
    for (resp, text) in cases {
        let status = raw.send_response(resp).await.expect_err(text);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), text);
    }
    b.stop().await;
}

#[tokio::test]
async fn subscribe_to_requests_validation_errors() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let ok = raw_sub(4, "rpc.sub", "");
    let cases: Vec<(Subscribe, &str)> = vec![
        (
            Subscribe {
                subscribe_type_data: 1,
                client_id: String::new(),
                ..ok.clone()
            },
            "Error 207: invalid subscribe type",
        ),
        (
            Subscribe {
                subscribe_type_data: 0,
                ..ok.clone()
            },
            "Error 207: invalid subscribe type",
        ),
        (
            Subscribe {
                client_id: String::new(),
                channel: String::new(),
                ..ok.clone()
            },
            "Error 101: invalid clientID value, cannot be empty",
        ),
        (
            Subscribe {
                channel: String::new(),
                ..ok.clone()
            },
            "Error 102: invalid channel value, cannot be empty",
        ),
        (
            Subscribe {
                channel: "a.".into(),
                ..ok.clone()
            },
            "Error 119: invalid channel value, cannot end with `.`",
        ),
        (
            Subscribe {
                channel: "a b".into(),
                ..ok.clone()
            },
            "Error 108: invalid channel value, no white spaces are allowed",
        ),
    ];
    for (sub, text) in cases {
        let started = Instant::now();
        let status = raw.subscribe_to_requests(sub).await.expect_err(text);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), text);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    raw.subscribe_to_requests(raw_sub(3, "rpc.>", "g"))
        .await
        .expect("wildcards are allowed for requests");
    b.stop().await;
}

#[tokio::test]
async fn wildcard_responder_gets_the_concrete_channel() {
    let b = common::start_broker().await;
    let (mut responder, mut incoming) = raw_responder(&b, 3, "rpc.wild.>").await;
    let mut caller = b.raw().await;
    let call = tokio::spawn(async move {
        caller
            .send_request(raw_request(COMMAND, "rpc.wild.a.b", 5000))
            .await
    });
    let got = next_request(&mut incoming).await;
    assert_eq!(got.channel, "rpc.wild.a.b");
    responder
        .send_response(reply_to(&got, ""))
        .await
        .expect("respond");
    let resp = call.await.expect("join").expect("command").into_inner();
    assert!(resp.executed);
    b.stop().await;
}

#[tokio::test]
async fn responder_leaving_ends_its_subscription() {
    let b = common::start_broker().await;
    let (r, incoming) = raw_responder(&b, 4, "rpc.leave").await;
    wait_subs(&b, Kind::Queries, "rpc.leave", 1).await;
    drop(incoming);
    drop(r);
    common::eventually("subscription removed", || {
        b.running
            .broker
            .pubsub
            .subscriber_count(Kind::Queries, "rpc.leave")
            == 0
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn waiting_requests_end_at_shutdown_instead_of_their_timeout() {
    let b = common::start_broker().await;
    let mut caller = b.raw().await;
    let started = Instant::now();
    let call = tokio::spawn(async move {
        caller
            .send_request(raw_request(QUERY, "rpc.shutdown", 20_000))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.stop().await;
    let status = call.await.expect("join").expect_err("ends with an error");
    assert!(started.elapsed() < Duration::from_secs(5), "{status:?}");
    assert_eq!(status.message(), "Error 409: server is in shutdown mode");
}
