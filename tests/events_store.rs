//! Events store over gRPC: sequences, the six start positions, durable resume, groups,
//! replay-to-live without gaps, retention and restart (KUBEMQ.md §2.4, §5).
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

mod common;

use common::TestBroker;
use futures::StreamExt;
use kubemq::prelude::*;
use llm_router::broker::pubsub::stats::Kind;
use llm_router::kubemq::kubemq_client::KubemqClient;
use llm_router::kubemq::{Event as RawEvent, EventReceive as RawReceive, Subscribe};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::Channel;

const EVENTS_STORE: i32 = 2;

async fn wait_subs(b: &TestBroker, channel: &str, n: usize) {
    let mut count = usize::MAX;
    for _ in 0..500 {
        count = b
            .running
            .broker
            .pubsub
            .subscriber_count(Kind::EventsStore, channel);
        if count == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count, n, "subscriptions on {channel}");
}

async fn publish(raw: &mut KubemqClient<Channel>, channel: &str, body: &str) {
    let res = raw
        .send_event(RawEvent {
            client_id: "pub".into(),
            channel: channel.into(),
            body: body.as_bytes().to_vec(),
            store: true,
            ..RawEvent::default()
        })
        .await
        .expect("send")
        .into_inner();
    assert!(res.sent, "{res:?}");
}

fn store_sub(client: &str, channel: &str, group: &str, kind: i32, value: i64) -> Subscribe {
    Subscribe {
        subscribe_type_data: EVENTS_STORE,
        client_id: client.into(),
        channel: channel.into(),
        group: group.into(),
        events_store_type_data: kind,
        events_store_type_value: value,
    }
}

type Stream = tonic::Streaming<RawReceive>;

async fn open(raw: &mut KubemqClient<Channel>, sub: Subscribe) -> Stream {
    raw.subscribe_to_events(sub)
        .await
        .expect("subscribe")
        .into_inner()
}

/// The next `n` events, then checks nothing else arrives within `quiet`.
async fn take(stream: &mut Stream, n: usize, quiet: Duration) -> Vec<RawReceive> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("event arrives")
            .expect("stream open")
            .expect("no error");
        out.push(ev);
    }
    let extra = tokio::time::timeout(quiet, stream.next()).await;
    assert!(extra.is_err(), "unexpected extra event: {extra:?}");
    out
}

fn bodies(evs: &[RawReceive]) -> Vec<String> {
    evs.iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect()
}

fn seqs(evs: &[RawReceive]) -> Vec<u64> {
    evs.iter().map(|e| e.sequence).collect()
}

const QUIET: Duration = Duration::from_millis(150);

#[tokio::test]
async fn six_start_positions_with_sequences_and_timestamps() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let ch = "es.start";
    let before = llm_router::broker::ids::now_ns();
    publish(&mut raw, ch, "m1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    publish(&mut raw, ch, "m2").await;
    publish(&mut raw, ch, "m3").await;

    let mut first = open(&mut raw, store_sub("c-first", ch, "", 2, 0)).await;
    let all = take(&mut first, 3, QUIET).await;
    assert_eq!(bodies(&all), ["m1", "m2", "m3"]);
    assert_eq!(seqs(&all), [1, 2, 3]);
    assert!(all
        .iter()
        .all(|e| e.channel == ch && e.event_id.len() == 22));
    assert!(all[0].timestamp >= before && all[0].timestamp <= all[1].timestamp);
    assert!(all[2].timestamp <= llm_router::broker::ids::now_ns());

    let mut new_only = open(&mut raw, store_sub("c-new", ch, "", 1, 0)).await;
    let mut last = open(&mut raw, store_sub("c-last", ch, "", 3, 0)).await;
    let mut at_seq = open(&mut raw, store_sub("c-seq", ch, "", 4, 2)).await;
    let mut at_time = open(&mut raw, store_sub("c-time", ch, "", 5, all[1].timestamp)).await;
    let mut delta = open(&mut raw, store_sub("c-delta", ch, "", 6, 1)).await;
    assert_eq!(seqs(&take(&mut last, 1, QUIET).await), [3]);
    assert_eq!(seqs(&take(&mut at_seq, 2, QUIET).await), [2, 3]);
    assert_eq!(seqs(&take(&mut at_time, 2, QUIET).await), [2, 3]);
    assert_eq!(seqs(&take(&mut delta, 2, QUIET).await), [2, 3]);
    assert!(take(&mut new_only, 0, QUIET).await.is_empty());

    publish(&mut raw, ch, "m4").await;
    for s in [
        &mut first,
        &mut new_only,
        &mut last,
        &mut at_seq,
        &mut at_time,
        &mut delta,
    ] {
        let got = take(s, 1, Duration::from_millis(20)).await;
        assert_eq!((got[0].sequence, bodies(&got)[0].as_str()), (4, "m4"));
    }
    b.stop().await;
}

#[tokio::test]
async fn sdk_start_positions() {
    let b = common::start_broker().await;
    let sdk = b.sdk("es-sdk").await;
    let ch = "es.sdk";
    for i in 1..=3 {
        let ev = EventStore::builder()
            .channel(ch)
            .body(format!("m{i}").into_bytes())
            .build();
        let res = sdk.send_event_store(ev).await.expect("send");
        assert!(res.sent);
    }
    let positions = [
        (EventsStoreSubscription::StartFromFirst, vec![1, 2, 3]),
        (EventsStoreSubscription::StartFromLast, vec![3]),
        (EventsStoreSubscription::StartAtSequence(2), vec![2, 3]),
        (
            EventsStoreSubscription::StartAtTime(SystemTime::now() - Duration::from_secs(60)),
            vec![1, 2, 3],
        ),
        (
            EventsStoreSubscription::StartAtTimeDelta(Duration::from_secs(60)),
            vec![1, 2, 3],
        ),
        (EventsStoreSubscription::StartNewOnly, vec![]),
    ];
    for (i, (start, expected)) in positions.into_iter().enumerate() {
        let client = b.sdk(&format!("es-sdk-{i}")).await;
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let sub = client
            .subscribe_to_events_store(
                ch,
                "",
                start,
                move |ev| {
                    sink.lock().push(ev.sequence);
                    Box::pin(async {})
                },
                None,
            )
            .await
            .expect("subscribe");
        wait_subs(&b, ch, 1).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.lock().len() < expected.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(*got.lock(), expected, "position {i}");
        sub.unsubscribe().await;
        wait_subs(&b, ch, 0).await;
    }
    b.stop().await;
}

#[tokio::test]
async fn durable_subscription_resumes_and_ignores_start_position() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let ch = "es.durable";
    for m in ["m1", "m2", "m3"] {
        publish(&mut raw, ch, m).await;
    }
    let mut s = open(&mut raw, store_sub("dur", ch, "", 2, 0)).await;
    assert_eq!(bodies(&take(&mut s, 3, QUIET).await), ["m1", "m2", "m3"]);
    drop(s);
    wait_subs(&b, ch, 0).await;
    publish(&mut raw, ch, "m4").await;
    let mut s = open(&mut raw, store_sub("dur", ch, "", 2, 0)).await;
    assert_eq!(bodies(&take(&mut s, 1, QUIET).await), ["m4"]);
    drop(s);
    wait_subs(&b, ch, 0).await;
    let mut s = open(&mut raw, store_sub("dur", ch, "", 1, 0)).await;
    assert!(take(&mut s, 0, QUIET).await.is_empty());
    // A different group is a different durable.
    let mut g = open(&mut raw, store_sub("dur", ch, "g", 2, 0)).await;
    assert_eq!(seqs(&take(&mut g, 4, QUIET).await), [1, 2, 3, 4]);
    b.stop().await;
}

#[tokio::test]
async fn one_client_id_may_hold_concurrent_subscriptions() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    publish(&mut raw, "es.same.a", "a1").await;
    publish(&mut raw, "es.same.b", "b1").await;
    let mut a = open(&mut raw, store_sub("same", "es.same.a", "", 2, 0)).await;
    let mut b2 = open(&mut raw, store_sub("same", "es.same.b", "", 2, 0)).await;
    assert_eq!(bodies(&take(&mut a, 1, QUIET).await), ["a1"]);
    assert_eq!(bodies(&take(&mut b2, 1, QUIET).await), ["b1"]);
    b.stop().await;
}

#[tokio::test]
async fn group_members_share_the_channel_without_duplicates() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let ch = "es.group";
    let mut m1 = open(&mut raw, store_sub("m1", ch, "workers", 1, 0)).await;
    let mut m2 = open(&mut raw, store_sub("m2", ch, "workers", 1, 0)).await;
    let mut solo = open(&mut raw, store_sub("solo", ch, "", 1, 0)).await;
    for i in 0..20 {
        publish(&mut raw, ch, &format!("e{i}")).await;
    }
    let all = take(&mut solo, 20, QUIET).await;
    assert_eq!(seqs(&all), (1..=20).collect::<Vec<_>>());
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut n1, mut n2) = (0, 0);
    while got.len() < 20 && Instant::now() < deadline {
        tokio::select! {
            Some(Ok(ev)) = m1.next() => { n1 += 1; got.push(ev.sequence) }
            Some(Ok(ev)) = m2.next() => { n2 += 1; got.push(ev.sequence) }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert!(n1 > 0 && n2 > 0, "both members get a share: {n1}/{n2}");
    b.stop().await;
}

#[tokio::test]
async fn replay_switches_to_live_without_gaps_or_duplicates() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let ch = "es.live";
    let total = 600;
    let mut publisher = b.raw().await;
    let feeding = tokio::spawn(async move {
        for i in 0..total {
            publish(&mut publisher, ch, &format!("e{i}")).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut s = open(&mut raw, store_sub("live", ch, "", 2, 0)).await;
    feeding.await.expect("publisher");
    let got = take(&mut s, total, QUIET).await;
    assert_eq!(seqs(&got), (1..=total as u64).collect::<Vec<_>>());
    b.stop().await;
}

#[tokio::test]
async fn retention_drops_old_messages_and_sequences_continue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::config(dir.path());
    config.retention = Duration::from_millis(200);
    let b = common::start_broker_with(config, dir).await;
    let mut raw = b.raw().await;
    let ch = "es.retention";
    publish(&mut raw, ch, "old1").await;
    publish(&mut raw, ch, "old2").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut s = open(&mut raw, store_sub("ret", ch, "", 2, 0)).await;
    assert!(take(&mut s, 0, QUIET).await.is_empty());
    publish(&mut raw, ch, "new").await;
    let got = take(&mut s, 1, Duration::from_millis(20)).await;
    assert_eq!((got[0].sequence, bodies(&got)[0].as_str()), (3, "new"));
    b.stop().await;
}

/// Starts a broker on `dir` again; retries while the previous instance releases it.
async fn restart(dir: tempfile::TempDir) -> TestBroker {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(running) = llm_router::broker::start(common::config(dir.path())).await {
            return TestBroker { running, dir };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running = llm_router::broker::start(common::config(dir.path()))
        .await
        .expect("restart on the same data dir");
    TestBroker { running, dir }
}

#[tokio::test]
async fn messages_and_cursors_survive_a_restart() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let ch = "es.restart";
    for i in 1..=300 {
        publish(&mut raw, ch, &format!("m{i}")).await;
    }
    let mut s = open(&mut raw, store_sub("keeper", ch, "", 2, 0)).await;
    let before = take(&mut s, 300, QUIET).await;
    drop(s);
    wait_subs(&b, ch, 0).await;
    drop(raw);
    let dir = b.stop().await;

    let b = restart(dir).await;
    let mut raw = b.raw().await;
    let mut s = open(&mut raw, store_sub("fresh", ch, "", 2, 0)).await;
    let after = take(&mut s, 300, QUIET).await;
    assert_eq!(after, before, "same sequences, ids, bodies and timestamps");
    publish(&mut raw, ch, "next").await;
    let next = take(&mut s, 1, Duration::from_millis(20)).await;
    assert_eq!(next[0].sequence, 301);
    let mut k = open(&mut raw, store_sub("keeper", ch, "", 2, 0)).await;
    assert_eq!(
        bodies(&take(&mut k, 1, QUIET).await),
        ["next"],
        "durable cursor survived"
    );
    b.stop().await;
}
