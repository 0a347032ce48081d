//! Test support: the embedded broker on ephemeral loopback ports, the real KubeMQ server
//! for the tests that run on both ([`Broker`]), and clients for them.
// Each test crate uses a different part of this module; a failed setup fails the test.
#![allow(dead_code, clippy::expect_used)]

use llm_router::broker::config::{BrokerConfig, FsyncPolicy};
use llm_router::broker::RunningBroker;
use llm_router::kubemq::kubemq_client::KubemqClient;
use std::net::{IpAddr, Ipv4Addr};
use tonic::transport::Channel;

pub mod procs;
pub mod raw_codec;
pub mod real_server;
pub mod stack;

/// A broker serving on 127.0.0.1 with ephemeral ports and its own temporary data dir.
pub struct TestBroker {
    pub running: RunningBroker,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    /// `host:port` of the gRPC listener, as the kubemq SDK wants it.
    pub fn grpc_address(&self) -> String {
        self.running.grpc_addr.to_string()
    }

    /// `http://host:port` of the REST listener.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.running.rest_addr)
    }

    /// A raw generated gRPC client, for exact error texts and fields the SDK hides.
    pub async fn raw(&self) -> KubemqClient<Channel> {
        let url = format!("http://{}", self.running.grpc_addr);
        KubemqClient::connect(url)
            .await
            .expect("connect raw gRPC client")
            .max_decoding_message_size(200 * 1024 * 1024)
    }

    /// A client of the official `kubemq` crate, connected to this broker.
    pub async fn sdk(&self, client_id: &str) -> kubemq::KubemqClient {
        kubemq::KubemqClient::builder()
            .host("127.0.0.1")
            .port(self.running.grpc_addr.port())
            .client_id(client_id)
            .build()
            .await
            .expect("connect kubemq SDK client")
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.running.shutdown().await;
        self.dir
    }
}

/// Test configuration: ephemeral ports, a fresh temporary data dir.
pub fn config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        grpc_port: 0,
        rest_port: 0,
        data_dir: dir.to_path_buf(),
        fsync: FsyncPolicy::Always,
        host: "test-broker".to_owned(),
        ..BrokerConfig::default()
    }
}

/// Starts a broker for one test.
pub async fn start_broker() -> TestBroker {
    let dir = tempfile::tempdir().expect("temp dir");
    start_broker_with(config(dir.path()), dir).await
}

/// Starts a broker with a given config, keeping `dir` alive with it.
pub async fn start_broker_with(config: BrokerConfig, dir: tempfile::TempDir) -> TestBroker {
    let running = llm_router::broker::start(config)
        .await
        .expect("start broker");
    TestBroker { running, dir }
}

/// Waits up to 5 s for `cond` to hold (effects of calls that get no response, such as a
/// subscriber going away); fails the test with `what` otherwise.
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The broker a flow test runs on: `LLM_ROUTER_TEST_BROKER=kubemq` selects the real KubeMQ
/// server (`../shared/kubemq-server`), anything else (or nothing) the embedded broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Embedded,
    Kubemq,
}

pub fn broker_kind() -> BrokerKind {
    match std::env::var("LLM_ROUTER_TEST_BROKER").as_deref() {
        Ok("kubemq") => BrokerKind::Kubemq,
        _ => BrokerKind::Embedded,
    }
}

/// A broker for the tests that drive it only from outside (workers, gateway, batch,
/// `up`): the same test runs on the embedded broker and on the real KubeMQ server.
pub enum Broker {
    Embedded(TestBroker),
    Kubemq(real_server::RealServer),
}

impl Broker {
    /// The broker [`broker_kind`] selects.
    pub async fn start() -> Self {
        match broker_kind() {
            BrokerKind::Embedded => Self::Embedded(start_broker().await),
            BrokerKind::Kubemq => Self::Kubemq(
                tokio::task::spawn_blocking(real_server::RealServer::start)
                    .await
                    .expect("start the real server"),
            ),
        }
    }

    pub fn kind(&self) -> BrokerKind {
        match self {
            Self::Embedded(_) => BrokerKind::Embedded,
            Self::Kubemq(_) => BrokerKind::Kubemq,
        }
    }

    pub fn grpc_address(&self) -> String {
        match self {
            Self::Embedded(b) => b.grpc_address(),
            Self::Kubemq(k) => k.grpc_address(),
        }
    }

    pub fn grpc_port(&self) -> u16 {
        match self {
            Self::Embedded(b) => b.running.grpc_addr.port(),
            Self::Kubemq(k) => k.grpc_port,
        }
    }

    /// `http://host:port` of the REST listener.
    pub fn rest_url(&self) -> String {
        match self {
            Self::Embedded(b) => b.rest_url(),
            Self::Kubemq(k) => format!("http://127.0.0.1:{}", k.rest_port),
        }
    }

    /// A client of the official `kubemq` crate.
    pub async fn sdk(&self, client_id: &str) -> ::kubemq::KubemqClient {
        ::kubemq::KubemqClient::builder()
            .host("127.0.0.1")
            .port(self.grpc_port())
            .client_id(client_id)
            .build()
            .await
            .expect("connect kubemq SDK client")
    }

    /// Query subscriptions on `channel`: the embedded broker's own count, or the real
    /// server's `kubemq_clients_count` gauge on its API port.
    pub async fn query_subscribers(&self, channel: &str) -> usize {
        match self {
            Self::Embedded(b) => b
                .running
                .broker
                .pubsub
                .subscriber_count(llm_router::broker::pubsub::stats::Kind::Queries, channel),
            Self::Kubemq(k) => {
                let url = format!("http://127.0.0.1:{}/metrics", k.api_port);
                let Ok(response) = reqwest::get(&url).await else {
                    return 0;
                };
                let text = response.text().await.unwrap_or_default();
                let want = format!("channel=\"{channel}\"");
                text.lines()
                    .filter(|l| l.starts_with("kubemq_clients_count{"))
                    .filter(|l| l.contains(&want) && l.contains("side=\"receive\""))
                    .filter(|l| l.contains("type=\"queries\""))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .map(|v| v.max(0.0) as usize)
                    .sum()
            }
        }
    }

    /// Waits up to 10 s until `channel` has `n` query subscriptions.
    pub async fn wait_query_subscribers(&self, channel: &str, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let now = self.query_subscribers(channel).await;
            if now == n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{channel} has {now} query subscriptions, not {n}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops the broker and starts it again at the same address. The embedded broker keeps
    /// its store; the real server starts empty (its start script wipes the store).
    pub async fn restart(&mut self) {
        match self {
            Self::Embedded(_) => {
                let Self::Embedded(old) = std::mem::replace(self, Self::placeholder().await) else {
                    return;
                };
                let port = old.running.grpc_addr.port();
                let dir = old.stop().await;
                let mut config = config(dir.path());
                config.grpc_port = port;
                let spare =
                    std::mem::replace(self, Self::Embedded(start_broker_with(config, dir).await));
                spare.stop().await;
            }
            // Blocks this test's thread for the few seconds the server needs.
            Self::Kubemq(k) => k.restart(),
        }
    }

    async fn placeholder() -> Self {
        Self::Embedded(start_broker().await)
    }

    /// The embedded broker, for the few checks only it can answer.
    pub fn embedded(&self) -> Option<&TestBroker> {
        match self {
            Self::Embedded(b) => Some(b),
            Self::Kubemq(_) => None,
        }
    }

    /// The real server's log (empty for the embedded broker).
    pub fn server_log(&self) -> String {
        match self {
            Self::Embedded(_) => String::new(),
            Self::Kubemq(k) => k.log(),
        }
    }

    pub async fn stop(self) {
        match self {
            Self::Embedded(b) => {
                b.stop().await;
            }
            Self::Kubemq(mut k) => {
                tokio::task::spawn_blocking(move || k.stop(false))
                    .await
                    .expect("stop the real server");
            }
        }
    }
}
