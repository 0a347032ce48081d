//! Test support: the embedded broker on ephemeral loopback ports, and clients for it.
// Each test crate uses a different part of this module; a failed setup fails the test.
#![allow(dead_code, clippy::expect_used)]

use llm_router::broker::config::{BrokerConfig, FsyncPolicy};
use llm_router::broker::RunningBroker;
use llm_router::kubemq::kubemq_client::KubemqClient;
use std::net::{IpAddr, Ipv4Addr};
use tonic::transport::Channel;

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
