//! StreamQueueMessage over gRPC (raw client; the Rust SDK never calls it): one message
//! lifecycle per stream, its error codes, rejects, visibility expiry and disconnects.
#![expect(clippy::unwrap_used, reason = "test assertions")]

mod common;
mod queues_util;

use llm_router::kubemq::StreamQueueMessagesRequest;
use llm_router::kubemq::StreamRequestType as K;
use queues_util::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn receive_then_ack_ends_the_stream() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "sq", 2).await;
    let mut s = Single::open(&mut raw).await;
    let r = s.request(K::ReceiveMessage, "sq", 0, 5, 1).await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(
        (r.request_id.as_str(), r.stream_request_type_data),
        ("req-1", 1)
    );
    let m = r.message.unwrap();
    assert_eq!((attrs(&m).sequence, attrs(&m).receive_count), (1, 1));
    let again = s.request(K::ReceiveMessage, "sq", 0, 5, 1).await;
    assert_eq!(
        again.error,
        "Error 128: subscription to queue is already active"
    );
    let wrong = s.request(K::AckMessage, "", 7, 0, 0).await;
    assert_eq!(
        wrong.error,
        "Error 125: ack sequence cannot be 0 or negative"
    );
    let ok = s.request(K::AckMessage, "", 1, 0, 0).await;
    assert!(!ok.is_error);
    assert_eq!(ok.stream_request_type_data, K::AckMessage as i32);
    assert!(s.next().await.is_none(), "stream ends after the ack");
    assert_eq!(broker.running.broker.queues.depth("sq"), 1);
    broker.stop().await;
}

#[tokio::test]
async fn validation_errors_do_not_end_the_stream() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let mut s = Single::open(&mut raw).await;
    let e = |r: llm_router::kubemq::StreamQueueMessagesResponse| r.error;
    assert_eq!(
        e(s.request(K::AckMessage, "", 0, 0, 0).await),
        "Error 125: ack sequence cannot be 0 or negative"
    );
    assert_eq!(
        e(s.request(K::AckMessage, "", 3, 0, 0).await),
        "Error 124: no active message to ack"
    );
    assert_eq!(
        e(s.request(K::RejectMessage, "", 3, 0, 0).await),
        "Error 137: no active message to reject"
    );
    assert_eq!(
        e(s.request(K::ResendMessage, "x", 0, 0, 0).await),
        "Error 126: no active message to send"
    );
    assert_eq!(
        e(s.request(K::SendModifiedMessage, "", 0, 0, 0).await),
        "Error 131: invalid queue message"
    );
    assert!(e(s.request(K::ReceiveMessage, "q*", 0, 0, 0).await).starts_with("Error 120:"));
    assert!(e(s.request(K::ReceiveMessage, "q", 0, 43201, 0).await).starts_with("Error 127:"));
    assert!(e(s.request(K::ReceiveMessage, "q", 0, 0, -1).await).starts_with("Error 136:"));
    assert!(e(s.request(K::ModifyVisibility, "", 0, -1, 0).await).starts_with("Error 127:"));
    let ok = s.request(K::ModifyVisibility, "", 0, 10, 0).await;
    assert!(!ok.is_error);
    s.tx.send(StreamQueueMessagesRequest {
        client_id: "c".into(),
        stream_request_type_data: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = s.next().await.unwrap();
    assert_eq!(
        r.error,
        "Error 132: invalid stream queue messages request type"
    );
    assert_eq!(r.request_id.len(), 22, "an empty request id gets a NUID");
    s.tx.send(StreamQueueMessagesRequest {
        stream_request_type_data: 1,
        channel: "q".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        s.next().await.unwrap().error,
        "Error 101: invalid clientID value, cannot be empty"
    );
    broker.stop().await;
}

#[tokio::test]
async fn no_message_within_wait_is_138_and_ends_the_stream() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    let mut s = Single::open(&mut raw).await;
    let t = Instant::now();
    let r = s.request(K::ReceiveMessage, "empty.sq", 0, 0, 1).await;
    assert_eq!(
        r.error,
        "Error 138: no new message in queue, wait time expired"
    );
    assert!(t.elapsed() >= Duration::from_millis(950));
    assert!(s.next().await.is_none());
    broker.stop().await;
}

#[tokio::test]
async fn reject_republishes_with_new_sequence_and_count() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "rj", 1).await;
    let mut s = Single::open(&mut raw).await;
    let r = s.request(K::ReceiveMessage, "rj", 0, 5, 1).await;
    assert_eq!(attrs(r.message.as_ref().unwrap()).sequence, 1);
    assert_eq!(
        s.request(K::RejectMessage, "", 2, 0, 0).await.error,
        "Error 125: ack sequence cannot be 0 or negative"
    );
    let ok = s.request(K::RejectMessage, "", 1, 0, 0).await;
    assert!(!ok.is_error);
    assert!(s.next().await.is_none());
    let got = receive(&mut raw, "rj", 1, 1, false).await;
    let a = attrs(&got.messages[0]);
    assert_eq!((a.sequence, a.receive_count), (2, 2));
    broker.stop().await;
}

#[tokio::test]
async fn visibility_expiry_and_disconnect_count_as_failures() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send_n(&mut raw, "vis", 1).await;
    let mut s = Single::open(&mut raw).await;
    s.request(K::ReceiveMessage, "vis", 0, 1, 1).await;
    let t = Instant::now();
    let r = s.next().await.unwrap();
    assert_eq!(r.error, "Error 129: current visibility timer expired");
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert!(s.next().await.is_none());
    let mut s = Single::open(&mut raw).await;
    let r = s.request(K::ReceiveMessage, "vis", 0, 30, 1).await;
    let a = attrs(r.message.as_ref().unwrap());
    assert_eq!((a.sequence, a.receive_count), (2, 2));
    drop(s);
    let queues = broker.running.broker.queues.clone();
    eventually(|| queues.depth("vis") == 1).await;
    let got = receive(&mut raw, "vis", 1, 1, false).await;
    let a = attrs(&got.messages[0]);
    assert_eq!((a.sequence, a.receive_count), (3, 3));
    broker.stop().await;
}

#[tokio::test]
async fn resend_and_send_modified_replace_the_message() {
    let broker = common::start_broker().await;
    let mut raw = broker.raw().await;
    send(&mut raw, with_policy(msg("rsd", "orig"), 0, 0, 5, "")).await;
    let mut s = Single::open(&mut raw).await;
    let r = s.request(K::ReceiveMessage, "rsd", 0, 5, 1).await;
    let id = r.message.unwrap().message_id;
    assert!(
        !s.request(K::ResendMessage, "rsd.copy", 0, 0, 0)
            .await
            .is_error
    );
    assert!(s.next().await.is_none());
    let copy = receive(&mut raw, "rsd.copy", 1, 1, false).await;
    let m = &copy.messages[0];
    assert_eq!(
        (m.message_id.as_str(), m.body.as_slice()),
        (id.as_str(), b"orig".as_slice())
    );
    assert_eq!(m.policy.clone().unwrap().max_receive_count, 5);
    assert_eq!(broker.running.broker.queues.depth("rsd"), 0);

    send_n(&mut raw, "rsd", 1).await;
    let mut s = Single::open(&mut raw).await;
    s.request(K::ReceiveMessage, "rsd", 0, 5, 1).await;
    let mut req = StreamQueueMessagesRequest {
        request_id: "mod".into(),
        client_id: "c".into(),
        stream_request_type_data: K::SendModifiedMessage as i32,
        modified_message: Some(msg("rsd.mod", "")),
        ..Default::default()
    };
    s.tx.send(req.clone()).await.unwrap();
    assert_eq!(
        s.next().await.unwrap().error,
        "Error 110: invalid message, cannot be empty"
    );
    req.modified_message = Some(msg("rsd.mod", "changed"));
    s.tx.send(req).await.unwrap();
    assert!(!s.next().await.unwrap().is_error);
    assert!(s.next().await.is_none());
    let m = receive(&mut raw, "rsd.mod", 1, 1, false).await;
    assert_eq!(bodies(&m.messages), ["changed"]);
    assert_eq!(broker.running.broker.queues.depth("rsd"), 0);
    broker.stop().await;
}
