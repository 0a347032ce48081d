//! QueuesDownstream transactions over gRPC: the official SDK's poll/ack/nack/requeue, and
//! the raw client for exact error texts, ActiveOffsets, DLQ and wait semantics.
#![expect(clippy::unwrap_used, reason = "test assertions")]

mod common;
mod queues_util;

use kubemq::PollRequest;
use llm_router::kubemq::QueuesDownstreamRequestType as T;
use queues_util::*;
use std::time::{Duration, Instant};

fn poll(channel: &str, max: i32) -> PollRequest {
    PollRequest {
        channel: channel.into(),
        max_items: max,
        wait_timeout_seconds: 1,
        auto_ack: false,
    }
}

#[tokio::test]
async fn sdk_poll_ack_nack_requeue() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "sdk.down", 3).await;
    let sdk = broker.sdk("sdk-down").await;
    let mut rx = sdk.new_queue_downstream_receiver().await.unwrap();
    let resp = rx.poll(poll("sdk.down", 3)).await.unwrap();
    assert!(!resp.is_error && !resp.transaction_complete);
    assert_eq!(resp.messages.len(), 3);
    let rc: Vec<i32> = resp
        .messages
        .iter()
        .map(|m| m.message.attributes.clone().unwrap().receive_count)
        .collect();
    assert_eq!(rc, [1, 1, 1]);
    resp.messages[0].ack().await.unwrap();
    resp.messages[1].nack().await.unwrap();
    resp.messages[2].re_queue("sdk.other").await.unwrap();
    // Successful settlements produce no response, so the next poll reads its own answer.
    let again = rx.poll(poll("sdk.down", 1)).await.unwrap();
    assert_eq!(again.messages.len(), 1);
    let a = again.messages[0].message.attributes.clone().unwrap();
    assert_eq!(
        (a.sequence, a.receive_count),
        (4, 2),
        "nack re-publishes at the tail"
    );
    again.ack_all().await.unwrap();
    let other = rx.poll(poll("sdk.other", 1)).await.unwrap();
    let o = other.messages[0].message.attributes.clone().unwrap();
    assert_eq!((o.sequence, o.receive_count, o.re_routed), (1, 1, false));
    assert_eq!(other.messages[0].message.body, b"m2");
    other.nack_all().await.unwrap();
    let back = rx.poll(poll("sdk.other", 1)).await.unwrap();
    assert_eq!(back.messages[0].sequence, 2);
    back.re_queue_all("sdk.final").await.unwrap();
    rx.close().await.unwrap();
    let queues = broker.running.broker.queues.clone();
    eventually(|| queues.depth("sdk.final") == 1).await;
    assert_eq!(broker.running.broker.queues.depth("sdk.down"), 0);
    broker.stop().await;
}

#[tokio::test]
async fn get_validation_and_wait_semantics() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let mut down = Down::open(&mut raw).await;
    let bad = down.get("a b", 1, 1000, false).await;
    assert!(bad.is_error);
    assert_eq!(bad.request_type_data, T::Get as i32);
    assert_eq!(bad.ref_request_id, "get-1");
    assert_eq!(bad.transaction_id.len(), 36);
    assert!(bad.error.starts_with("Error 120:"));
    send_n(&mut raw, "gw", 3).await;
    let t = Instant::now();
    let partial = down.get("gw", 10, 0, false).await;
    assert_eq!(partial.messages.len(), 3);
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "WaitTimeout 0 becomes 1000 ms"
    );
    down.settle(T::AckAll, &partial.transaction_id, vec![], "")
        .await;
    let t = Instant::now();
    let empty = down.get("gw", 5, 300, false).await;
    assert!(!empty.is_error && empty.messages.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(950));
    down.settle(T::AckAll, &empty.transaction_id, vec![], "")
        .await;
    let closed = down.next().await.unwrap();
    assert_eq!(closed.error, "cannot ack messages with closed response ");
    send_n(&mut raw, "gw", 2).await;
    let t = Instant::now();
    let full = down.get("gw", 2, 5000, false).await;
    assert_eq!(full.messages.len(), 2);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "a filled Get returns at once"
    );
    broker.stop().await;
}

#[tokio::test]
async fn settlement_errors_and_active_offsets() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "se", 3).await;
    let mut down = Down::open(&mut raw).await;
    let got = down.get("se", 3, 1000, false).await;
    let txn = got.transaction_id.clone();
    assert_eq!(seqs(&got.messages), [1, 2, 3]);

    down.settle(T::ActiveOffsets, &txn, vec![], "").await;
    let r = down.next().await.unwrap();
    assert_eq!(r.request_type_data, T::ActiveOffsets as i32);
    let mut offsets = r.active_offsets.clone();
    offsets.sort_unstable();
    assert_eq!(offsets, [1, 2, 3]);

    let cases: Vec<(T, Vec<i64>, &str, &str)> = vec![
        (
            T::AckRange,
            vec![],
            "",
            "cannot ack empty list of of offsets",
        ),
        (
            T::NAckRange,
            vec![],
            "",
            "cannot nack empty list of of offsets",
        ),
        (
            T::ReQueueRange,
            vec![1],
            "",
            "cannot requeue messages with empty channel destination ",
        ),
        (
            T::ReQueueAll,
            vec![],
            "",
            "cannot requeue messages with empty channel destination ",
        ),
        (
            T::ReQueueRange,
            vec![],
            "x",
            "cannot requeue empty list of of offsets",
        ),
        (T::NAckRange, vec![9], "", "invalid nack sequence id 9"),
        (T::ReQueueRange, vec![9], "x", "invalid ack sequence id 9"),
        (T::AckRange, vec![1, 9], "", "invalid ack sequence id 9"),
    ];
    for (kind, seqs_, ch, text) in cases {
        down.settle(kind, &txn, seqs_, ch).await;
        let r = down.next().await.unwrap();
        assert!(r.is_error);
        assert_eq!((r.error.as_str(), r.request_type_data), (text, kind as i32));
        assert_eq!(r.transaction_id, txn);
    }
    down.settle(T::TransactionStatus, &txn, vec![], "").await;
    let r = down.next().await.unwrap();
    assert_eq!(
        (r.error.as_str(), r.request_type_data),
        ("request unknown", 0)
    );
    down.settle(T::AckAll, "nope", vec![], "").await;
    let r = down.next().await.unwrap();
    assert_eq!(
        r.error,
        "transaction is completed or transaction id not found"
    );
    assert_eq!(
        (r.transaction_id.as_str(), r.request_type_data),
        ("nope", T::AckAll as i32)
    );

    // Seq 1 was acked by the failed range above; 2 and 3 remain.
    down.settle(T::AckRange, &txn, vec![2], "").await;
    assert!(
        down.maybe_next().await.is_none(),
        "no response for a successful settlement"
    );
    down.settle(T::AckRange, &txn, vec![3], "").await;
    down.settle(T::ActiveOffsets, &txn, vec![], "").await;
    let r = down.next().await.unwrap();
    assert_eq!(r.error, "cannot get active offsets with closed response ");
    let closed: Vec<(T, &str)> = vec![
        (T::AckAll, "cannot ack messages with closed response "),
        (T::AckRange, "cannot ack messages with closed response "),
        (T::NAckAll, "cannot nack messages with closed response "),
        (T::NAckRange, "cannot nack messages with closed response "),
        (T::ReQueueAll, "cannot ack messages with closed response "),
        (
            T::ReQueueRange,
            "cannot requeue messages with closed response ",
        ),
    ];
    for (kind, text) in closed {
        down.settle(kind, &txn, vec![1], "x").await;
        assert_eq!(down.next().await.unwrap().error, text);
    }
    assert_eq!(broker.running.broker.queues.depth("se"), 0);
    broker.stop().await;
}

#[tokio::test]
async fn close_and_stream_end_return_messages_unchanged() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "cl", 2).await;
    let mut down = Down::open(&mut raw).await;
    let got = down.get("cl", 2, 1000, false).await;
    down.settle(T::CloseByClient, &got.transaction_id, vec![], "")
        .await;
    assert!(down.maybe_next().await.is_none());
    let again = down.get("cl", 2, 1000, false).await;
    assert_eq!(seqs(&again.messages), [1, 2]);
    assert_eq!(attrs(&again.messages[0]).receive_count, 1);
    drop(down);
    let mut down = Down::open(&mut raw).await;
    let third = down.get("cl", 2, 3000, false).await;
    assert_eq!(
        seqs(&third.messages),
        [1, 2],
        "stream end releases without counting"
    );
    assert_eq!(attrs(&third.messages[1]).receive_count, 1);
    // Divergence: an open transaction does not absorb messages sent after its Get.
    send_n(&mut raw, "cl", 1).await;
    let fourth = down.get("cl", 1, 1000, false).await;
    assert_eq!(seqs(&fourth.messages), [3]);
    broker.stop().await;
}

#[tokio::test]
async fn auto_ack_get_is_a_closed_transaction() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "aa.get", 2).await;
    let mut down = Down::open(&mut raw).await;
    let got = down.get("aa.get", 2, 1000, true).await;
    assert_eq!(got.messages.len(), 2);
    down.settle(T::NAckAll, &got.transaction_id, vec![], "")
        .await;
    let r = down.next().await.unwrap();
    assert_eq!(r.error, "cannot nack messages with closed response ");
    assert_eq!(broker.running.broker.queues.depth("aa.get"), 0);
    // The SDK's close() sends CloseByClient with no transaction id.
    down.settle(T::CloseByClient, "", vec![], "").await;
    let r = down.next().await.unwrap();
    assert_eq!(
        r.error,
        "transaction is completed or transaction id not found"
    );
    broker.stop().await;
}

#[tokio::test]
async fn nack_counts_and_dead_letters_after_max_receive_count() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send(
        &mut raw,
        with_policy(msg("dl.src", "x"), 0, 0, 2, "dl.dead"),
    )
    .await;
    send(&mut raw, with_policy(msg("dl.gone", "y"), 0, 0, 1, "")).await;
    let mut down = Down::open(&mut raw).await;
    let first = down.get("dl.src", 1, 1000, false).await;
    assert_eq!(attrs(&first.messages[0]).receive_count, 1);
    down.settle(T::NAckAll, &first.transaction_id, vec![], "")
        .await;
    let second = down.get("dl.src", 1, 1000, false).await;
    let a = attrs(&second.messages[0]);
    assert_eq!((a.sequence, a.receive_count), (2, 2));
    down.settle(T::NAckRange, &second.transaction_id, vec![2], "")
        .await;
    let none = down.get("dl.src", 1, 1000, false).await;
    assert!(none.messages.is_empty());
    let dead = down.get("dl.dead", 1, 1000, false).await;
    let m = &dead.messages[0];
    let a = attrs(m);
    assert!(a.re_routed);
    assert_eq!(a.re_routed_from_queue, "dl.src");
    assert_eq!((a.receive_count, a.sequence), (1, 1));
    let p = m.policy.clone().unwrap();
    assert_eq!((p.max_receive_count, p.max_receive_queue.as_str()), (0, ""));
    let once = down.get("dl.gone", 1, 1000, false).await;
    down.settle(T::NAckAll, &once.transaction_id, vec![], "")
        .await;
    let gone = down.get("dl.gone", 1, 1000, false).await;
    assert!(gone.messages.is_empty(), "no DLQ: discarded");
    broker.stop().await;
}

#[tokio::test]
async fn competing_consumers_get_each_message_once() {
    let broker = common::start_broker().await;
    let total = 2000;
    let mut producers = Vec::new();
    for p in 0..2 {
        let mut raw = broker.raw().await;
        producers.push(tokio::spawn(async move {
            for b in 0..total / 2 / 50 {
                let messages = (0..50)
                    .map(|i| msg("race", &format!("{p}-{b}-{i}")))
                    .collect();
                raw.send_queue_messages_batch(llm_router::kubemq::QueueMessagesBatchRequest {
                    batch_id: String::new(),
                    messages,
                })
                .await
                .unwrap();
            }
        }));
    }
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut consumers = Vec::new();
    for c in 0..4 {
        let mut raw = broker.raw().await;
        let seen = seen.clone();
        consumers.push(tokio::spawn(async move {
            let mut down = Down::open(&mut raw).await;
            while len(&seen) < total {
                let got = down.get("race", 7, 1000, false).await;
                // Every other batch is nacked once, to mix redeliveries in.
                let redo = c % 2 == 0 && got.messages.iter().all(|m| attrs(m).receive_count == 1);
                if redo && !got.messages.is_empty() {
                    down.settle(T::NAckAll, &got.transaction_id, vec![], "")
                        .await;
                    continue;
                }
                extend(&seen, bodies(&got.messages));
                down.settle(T::AckAll, &got.transaction_id, vec![], "")
                    .await;
            }
            // Settlements get no response; a request that does, answered in order after
            // them, proves they were applied before this client hangs up (a client that
            // drops its stream right after an ack may lose the ack, and the broker then
            // correctly redelivers).
            down.settle(T::ActiveOffsets, "sync", vec![], "").await;
            assert!(down.next().await.unwrap().is_error);
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    for c in consumers {
        c.await.unwrap();
    }
    let mut all = seen.lock().clone();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (total, total), "each message exactly once");
    assert_eq!(broker.running.broker.queues.depth("race"), 0);
    broker.stop().await;
}

fn len(seen: &parking_lot::Mutex<Vec<String>>) -> usize {
    seen.lock().len()
}

fn extend(seen: &parking_lot::Mutex<Vec<String>>, items: Vec<String>) {
    seen.lock().extend(items);
}
