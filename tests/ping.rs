//! Ping through the official SDK and a raw client: the fields SDKs check.

mod common;

#[tokio::test]
async fn ping_reports_host_version_and_start_time() {
    let broker = common::start_broker().await;
    let sdk = broker.sdk("ping-test").await;
    let info = sdk.ping().await.expect("ping");
    assert_eq!(info.host, "test-broker");
    assert_eq!(info.version, "v2.4.0");
    assert!(info.server_start_time > 1_700_000_000);
    let mut raw = broker.raw().await;
    let pong = raw
        .ping(llm_router::kubemq::Empty {})
        .await
        .expect("raw ping")
        .into_inner();
    assert_eq!(pong.server_start_time, info.server_start_time);
    assert!(pong.server_up_time_seconds >= 0);
    broker.stop().await;
}
