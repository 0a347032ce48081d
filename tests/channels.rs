//! Channel management through `kubemq.cluster.internal.requests` (KUBEMQ.md §4.1):
//! create, list with live stats in the JSON shape the SDKs parse, delete with purge.
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

mod common;

use common::TestBroker;
use futures::StreamExt;
use kubemq::prelude::*;
use llm_router::kubemq::{Event as RawEvent, Request as RawRequest, Subscribe};
use std::collections::HashMap;
use std::time::Duration;

const TYPES: [&str; 5] = ["events", "events_store", "commands", "queries", "queues"];

#[tokio::test]
async fn create_list_and_delete_every_type_with_the_sdk() {
    let b = common::start_broker().await;
    let sdk = b.sdk("admin").await;
    for kind in TYPES {
        let name = format!("mgmt.{kind}.one");
        sdk.create_channel(&name, kind).await.expect("create");
        sdk.create_channel(&format!("other.{kind}"), kind)
            .await
            .expect("create");
        let listed = sdk.list_channels(kind, "mgmt.").await.expect("list");
        assert_eq!(listed.len(), 1, "{kind}: {listed:?}");
        assert_eq!(listed[0].name, name);
        assert_eq!(listed[0].channel_type, kind);
        assert!(!listed[0].is_active);
        let all = sdk.list_channels(kind, "").await.expect("list all");
        assert_eq!(all.len(), 2, "{kind}: {all:?}");
        sdk.delete_channel(&name, kind).await.expect("delete");
        let listed = sdk.list_channels(kind, "mgmt.").await.expect("list");
        assert!(listed.is_empty(), "{kind}: {listed:?}");
    }
    b.stop().await;
}

async fn raw_list(b: &TestBroker, kind: &str, search: &str) -> serde_json::Value {
    let mut raw = b.raw().await;
    let resp = raw
        .send_request(RawRequest {
            request_id: "list-1".into(),
            request_type_data: 2,
            client_id: "admin".into(),
            channel: "kubemq.cluster.internal.requests".into(),
            metadata: "list-channels".into(),
            timeout: 10_000,
            tags: HashMap::from([
                ("channel_type".to_owned(), kind.to_owned()),
                ("channel_search".to_owned(), search.to_owned()),
            ]),
            ..RawRequest::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(resp.executed, "{resp:?}");
    assert_eq!(resp.error, "");
    assert_eq!(resp.request_id, "list-1");
    serde_json::from_slice(&resp.body).expect("JSON body")
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn list_body_has_exactly_the_keys_each_sdk_type_needs() {
    let b = common::start_broker().await;
    let sdk = b.sdk("admin").await;
    assert_eq!(
        raw_list(&b, "events", "").await,
        serde_json::json!([]),
        "empty list is []"
    );
    for kind in TYPES {
        sdk.create_channel(&format!("shape.{kind}"), kind)
            .await
            .expect("create");
        let list = raw_list(&b, kind, "shape.").await;
        let item = &list.as_array().expect("array")[0];
        assert_eq!(
            keys(item),
            [
                "incoming",
                "isActive",
                "lastActivity",
                "name",
                "outgoing",
                "type"
            ]
        );
        assert_eq!(item["type"], kind);
        assert!(item["lastActivity"].as_i64().is_some());
        let expected: &[&str] = match kind {
            "commands" | "queries" => &["messages", "responses", "volume"],
            "queues" => &["delayed", "expired", "messages", "volume", "waiting"],
            _ => &["messages", "volume"],
        };
        assert_eq!(keys(&item["incoming"]), expected, "{kind}");
        assert_eq!(keys(&item["outgoing"]), expected, "{kind}");
    }
    b.stop().await;
}

#[tokio::test]
async fn list_reports_live_stats_for_events_and_queries() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let mut sub = raw
        .subscribe_to_events(Subscribe {
            subscribe_type_data: 1,
            client_id: "s".into(),
            channel: "stats.ev".into(),
            ..Subscribe::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    for _ in 0..2 {
        raw.send_event(RawEvent {
            client_id: "p".into(),
            channel: "stats.ev".into(),
            body: b"12345".to_vec(),
            ..RawEvent::default()
        })
        .await
        .expect("send");
        sub.next().await.expect("open").expect("event");
    }
    let list = raw_list(&b, "events", "stats.ev").await;
    let ev = &list[0];
    assert_eq!(ev["name"], "stats.ev");
    assert_eq!(ev["isActive"], true);
    assert_eq!(ev["incoming"]["messages"], 2);
    assert_eq!(ev["incoming"]["volume"], 10);
    assert_eq!(ev["outgoing"]["messages"], 2);
    assert_eq!(ev["outgoing"]["volume"], 10);
    let now_ms = llm_router::broker::ids::now_ns() / 1_000_000;
    let last = ev["lastActivity"].as_i64().expect("ms");
    assert!(
        last <= now_ms && last > now_ms - 10_000,
        "{last} vs {now_ms}"
    );

    let responder = b.sdk("responder").await;
    let r = responder.clone();
    let _sub = responder
        .subscribe_to_queries(
            "stats.q",
            "",
            move |q| {
                let r = r.clone();
                Box::pin(async move {
                    let reply = QueryReply::builder()
                        .request_id(&q.id)
                        .response_to(&q.response_to)
                        .body(b"ok".to_vec())
                        .build();
                    r.send_query_response(reply).await.expect("reply");
                })
            },
            None,
        )
        .await
        .expect("subscribe");
    let caller = b.sdk("caller").await;
    let mut sent = 0;
    for _ in 0..100 {
        let q = Query::builder()
            .channel("stats.q")
            .body(b"abc".to_vec())
            .timeout(Duration::from_millis(500))
            .build();
        if caller.send_query(q).await.is_ok() {
            sent += 1;
        }
        if sent == 3 {
            break;
        }
    }
    let sdk_list = caller.list_queries_channels("stats.q").await.expect("list");
    assert_eq!(sdk_list.len(), 1);
    assert!(sdk_list[0].is_active);
    let incoming = sdk_list[0].incoming.clone().expect("incoming");
    let outgoing = sdk_list[0].outgoing.clone().expect("outgoing");
    assert!(incoming.messages >= 3);
    assert_eq!(outgoing.responses, 3);
    assert_eq!(incoming.responses, 3);
    b.stop().await;
}

#[tokio::test]
async fn deleting_an_events_store_channel_purges_its_messages() {
    let b = common::start_broker().await;
    let sdk = b.sdk("admin").await;
    for i in 0..2 {
        let ev = EventStore::builder()
            .channel("purge.es")
            .body(format!("m{i}").into_bytes())
            .build();
        sdk.send_event_store(ev).await.expect("send");
    }
    let listed = sdk
        .list_events_store_channels("purge.es")
        .await
        .expect("list");
    assert_eq!(listed[0].incoming.clone().expect("incoming").messages, 2);
    sdk.delete_events_store_channel("purge.es")
        .await
        .expect("delete");
    assert!(sdk
        .list_events_store_channels("purge.es")
        .await
        .expect("list")
        .is_empty());
    let ev = EventStore::builder()
        .channel("purge.es")
        .body(b"again".to_vec())
        .build();
    sdk.send_event_store(ev).await.expect("send");
    let mut raw = b.raw().await;
    let mut s = raw
        .subscribe_to_events(Subscribe {
            subscribe_type_data: 2,
            client_id: "after".into(),
            channel: "purge.es".into(),
            events_store_type_data: 2,
            ..Subscribe::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let first = s.next().await.expect("open").expect("event");
    assert_eq!(
        (first.sequence, first.body.as_slice()),
        (1, b"again".as_slice())
    );
    b.stop().await;
}

#[tokio::test]
async fn bad_management_requests_are_answered_not_executed() {
    let b = common::start_broker().await;
    let mut raw = b.raw().await;
    let base = RawRequest {
        request_type_data: 2,
        client_id: "admin".into(),
        channel: "kubemq.cluster.internal.requests".into(),
        metadata: "create-channel".into(),
        timeout: 10_000,
        ..RawRequest::default()
    };
    let tags = |t: &str, c: &str| {
        HashMap::from([
            ("channel_type".to_owned(), t.to_owned()),
            ("channel".to_owned(), c.to_owned()),
        ])
    };
    let cases = [
        (tags("topics", "x"), "create-channel", "invalid channel type 'topics'"),
        (tags("events", "a.*"), "create-channel", "Error 107: invalid channel value, no wildcards are allowed"),
        (tags("queues", "a b"), "create-channel", "Error 120: invalid queue name value, cannot be empty, contains wildcards ,white spaces and end with dot"),
        (tags("events", "x"), "rename-channel", "invalid channel management request 'rename-channel'"),
    ];
    for (tags, op, error) in cases {
        let resp = raw
            .send_request(RawRequest {
                tags,
                metadata: op.into(),
                ..base.clone()
            })
            .await
            .expect("answered")
            .into_inner();
        assert!(!resp.executed);
        assert_eq!(resp.error, error);
    }
    let status = raw
        .send_request(RawRequest { timeout: 0, ..base })
        .await
        .expect_err("usual request validation applies");
    assert_eq!(
        status.message(),
        "Error 109: invalid set timeout value, cannot be 0 or negative"
    );
    b.stop().await;
}
