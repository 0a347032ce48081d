//! The REST API on 9090 (KUBEMQ.md §6) against an in-process broker: envelope, headers,
//! binding rules, validation texts and statuses, and the endpoints of every pattern.

mod common;

use base64::Engine as _;
use llm_router::kubemq::subscribe::SubscribeType;
use llm_router::kubemq::Subscribe;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One HTTP answer, with the body both raw and parsed (when it is JSON).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Result<Self, reqwest::Error> {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Self {
            status,
            headers,
            text,
            json,
        })
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn data(&self) -> &Value {
        &self.json["data"]
    }

    fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or("")
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn unb64(value: &Value) -> Vec<u8> {
    let text = value.as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}

async fn post(base: &str, path: &str, body: Value) -> Result<Answer, reqwest::Error> {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await?;
    Answer::from(response).await
}

async fn get(base: &str, path: &str) -> Result<Answer, reqwest::Error> {
    Answer::from(reqwest::get(format!("{base}{path}")).await?).await
}

/// Asserts the 400 error envelope with `message`.
fn assert_error(answer: &Answer, status: StatusCode, message: &str) {
    assert_eq!(answer.status, status, "body: {}", answer.text);
    assert_eq!(
        answer.json["is_error"],
        json!(true),
        "body: {}",
        answer.text
    );
    assert_eq!(answer.message(), message, "body: {}", answer.text);
    assert_eq!(answer.json["data"], Value::Null);
}

#[tokio::test]
async fn ping_has_the_envelope_headers_and_tab_indentation() -> TestResult {
    let broker = common::start_broker().await;
    let answer = get(&broker.rest_url(), "/ping").await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("broker"), "test-broker");
    assert_eq!(answer.header("x-powered-by"), "KubeMQ v2.4.0");
    assert_eq!(answer.header("access-control-allow-origin"), "*");
    assert!(answer
        .header("content-type")
        .starts_with("application/json"));
    assert!(
        answer
            .text
            .starts_with("{\n\t\"is_error\": false,\n\t\"message\": \"OK\",\n\t\"data\": {\n\t\t\"Host\": \"test-broker\","),
        "body: {}",
        answer.text
    );
    let data = answer.data();
    assert_eq!(data["Version"], json!("v2.4.0"));
    assert!(data["ServerStartTime"].as_i64().unwrap_or(0) > 1_700_000_000);
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn unknown_routes_and_methods_get_echo_error_bodies() -> TestResult {
    let broker = common::start_broker().await;
    let base = broker.rest_url();
    let answer = get(&base, "/no/such/route").await?;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.json,
        json!({"error_code": 404, "message": "Not Found"})
    );
    assert_eq!(answer.header("x-powered-by"), "KubeMQ v2.4.0");
    let answer = get(&base, "/send/event").await?;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json["error_code"], json!(405));
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn health_ready_root_and_cors_preflight() -> TestResult {
    let broker = common::start_broker().await;
    let base = broker.rest_url();
    let health = get(&base, "/health").await?;
    assert_eq!(
        (health.status, health.text.as_str()),
        (StatusCode::OK, "healthy")
    );
    let ready = get(&base, "/ready").await?;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json, json!({"is_healthy": true, "is_ready": true}));
    assert_eq!(get(&base, "/").await?.text, "hi");
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/send/event"))
        .header("origin", "http://example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await?;
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    let allowed = preflight.headers()["access-control-allow-methods"].to_str()?;
    assert!(allowed.contains("GET") && allowed.contains("POST"));
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn validation_errors_are_400_with_the_kubemq_text() -> TestResult {
    let broker = common::start_broker().await;
    let base = broker.rest_url();
    let answer = post(
        &base,
        "/send/event",
        json!({"Channel": "c", "Body": b64("x")}),
    )
    .await?;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "Error 101: invalid clientID value, cannot be empty",
    );
    let answer = post(
        &base,
        "/send/request",
        json!({"ClientID": "c", "Channel": "c"}),
    )
    .await?;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "Error 206: invalid request type",
    );
    let answer = post(
        &base,
        "/send/response",
        json!({"ClientID": "c", "ReplyChannel": "r"}),
    )
    .await?;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "Error 117: invalid request id, cannot be empty",
    );
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn bodies_that_do_not_bind_are_400() -> TestResult {
    let broker = common::start_broker().await;
    let base = broker.rest_url();
    let client = reqwest::Client::new();
    let no_type = client
        .post(format!("{base}/send/event"))
        .body(r#"{"ClientID":"c","Channel":"c","Body":"eA=="}"#)
        .send()
        .await?;
    let answer = Answer::from(no_type).await?;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.message().contains("Content-Type"), "{}", answer.text);
    for body in [
        "{",
        "[1,2]",
        r#"{"Timeout":"soon"}"#,
        r#"{"Body":"not base64!"}"#,
    ] {
        let answer = Answer::from(
            client
                .post(format!("{base}/send/request"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?,
        )
        .await?;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.json["is_error"], json!(true), "{body}");
    }
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn keys_are_case_insensitive_and_unknown_keys_are_ignored() -> TestResult {
    let broker = common::start_broker().await;
    let body = json!({"clientid": "c", "CHANNEL": "rest.events", "body": b64("x"), "Extra": [1]});
    let answer = post(&broker.rest_url(), "/send/event", body).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.data()["Sent"], json!(true));
    assert!(!answer.data()["EventID"].as_str().unwrap_or("").is_empty());
    assert!(
        answer.data().get("Error").is_none(),
        "zero fields are omitted"
    );
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn request_without_responder_times_out_with_301() -> TestResult {
    let broker = common::start_broker().await;
    let started = Instant::now();
    let body = json!({"RequestTypeData": 2, "ClientID": "c", "Channel": "nobody.home",
        "BodyString": "hello", "Timeout": 1000});
    let answer = post(&broker.rest_url(), "/send/request", body).await?;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "Error 301: timeout for request message",
    );
    assert!(started.elapsed() >= Duration::from_millis(950));
    broker.stop().await;
    Ok(())
}

/// A raw gRPC subscription to requests of `kind` on `channel`, for the responders below.
async fn subscribe_requests(
    broker: &common::TestBroker,
    kind: SubscribeType,
    client_id: &str,
    channel: &str,
) -> Result<tonic::Streaming<llm_router::kubemq::Request>, Box<dyn std::error::Error>> {
    let sub = Subscribe {
        subscribe_type_data: kind as i32,
        client_id: client_id.to_owned(),
        channel: channel.to_owned(),
        ..Default::default()
    };
    Ok(broker
        .raw()
        .await
        .subscribe_to_requests(sub)
        .await?
        .into_inner())
}

/// A gRPC query responder that answers through `POST /send/response`.
async fn rest_responder(
    broker: &common::TestBroker,
    channel: &str,
) -> Result<tokio::task::JoinHandle<()>, Box<dyn std::error::Error>> {
    let mut requests =
        subscribe_requests(broker, SubscribeType::Queries, "responder", channel).await?;
    let base = broker.rest_url();
    Ok(tokio::spawn(async move {
        while let Some(Ok(request)) = requests.next().await {
            let text = String::from_utf8_lossy(&request.body).to_uppercase();
            let reply = json!({"ClientID": "responder", "RequestID": request.request_id,
                "ReplyChannel": request.reply_channel, "Executed": true,
                "Metadata": "done", "BodyString": text});
            let sent = post(&base, "/send/response", reply).await;
            assert!(sent.is_ok_and(|a| a.status == StatusCode::OK && a.json["data"].is_null()));
        }
    }))
}

#[tokio::test]
async fn query_round_trip_over_rest() -> TestResult {
    let broker = common::start_broker().await;
    let responder = rest_responder(&broker, "rest.queries").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = json!({"RequestTypeData": 2, "ClientID": "asker", "Channel": "rest.queries",
        "BodyString": "hello", "Timeout": 5000});
    let answer = post(&broker.rest_url(), "/send/request", body).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(unb64(&answer.data()["Body"]), b"HELLO");
    assert_eq!(answer.data()["Executed"], json!(true));
    assert_eq!(answer.data()["Metadata"], json!("done"));
    assert!(answer.data().get("ReplyChannel").is_none());
    responder.abort();
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn queue_send_receive_and_ack_all() -> TestResult {
    let broker = common::start_broker().await;
    let base = broker.rest_url();
    let sent = post(
        &base,
        "/queue/send",
        json!({"ClientID": "c", "Channel": "rest.q", "BodyString": "one", "Tags": {"k": "v"}}),
    )
    .await?;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert!(sent.data()["SentAt"].as_i64().unwrap_or(0) > 0);
    let batch = json!({"BatchID": "b1", "Messages": [
        {"ClientID": "c", "Channel": "rest.q", "Body": b64("two")},
        {"clientid": "c", "channel": "rest.q", "bodystring": "three"}]});
    let batch = post(&base, "/queue/send_batch", batch).await?;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.text);
    assert_eq!(batch.data()["BatchID"], json!("b1"));
    assert_eq!(batch.data()["Results"].as_array().map(Vec::len), Some(2));
    let receive = json!({"ClientID": "c", "Channel": "rest.q", "MaxNumberOfMessages": 2,
        "WaitTimeSeconds": 2});
    let got = post(&base, "/queue/receive", receive).await?;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!(got.data()["MessagesReceived"], json!(2));
    let messages = got.data()["Messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bodies: Vec<Vec<u8>> = messages.iter().map(|m| unb64(&m["Body"])).collect();
    assert_eq!(bodies, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(messages[0]["Tags"], json!({"k": "v"}));
    assert_eq!(messages[0]["Attributes"]["Sequence"], json!(1));
    let ack = post(
        &base,
        "/queue/ack_all",
        json!({"ClientID": "c", "Channel": "rest.q", "WaitTimeSeconds": 1}),
    )
    .await?;
    assert_eq!(ack.status, StatusCode::OK, "{}", ack.text);
    assert_eq!(ack.data()["AffectedMessages"], json!(1));
    let info = get(&base, "/queue/info?QueueName=rest.q").await?;
    assert_eq!(info.status, StatusCode::OK, "{}", info.text);
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn queue_validation_is_in_band_with_200() -> TestResult {
    let broker = common::start_broker().await;
    let base = broker.rest_url();
    let answer = post(
        &base,
        "/queue/send",
        json!({"Channel": "rest.q", "BodyString": "x"}),
    )
    .await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["is_error"], json!(false));
    assert_eq!(answer.data()["IsError"], json!(true));
    assert_eq!(
        answer.data()["Error"],
        json!("Error 101: invalid clientID value, cannot be empty")
    );
    assert!(!answer.data()["MessageID"].as_str().unwrap_or("").is_empty());
    let answer = post(
        &base,
        "/queue/receive",
        json!({"ClientID": "c", "Channel": "rest.q", "MaxNumberOfMessages": 0}),
    )
    .await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.data()["IsError"], json!(true));
    let answer = post(&base, "/queue/send_batch", json!({"BatchID": "empty"})).await?;
    assert_error(&answer, StatusCode::BAD_REQUEST, "empty messages batch");
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn metrics_show_broker_series_after_traffic() -> TestResult {
    let broker = common::start_broker().await;
    let base = broker.rest_url();
    post(
        &base,
        "/queue/send",
        json!({"ClientID": "c", "Channel": "rest.metrics", "BodyString": "x"}),
    )
    .await?;
    let metrics = get(&base, "/metrics").await?;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.text.contains("llm_router_broker_"),
        "{}",
        metrics.text
    );
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn oversized_messages_are_refused_clearly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut config = common::config(dir.path());
    config.max_message_bytes = 1024;
    let broker = common::start_broker_with(config, dir).await;
    let base = broker.rest_url();
    let big = "x".repeat(4096);
    let answer = post(
        &base,
        "/send/event",
        json!({"ClientID": "c", "Channel": "c", "BodyString": big.clone()}),
    )
    .await?;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    assert!(answer.message().contains("exceeds"), "{}", answer.text);
    let huge = "x".repeat(64 * 1024);
    let answer = post(
        &base,
        "/queue/send",
        json!({"ClientID": "c", "Channel": "c", "Body": b64(&huge)}),
    )
    .await?;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    assert_eq!(answer.json["is_error"], json!(true));
    broker.stop().await;
    Ok(())
}

/// Calls the router directly, without a listener (a stopped broker has none).
async fn call_router(
    router: &mut axum::Router,
    path: &str,
) -> Result<(StatusCode, String), Box<dyn std::error::Error>> {
    use tonic::codegen::Service;
    let request = axum::http::Request::builder()
        .uri(path)
        .body(axum::body::Body::empty())?;
    let response = router.call(request).await?;
    let status = StatusCode::from_u16(response.status().as_u16())?;
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((status, String::from_utf8(body.to_vec())?))
}

#[tokio::test]
async fn a_broker_shutting_down_answers_503() -> TestResult {
    let dir = tempfile::tempdir()?;
    let broker = llm_router::broker::Broker::open(common::config(dir.path()))?;
    let service = llm_router::broker::grpc::Service::new(broker.clone());
    let mut router = llm_router::broker::rest::router(service);
    assert_eq!(call_router(&mut router, "/ping").await?.0, StatusCode::OK);
    broker.shutdown.cancel();
    let (status, body) = call_router(&mut router, "/ping").await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let envelope: Value = serde_json::from_str(&body)?;
    assert_eq!(
        envelope["message"],
        json!("rest server is not ready to accept requests")
    );
    let (status, body) = call_router(&mut router, "/ready").await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_str::<Value>(&body)?,
        json!({"is_healthy": false, "is_ready": false})
    );
    assert_eq!(
        call_router(&mut router, "/health").await?.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    Ok(())
}

/// A gRPC command responder that executes everything and (wrongly) attaches a body.
async fn grpc_command_responder(
    broker: &common::TestBroker,
    channel: &str,
) -> Result<tokio::task::JoinHandle<()>, Box<dyn std::error::Error>> {
    let mut requests =
        subscribe_requests(broker, SubscribeType::Commands, "commander", channel).await?;
    let mut raw = broker.raw().await;
    Ok(tokio::spawn(async move {
        while let Some(Ok(request)) = requests.next().await {
            let response = llm_router::kubemq::Response {
                client_id: "commander".to_owned(),
                request_id: request.request_id,
                reply_channel: request.reply_channel,
                executed: true,
                body: b"dropped for commands".to_vec(),
                ..Default::default()
            };
            assert!(raw.send_response(response).await.is_ok());
        }
    }))
}

#[tokio::test]
async fn events_store_and_commands_over_rest() -> TestResult {
    let broker = common::start_broker().await;
    let base = broker.rest_url();
    let body = json!({"EventID": "e-1", "ClientID": "c", "Channel": "rest.store",
        "BodyString": "kept", "Store": true});
    let stored = post(&base, "/send/event", body).await?;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    assert_eq!(stored.data(), &json!({"EventID": "e-1", "Sent": true}));
    let responder = grpc_command_responder(&broker, "rest.commands").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = json!({"RequestTypeData": 1, "ClientID": "c", "Channel": "rest.commands",
        "Metadata": "do it", "Timeout": 5000, "RequestID": "r-1"});
    let answer = post(&base, "/send/request", body).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.data()["Executed"], json!(true));
    assert_eq!(answer.data()["RequestID"], json!("r-1"));
    assert!(answer.data().get("Body").is_none(), "{}", answer.text);
    responder.abort();
    broker.stop().await;
    Ok(())
}
