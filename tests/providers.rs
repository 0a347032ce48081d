//! Provider clients against the simulated provider over real loopback sockets: round trips
//! in both wire formats, Anthropic translation, and the classification of every failure.
#![expect(clippy::unwrap_used, reason = "a panic is how a test fails")]

use llm_router::provider::{Api, FailureKind, LlmRequest, Provider, ProviderError, ProviderKind};
use llm_router::secret::Secret;
use llm_router::sim::{self, RunningSim, SimConfig};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const KEY: &str = "sk-test-very-secret-0123456789";
const TIMEOUT: Duration = Duration::from_secs(5);

async fn start(config: SimConfig) -> RunningSim {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    sim::start(SimConfig { listen, ..config }).await.unwrap()
}

fn client(kind: ProviderKind, s: &RunningSim, key: Option<&str>) -> Provider {
    Provider::new(
        kind,
        &s.base_url(),
        key.map(Secret::new),
        reqwest::Client::new(),
    )
}

fn msg(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

fn request(model: &str, messages: Vec<Value>) -> LlmRequest {
    with(json!({"model": model, "messages": messages}), json!({}))
}

/// `base` with the fields of `extra` added.
fn with(base: Value, extra: Value) -> LlmRequest {
    let mut body = base.as_object().cloned().unwrap();
    body.extend(extra.as_object().cloned().unwrap());
    LlmRequest::new(Api::Chat, body).unwrap()
}

fn plus(req: &LlmRequest, extra: Value) -> LlmRequest {
    with(Value::Object(req.body().clone()), extra)
}

fn hello() -> LlmRequest {
    request("m", vec![msg("user", "hello world")])
}

async fn stop(s: RunningSim) {
    s.shutdown.cancel();
    s.task.await.unwrap();
}

#[tokio::test]
async fn openai_round_trip() {
    let s = start(SimConfig::default()).await;
    let p = client(ProviderKind::Openai, &s, None);
    let req = request(
        "gpt-sim",
        vec![msg("system", "be brief"), msg("user", "hello world")],
    );
    let r = p.call(&req, TIMEOUT).await.unwrap();
    assert_eq!(r.model(), "gpt-sim");
    assert_eq!(r.text(), "sim: hello world");
    assert_eq!(r.finish_reason(), "stop");
    assert!(r.body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (4, 3));
    let cut = plus(&req, json!({"max_tokens": 2}));
    let r = p.call(&cut, TIMEOUT).await.unwrap();
    assert_eq!((r.text(), r.finish_reason()), ("sim: hello", "length"));
    stop(s).await;
}

#[tokio::test]
async fn sim_kind_speaks_openai() {
    let s = start(SimConfig::default()).await;
    let r = client(ProviderKind::Sim, &s, None)
        .call(&hello(), TIMEOUT)
        .await;
    assert_eq!(r.unwrap().text(), "sim: hello world");
    stop(s).await;
}

#[tokio::test]
async fn anthropic_round_trip_translates_both_ways() {
    let s = start(SimConfig::default()).await;
    let p = client(ProviderKind::Anthropic, &s, None);
    // The sim refuses a `system` turn and a missing max_tokens, as Anthropic does, so
    // success shows both were translated.
    let req = request(
        "claude-sim",
        vec![
            msg("system", "be brief"),
            msg("user", "first question"),
            msg("assistant", "first answer"),
            msg("user", "hello world"),
        ],
    );
    let r = p.call(&req, TIMEOUT).await.unwrap();
    assert_eq!(r.model(), "claude-sim");
    assert_eq!(r.text(), "sim: hello world");
    assert_eq!(r.finish_reason(), "stop");
    assert!(r.body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (8, 3));
    stop(s).await;
}

#[tokio::test]
async fn anthropic_stop_reasons_map() {
    let s = start(SimConfig::default()).await;
    let p = client(ProviderKind::Anthropic, &s, None);
    let long = plus(&hello(), json!({"max_tokens": 2}));
    let r = p.call(&long, TIMEOUT).await.unwrap();
    assert_eq!((r.text(), r.finish_reason()), ("sim: hello", "length"));
    assert_eq!(r.usage.completion_tokens, 2);
    let stopped = plus(&hello(), json!({"stop": ["world"]}));
    let r = p.call(&stopped, TIMEOUT).await.unwrap();
    assert_eq!((r.text(), r.finish_reason()), ("sim: hello ", "stop"));
    stop(s).await;
}

#[tokio::test]
async fn status_503_is_retryable() {
    let s = start(SimConfig {
        error_rates: vec![(503, 1.0)],
        ..SimConfig::default()
    })
    .await;
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let err = client(kind, &s, None)
            .call(&hello(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::Status { status: 503, message, .. } if message == "injected failure"),
            "{err:?}"
        );
        assert_eq!(err.kind(), FailureKind::Retryable);
    }
    stop(s).await;
}

#[tokio::test]
async fn status_429_carries_retry_after() {
    let s = start(SimConfig {
        rate_429: 1.0,
        retry_after_secs: 7,
        ..SimConfig::default()
    })
    .await;
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let err = client(kind, &s, None)
            .call(&hello(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::Status { status: 429, .. }),
            "{err:?}"
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(err.kind(), FailureKind::Retryable);
    }
    assert_eq!(s.stats().rate_limited, 2);
    stop(s).await;
}

#[tokio::test]
async fn rpm_limit_429_says_when_there_is_room() {
    let s = start(SimConfig {
        rpm_limit: Some(1),
        ..SimConfig::default()
    })
    .await;
    let p = client(ProviderKind::Openai, &s, None);
    p.call(&hello(), TIMEOUT).await.unwrap();
    let err = p.call(&hello(), TIMEOUT).await.unwrap_err();
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    stop(s).await;
}

#[tokio::test]
async fn hang_times_out_within_the_timeout() {
    let s = start(SimConfig {
        hang_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let timeout = Duration::from_millis(200);
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let t = Instant::now();
        let err = client(kind, &s, None)
            .call(&hello(), timeout)
            .await
            .unwrap_err();
        let took = t.elapsed();
        assert_eq!(err, ProviderError::Timeout(timeout));
        assert_eq!(err.kind(), FailureKind::Retryable);
        assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");
    }
    stop(s).await;
}

#[tokio::test]
async fn slow_answer_times_out() {
    let s = start(SimConfig {
        latency_ms: 400,
        ..SimConfig::default()
    })
    .await;
    let p = client(ProviderKind::Openai, &s, None);
    let err = p
        .call(&hello(), Duration::from_millis(150))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout(_)), "{err:?}");
    stop(s).await;
}

#[tokio::test]
async fn refused_connection_is_connect() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let p = Provider::new(kind, &base, Some(Secret::new(KEY)), reqwest::Client::new());
        let err = p.call(&hello(), TIMEOUT).await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::Connect(m) if m.contains("refused")),
            "{err:?}"
        );
        assert_eq!(err.kind(), FailureKind::Retryable);
        assert!(!err.to_string().contains(KEY));
    }
}

#[tokio::test]
async fn reset_is_connect() {
    let s = start(SimConfig {
        reset_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let err = client(kind, &s, None)
            .call(&hello(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
        assert_eq!(err.kind(), FailureKind::Retryable);
    }
    stop(s).await;
}

#[tokio::test]
async fn right_key_passes_wrong_key_is_next_target_and_never_echoed() {
    let s = start(SimConfig {
        api_key: Some(KEY.into()),
        ..SimConfig::default()
    })
    .await;
    let wrong = "sk-wrong-but-still-secret-987654";
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        client(kind, &s, Some(KEY))
            .call(&hello(), TIMEOUT)
            .await
            .unwrap();
        let err = client(kind, &s, Some(wrong))
            .call(&hello(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::Status { status: 401, .. }),
            "{err:?}"
        );
        assert_eq!(err.kind(), FailureKind::NextTarget);
        // The sim quotes the presented key in its 401 message; the client must not.
        let text = format!("{err} {err:?}");
        assert!(!text.contains(wrong), "{text}");
        assert!(text.contains("*****"), "{text}");
        let missing = client(kind, &s, None)
            .call(&hello(), TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), FailureKind::NextTarget);
    }
    stop(s).await;
}

#[tokio::test]
async fn bad_request_is_fatal() {
    let s = start(SimConfig {
        error_rates: vec![(400, 1.0)],
        ..SimConfig::default()
    })
    .await;
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let err = client(kind, &s, None)
            .call(&hello(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::Status { status: 400, .. }),
            "{err:?}"
        );
        assert_eq!(err.kind(), FailureKind::Fatal);
    }
    stop(s).await;
}

/// A misbehaving server: answers every connection with `head` then `body`, or with `head`
/// and then nothing at all when `body` is `None`.
async fn fake_server(head: &'static str, body: Option<&'static str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(head.as_bytes()).await;
                match body {
                    Some(b) => drop(conn.write_all(b.as_bytes()).await),
                    None => std::future::pending::<()>().await,
                }
            });
        }
    });
    base
}

#[tokio::test]
async fn unreadable_success_is_decode() {
    let cases = [
        "not json at all",
        r#"{"id":"x","choices":[]}"#,
        r#"{"content": 5}"#,
    ];
    for body in cases {
        let head: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_boxed_str(),
        );
        let base = fake_server(head, Some(body)).await;
        for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
            let p = Provider::new(kind, &base, None, reqwest::Client::new());
            match p.call(&hello(), TIMEOUT).await {
                Err(err) => {
                    assert!(matches!(err, ProviderError::Decode(_)), "{body}: {err:?}");
                    assert_eq!(err.kind(), FailureKind::Fatal);
                }
                // An empty but well-formed Anthropic answer is a valid (empty) completion.
                Ok(r) => assert!(kind == ProviderKind::Anthropic && r.text().is_empty()),
            }
        }
    }
}

#[tokio::test]
async fn stalled_body_counts_against_the_timeout() {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
    let base = fake_server(head, None).await;
    let p = Provider::new(ProviderKind::Openai, &base, None, reqwest::Client::new());
    let timeout = Duration::from_millis(200);
    let t = Instant::now();
    let err = p.call(&hello(), timeout).await.unwrap_err();
    assert_eq!(err, ProviderError::Timeout(timeout));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn error_body_that_is_not_json_is_kept_short() {
    let head = "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 600\r\nretry-after: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n";
    let body: &'static str = Box::leak("<html>".repeat(100).into_boxed_str());
    let base = fake_server(head, Some(body)).await;
    let p = Provider::new(ProviderKind::Openai, &base, None, reqwest::Client::new());
    let err = p.call(&hello(), TIMEOUT).await.unwrap_err();
    let ProviderError::Status {
        status,
        retry_after,
        message,
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!((status, retry_after), (502, Some(Duration::ZERO)));
    assert!(
        message.starts_with("<html>") && message.chars().count() <= 201,
        "{message}"
    );
}

mod pass_through {
    use super::*;
    use proptest::prelude::*;

    /// Small JSON values: what a field this version does not know might hold.
    fn leaf() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-zA-Z0-9 _\\-\\u{e9}\\u{4e2d}]{0,12}".prop_map(Value::from),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn message() -> impl Strategy<Value = Value> {
        (
            prop_oneof![
                Just("system"),
                Just("user"),
                Just("assistant"),
                Just("developer")
            ],
            "[a-zA-Z0-9 ,.?]{1,40}",
            prop::collection::btree_map("x_[a-z]{1,6}", leaf(), 0..2),
        )
            .prop_map(|(role, text, extra)| {
                let mut m = json!({"role": role, "content": text});
                for (k, v) in extra {
                    m[k] = v;
                }
                m
            })
    }

    /// A chat request with unknown top-level fields and known ones the router does not read.
    fn request() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(message(), 1..5),
            prop::collection::btree_map("[a-z][a-z_]{0,10}", leaf(), 0..5),
            prop::option::of(0u32..2000),
            prop::option::of(any::<u32>()),
        )
            .prop_map(|(messages, extra, max_tokens, seed)| {
                let mut body = json!({"model": "caller-model", "messages": messages});
                for (k, v) in extra {
                    if !matches!(
                        k.as_str(),
                        "model"
                            | "messages"
                            | "stream"
                            | "stream_options"
                            | "max_tokens"
                            | "max_completion_tokens"
                            | "n"
                            | "tools"
                            | "tool_choice"
                            | "response_format"
                            | "logprobs"
                            | "top_logprobs"
                    ) {
                        body[k] = v;
                    }
                }
                if let Some(n) = max_tokens {
                    body["max_tokens"] = json!(n);
                }
                if let Some(seed) = seed {
                    body["seed"] = json!(seed);
                }
                body
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_request_reaches_an_openai_endpoint_unchanged_but_for_model(body in request()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let s = start(SimConfig::default()).await;
                let p = client(ProviderKind::Openai, &s, None);
                let Value::Object(map) = body.clone() else { unreachable!() };
                let mut req = LlmRequest::new(Api::Chat, map).unwrap();
                req.set_model("target-model");
                p.call(&req, TIMEOUT).await.unwrap();
                let last: Value = reqwest::get(format!("{}/sim/last-request", s.base_url()))
                    .await.unwrap().json().await.unwrap();
                let mut expected = body;
                expected["model"] = json!("target-model");
                prop_assert_eq!(&last["body"], &expected);
                stop(s).await;
                Ok(())
            })?;
        }
    }
}

#[tokio::test]
async fn an_anthropic_endpoint_refuses_what_it_cannot_honour_unless_told_to_drop_it() {
    let s = start(SimConfig::default()).await;
    let req = plus(&hello(), json!({"n": 2, "seed": 7}));
    let strict = client(ProviderKind::Anthropic, &s, None);
    let why = strict.refusal(&req).unwrap();
    assert!(why.contains("`n`") && why.contains("`seed`"), "{why}");
    let err = strict.call(&req, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported(_)), "{err:?}");
    let lenient = client(ProviderKind::Anthropic, &s, None).dropping_unsupported(true);
    assert_eq!(lenient.refusal(&req), None);
    let r = lenient.call(&req, TIMEOUT).await.unwrap();
    assert_eq!(r.text(), "sim: hello world");
    let last: Value = reqwest::get(format!("{}/sim/last-request", s.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["path"], "/v1/messages");
    assert!(
        last["body"].get("n").is_none() && last["body"].get("seed").is_none(),
        "{last}"
    );
    // OpenAI-format endpoints honour both.
    assert_eq!(client(ProviderKind::Openai, &s, None).refusal(&req), None);
    stop(s).await;
}
