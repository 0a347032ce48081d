//! Events through our KubeMQ client (send, subscribe, events-store resubscribe across a
//! broker restart) and router membership, on loopback. Every test but the restart one
//! runs on either broker (`LLM_ROUTER_TEST_BROKER`); the restart one needs a broker that
//! keeps its store across a restart, which the real server's start script wipes.
#![expect(clippy::expect_used, reason = "a failed step fails the test")]

mod common;

use common::Broker;
use futures::StreamExt;
use llm_router::kubemq::client::{
    Client, ClientOptions, ErrorKind, Event as ClientEvent, EventSubscription,
};
use llm_router::kubemq::subscribe::{EventsStoreType, SubscribeType};
use llm_router::kubemq::{Event, EventReceive, Subscribe};
use llm_router::routing::Router;
use llm_router::worker::members::{Membership, MEMBERS_CHANNEL};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn client(address: &str, id: &str) -> Client {
    let mut options = ClientOptions::new(address, id);
    options.max_backoff = Duration::from_millis(200);
    Client::connect(options).await.expect("connect")
}

fn event(channel: &str, body: &str, store: bool) -> Event {
    Event {
        client_id: "members-test".into(),
        channel: channel.into(),
        body: body.as_bytes().to_vec(),
        store,
        ..Event::default()
    }
}

fn subscription(kind: SubscribeType, channel: &str, start: EventsStoreType) -> Subscribe {
    Subscribe {
        subscribe_type_data: kind as i32,
        client_id: format!("sub-{channel}"),
        channel: channel.into(),
        events_store_type_data: start as i32,
        ..Subscribe::default()
    }
}

async fn next(sub: &mut EventSubscription) -> EventReceive {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an event within 5 s")
        .expect("the subscription is open")
}

/// Sends until the broker takes it (it may be restarting).
async fn send_eventually(client: &Client, event: Event) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = client.send_event(event.clone()).await {
        assert!(Instant::now() < deadline, "event never taken: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn events_are_sent_and_delivered_and_a_bad_event_is_rejected() {
    let broker = Broker::start().await;
    let c = client(&broker.grpc_address(), "events").await;
    let sub = subscription(SubscribeType::Events, "ev", EventsStoreType::Undefined);
    let mut sub = c.subscribe_to_events(sub).await.expect("subscribe");
    common::eventually("subscribed", || sub.is_active()).await;
    c.send_event(event("ev", "one", false)).await.expect("send");
    assert_eq!(next(&mut sub).await.body, b"one");
    let stored = c.send_event(event("ev.store", "kept", true)).await;
    assert!(stored.is_ok(), "{stored:?}");
    let err = c
        .send_event(event("", "nowhere", false))
        .await
        .expect_err("an event without a channel");
    assert_eq!(err.kind(), ErrorKind::Rejected, "{err}");
}

#[tokio::test]
async fn an_events_store_subscription_continues_after_a_broker_restart_without_loss_or_repeats() {
    let broker = common::start_broker().await;
    let port = broker.running.grpc_addr.port();
    let c = client(&broker.grpc_address(), "store").await;
    let from_first = subscription(
        SubscribeType::EventsStore,
        "es",
        EventsStoreType::StartFromFirst,
    );
    let mut sub = c.subscribe_to_events(from_first).await.expect("subscribe");
    for i in 1..=3 {
        c.send_event(event("es", &format!("e{i}"), true))
            .await
            .expect("send");
    }
    for i in 1..=3u64 {
        let got = next(&mut sub).await;
        assert_eq!((got.sequence, got.body), (i, format!("e{i}").into_bytes()));
    }

    let mut lifecycle = c.events();
    let dir = broker.stop().await;
    let mut config = common::config(dir.path());
    config.grpc_port = port;
    let broker = common::start_broker_with(config, dir).await;
    let lost = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(e) = lifecycle.recv().await {
            if matches!(e, ClientEvent::SubscriptionLost { ref channel, .. } if channel == "es") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(lost, Ok(true), "the restart broke the stream");
    for i in 4..=5 {
        send_eventually(&c, event("es", &format!("e{i}"), true)).await;
    }
    for i in 4..=5u64 {
        let got = next(&mut sub).await;
        assert_eq!(
            (got.sequence, got.body),
            (i, format!("e{i}").into_bytes()),
            "continues after the last delivered, nothing repeated"
        );
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(extra.is_err(), "nothing more: {extra:?}");
    drop(broker);
}

fn router() -> Arc<Router> {
    let config = llm_router::config::load_with_env(None, &HashMap::new())
        .expect("default config")
        .with_sim("http://127.0.0.1:1");
    Arc::new(Router::new(&config, reqwest::Client::new()).expect("router"))
}

/// Waits up to `within` for `cond`.
async fn within(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn three_routers_count_three_and_two_after_one_leaves() {
    llm_router::metrics::handle();
    let broker = Broker::start().await;
    let mut members = Vec::new();
    for i in 0..3 {
        let router = router();
        let c = client(&broker.grpc_address(), &format!("member-{i}")).await;
        let m = Membership::start(c, Arc::clone(&router), format!("m{i}"))
            .await
            .expect("membership");
        members.push((router, m));
    }
    for (_, m) in &members {
        tokio::time::timeout(Duration::from_secs(5), m.settled())
            .await
            .expect("settled within 5 s");
    }
    within(Duration::from_secs(3), "everyone counts 3", || {
        members
            .iter()
            .all(|(r, m)| m.count() == 3 && r.replicas() == 3)
    })
    .await;
    let rendered = llm_router::metrics::handle().render();
    // Other tests in this binary share the recorder, so only the series itself is checked.
    assert!(
        rendered.contains("# HELP llm_router_replicas ")
            && rendered
                .lines()
                .any(|l| l.starts_with("llm_router_replicas ")),
        "gauge missing:\n{rendered}"
    );

    let left = Instant::now();
    drop(members.pop());
    within(Duration::from_secs(5), "the others count 2", || {
        members
            .iter()
            .all(|(r, m)| m.count() == 2 && r.replicas() == 2)
    })
    .await;
    let took = left.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "not before expiry: {took:?}"
    );
    assert!(took <= Duration::from_millis(4500), "{took:?}");
}

#[tokio::test]
async fn workers_sharing_a_router_are_one_member() {
    let broker = Broker::start().await;
    let router = router();
    let a = Membership::join(
        client(&broker.grpc_address(), "w0").await,
        Arc::clone(&router),
        "w0".into(),
    )
    .await
    .expect("join");
    let b = Membership::join(
        client(&broker.grpc_address(), "w1").await,
        Arc::clone(&router),
        "w1".into(),
    )
    .await
    .expect("join");
    assert_eq!(
        (a.id(), b.id()),
        ("w0", "w0"),
        "the second worker found the first's"
    );
    tokio::time::timeout(Duration::from_secs(5), b.settled())
        .await
        .expect("settled");
    assert_eq!((a.count(), router.replicas()), (1, 1));
    let raw_listener = client(&broker.grpc_address(), "listener").await;
    let sub = subscription(
        SubscribeType::Events,
        MEMBERS_CHANNEL,
        EventsStoreType::Undefined,
    );
    let mut heard = raw_listener
        .subscribe_to_events(sub)
        .await
        .expect("subscribe");
    let beat: serde_json::Value =
        serde_json::from_slice(&next(&mut heard).await.body).expect("a JSON heartbeat");
    assert_eq!(beat["id"], "w0");
    assert!(
        beat["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000_000),
        "{beat}"
    );
}
