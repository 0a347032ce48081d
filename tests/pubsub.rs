//! Plain events over gRPC: fan-out with groups and wildcards, fire-and-forget success,
//! SendEventsStream result rules and every validation error (KUBEMQ.md §2.2–2.4).
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

mod common;

use common::TestBroker;
use futures::StreamExt;
use kubemq::prelude::*;
use llm_router::broker::pubsub::stats::Kind;
use llm_router::kubemq::{Event as RawEvent, EventReceive as RawReceive, Subscribe};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// An SDK events subscriber collecting bodies.
async fn collector(
    b: &TestBroker,
    name: &str,
    channel: &str,
    group: &str,
) -> (
    kubemq::KubemqClient,
    Subscription,
    Arc<Mutex<Vec<EventReceive>>>,
) {
    let client = b.sdk(name).await;
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let sub = client
        .subscribe_to_events(
            channel,
            group,
            move |ev| {
                sink.lock().push(ev);
                Box::pin(async {})
            },
            None,
        )
        .await
        .expect("subscribe");
    (client, sub, got)
}

async fn settle(expected: usize, counts: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while counts() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn events_fan_out_to_ungrouped_wildcards_and_one_member_per_group() {
    let b = common::start_broker().await;
    let (_a, _sa, g1) = collector(&b, "g1", "ev.fan", "grp").await;
    let (_b, _sb, g2) = collector(&b, "g2", "ev.fan", "grp").await;
    let (_c, _sc, solo) = collector(&b, "solo", "ev.fan", "").await;
    let (_d, _sd, wild) = collector(&b, "wild", "ev.*", "").await;
    let (_e, _se, tail) = collector(&b, "tail", ">", "").await;
    let (_f, _sf, other) = collector(&b, "other", "ev.fan.x", "").await;
    wait_subs(&b, Kind::Events, "ev.fan", 3).await;
    wait_subs(&b, Kind::Events, "ev.*", 1).await;
    wait_subs(&b, Kind::Events, ">", 1).await;
    wait_subs(&b, Kind::Events, "ev.fan.x", 1).await;
    let publisher = b.sdk("publisher").await;
    for i in 0..40 {
        let ev = Event::builder()
            .channel("ev.fan")
            .metadata("m")
            .body(format!("e{i}").into_bytes())
            .add_tag("k", "v")
            .build();
        publisher.send_event(ev).await.expect("send");
    }
    settle(40 * 4, || {
        g1.lock().len()
            + g2.lock().len()
            + solo.lock().len()
            + wild.lock().len()
            + tail.lock().len()
    })
    .await;
    let (n1, n2) = (g1.lock().len(), g2.lock().len());
    assert_eq!(n1 + n2, 40, "one member per group: {n1}/{n2}");
    assert!(n1 > 0 && n2 > 0, "random member choice: {n1}/{n2}");
    assert_eq!(solo.lock().len(), 40);
    assert_eq!(wild.lock().len(), 40);
    assert_eq!(tail.lock().len(), 40);
    assert!(other.lock().is_empty());
    let first = solo.lock()[0].clone();
    assert_eq!(first.channel, "ev.fan");
    assert_eq!(first.body, b"e0");
    assert_eq!(first.metadata, "m");
    assert_eq!(first.tags.get("k").map(String::as_str), Some("v"));
    assert_eq!((first.timestamp, first.sequence), (0, 0));
    assert_eq!(
        wild.lock()[0].channel,
        "ev.fan",
        "wildcards carry the concrete channel"
    );
    b.stop().await;
}

fn raw_event(channel: &str, body: &str) -> RawEvent {
    RawEvent {
        client_id: "pub".into(),
        channel: channel.into(),
        body: body.as_bytes().to_vec(),
        ..RawEvent::default()
    }
}

#[tokio::test]
async fn send_event_succeeds_without_subscribers_and_generates_ids() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let res = raw
        .send_event(raw_event("ev.nobody", "x"))
        .await
        .expect("send")
        .into_inner();
    assert!(res.sent);
    assert_eq!(res.error, "");
    assert_eq!(res.event_id.len(), 22);
    let res = raw
        .send_event(RawEvent {
            event_id: "mine".into(),
            ..raw_event("ev.nobody", "x")
        })
        .await
        .expect("send")
        .into_inner();
    assert_eq!(res.event_id, "mine");
    b.stop().await;
}

fn event_cases() -> Vec<(RawEvent, &'static str)> {
    let ok = raw_event("ev.v", "x");
    vec![
        (
            RawEvent {
                client_id: String::new(),
                channel: String::new(),
                ..ok.clone()
            },
            "Error 101: invalid clientID value, cannot be empty",
        ),
        (
            RawEvent {
                channel: String::new(),
                body: Vec::new(),
                ..ok.clone()
            },
            "Error 102: invalid channel value, cannot be empty",
        ),
        (
            RawEvent {
                channel: "a *.".into(),
                ..ok.clone()
            },
            "Error 119: invalid channel value, cannot end with `.`",
        ),
        (
            RawEvent {
                channel: "a *".into(),
                ..ok.clone()
            },
            "Error 108: invalid channel value, no white spaces are allowed",
        ),
        (
            RawEvent {
                channel: "a.>".into(),
                body: Vec::new(),
                ..ok.clone()
            },
            "Error 107: invalid channel value, no wildcards are allowed",
        ),
        (
            RawEvent {
                body: Vec::new(),
                ..ok.clone()
            },
            "Error 110: invalid message, cannot be empty",
        ),
    ]
}

#[tokio::test]
async fn send_event_validation_errors_are_internal_with_exact_text() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    for store in [false, true] {
        for (ev, text) in event_cases() {
            let status = raw
                .send_event(RawEvent { store, ..ev })
                .await
                .expect_err(text);
            assert_eq!(status.code(), tonic::Code::Internal);
            assert_eq!(status.message(), text);
        }
    }
    b.stop().await;
}

#[tokio::test]
async fn events_stream_answers_errors_and_every_store_event_only() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let bad = RawEvent {
        event_id: "bad-1".into(),
        body: Vec::new(),
        ..raw_event("ev.s", "")
    };
    let events = vec![
        RawEvent {
            event_id: "plain-ok".into(),
            ..raw_event("ev.s", "a")
        },
        bad,
        RawEvent {
            event_id: "store-ok".into(),
            store: true,
            ..raw_event("ev.s.store", "b")
        },
        RawEvent {
            event_id: String::new(),
            client_id: String::new(),
            ..raw_event("ev.s", "c")
        },
        RawEvent {
            event_id: "plain-ok-2".into(),
            ..raw_event("ev.s", "d")
        },
    ];
    let results: Vec<_> = raw
        .send_events_stream(futures::stream::iter(events))
        .await
        .expect("open stream")
        .into_inner()
        .collect()
        .await;
    let results: Vec<_> = results.into_iter().map(|r| r.expect("result")).collect();
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].event_id, "bad-1");
    assert!(!results[0].sent);
    assert_eq!(
        results[0].error,
        "Error 110: invalid message, cannot be empty"
    );
    assert_eq!(results[1].event_id, "store-ok");
    assert!(results[1].sent);
    assert_eq!(results[1].error, "");
    assert_eq!(
        results[2].event_id, "",
        "failures echo the client's (empty) id"
    );
    assert_eq!(
        results[2].error,
        "Error 101: invalid clientID value, cannot be empty"
    );
    b.stop().await;
}

fn sub(kind: i32, channel: &str) -> Subscribe {
    Subscribe {
        subscribe_type_data: kind,
        client_id: "sub".into(),
        channel: channel.into(),
        ..Subscribe::default()
    }
}

#[tokio::test]
async fn subscribe_to_events_validation_errors() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let cases: Vec<(Subscribe, &str)> = vec![
        (Subscribe { client_id: String::new(), ..sub(0, "a") }, "Error 207: invalid subscribe type"),
        (sub(3, "a"), "Error 207: invalid subscribe type"),
        (sub(4, "a"), "Error 207: invalid subscribe type"),
        (Subscribe { client_id: String::new(), ..sub(1, "") }, "Error 101: invalid clientID value, cannot be empty"),
        (sub(1, ""), "Error 102: invalid channel value, cannot be empty"),
        (sub(1, "a."), "Error 119: invalid channel value, cannot end with `.`"),
        (sub(1, "a b"), "Error 108: invalid channel value, no white spaces are allowed"),
        (Subscribe { events_store_type_data: 1, ..sub(1, "a") }, "Error 118: event store parameters were set but subscribe type is not event store"),
        (sub(2, "a.*"), "Error 107: invalid channel value, no wildcards are allowed"),
        (sub(2, "a"), "Error 111: invalid subscription type, cannot be undefined or 0"),
        (Subscribe { events_store_type_data: 4, ..sub(2, "a") }, "Error 112: invalid subscription type start at sequence value, cannot by 0 or negative"),
        (Subscribe { events_store_type_data: 5, events_store_type_value: -1, ..sub(2, "a") }, "Error 113: invalid subscription type start at time value, cannot by 0 or negative"),
        (Subscribe { events_store_type_data: 6, ..sub(2, "a") }, "Error 114: invalid subscription type start at time delta value, cannot by 0 or negative"),
    ];
    for (s, text) in cases {
        let status = raw.subscribe_to_events(s.clone()).await.expect_err(text);
        assert_eq!(status.code(), tonic::Code::Internal, "{s:?}");
        assert_eq!(status.message(), text, "{s:?}");
    }
    b.stop().await;
}

#[tokio::test]
async fn raw_subscriber_receives_and_unsubscribes_on_drop() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let mut stream = raw
        .subscribe_to_events(sub(1, "ev.raw.>"))
        .await
        .expect("subscribe")
        .into_inner();
    raw.send_event(raw_event("ev.raw.a.b", "hello"))
        .await
        .expect("send");
    let got: RawReceive = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("event arrives")
        .expect("open")
        .expect("ok");
    assert_eq!(got.channel, "ev.raw.a.b");
    assert_eq!(got.body, b"hello");
    drop(stream);
    common::eventually("subscription removed", || {
        b.running
            .broker
            .pubsub
            .subscriber_count(Kind::Events, "ev.raw.>")
            == 0
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn subscriptions_end_at_broker_shutdown() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let mut stream = raw
        .subscribe_to_events(sub(1, "ev.shutdown"))
        .await
        .expect("subscribe")
        .into_inner();
    let stopping = tokio::spawn(b.stop());
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("stream ends at shutdown");
    assert!(matches!(end, None | Some(Err(_))), "{end:?}");
    stopping.await.expect("stopped");
}
