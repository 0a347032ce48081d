//! Router behaviour over the scripted fake provider, in paused tokio time.

use super::fake::{self, Fake, Step};
use super::*;
use crate::config::{
    CircuitBreakerConfig, EndpointConfig, LimitsConfig, RetryConfig, RouteConfig, TargetConfig,
};
use crate::provider::{ProviderError, ProviderKind};
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

/// An endpoint of the test config.
struct Ep {
    name: &'static str,
    limits: LimitsConfig,
    fake: Arc<Fake>,
}

fn ep(name: &'static str, otherwise: Step) -> Ep {
    Ep {
        name,
        limits: LimitsConfig::default(),
        fake: Fake::new(name, otherwise),
    }
}

fn target(endpoint: &str, priority: u32, weight: u32) -> TargetConfig {
    TargetConfig {
        endpoint: endpoint.into(),
        model: format!("{endpoint}-model"),
        weight,
        priority,
    }
}

fn retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        base_delay: Duration::from_millis(100),
        max_delay: SEC,
    }
}

/// A router with one route `r` over `targets`, endpoint timeout 20s, route timeout 60s.
fn router(endpoints: &[&Ep], targets: Vec<TargetConfig>, retry: RetryConfig) -> Router {
    router_with(endpoints, targets, retry, CircuitBreakerConfig::default())
}

fn router_with(
    endpoints: &[&Ep],
    targets: Vec<TargetConfig>,
    retry: RetryConfig,
    circuit_breaker: CircuitBreakerConfig,
) -> Router {
    let config = RouterConfig {
        endpoints: endpoints
            .iter()
            .map(|e| EndpointConfig {
                name: e.name.into(),
                kind: ProviderKind::Sim,
                base_url: "http://127.0.0.1:1".into(),
                api_key_env: Some(format!("{}_KEY", e.name.to_uppercase())),
                api_key: None,
                timeout: 20 * SEC,
                limits: e.limits,
                drop_unsupported_params: false,
            })
            .collect(),
        routes: vec![RouteConfig {
            name: "r".into(),
            channel: "r_requests".into(),
            targets,
            timeout: 60 * SEC,
            retry,
        }],
        circuit_breaker,
        connections: Default::default(),
    };
    let fakes: HashMap<&str, Arc<Fake>> = endpoints
        .iter()
        .map(|e| (e.name, Arc::clone(&e.fake)))
        .collect();
    let upstream = |e: &EndpointConfig| {
        let fake = fakes.get(e.name.as_str()).map(Arc::clone);
        Upstream::Fake(fake.unwrap_or_else(|| Fake::new("none", Step::Answer)))
    };
    Router::build(&config, upstream).unwrap()
}

fn prompt() -> LlmRequest {
    LlmRequest::prompt("hello")
}

async fn ask(router: &Router, within: Duration) -> Result<Completion, RouteError> {
    router
        .complete("r", prompt(), Instant::now() + within)
        .await
}

fn summary(err: RouteError) -> String {
    match err {
        RouteError::AllFailed { summary, .. } => summary,
        other => panic!("expected AllFailed, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn answers_from_the_first_priority_with_its_model() {
    let a = ep("a", Step::Answer);
    let b = ep("b", Step::Answer);
    let r = router(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(3),
    );
    let done = ask(&r, 10 * SEC).await.unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("a", 1));
    assert_eq!(done.response.model(), "a-model");
    assert_eq!(b.fake.calls(), 0);
    assert_eq!(
        r.routes(),
        vec![RouteInfo {
            name: "r".into(),
            channel: "r_requests".into()
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_route_is_named() {
    let a = ep("a", Step::Answer);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(3));
    let err = r
        .complete("nope", prompt(), Instant::now() + SEC)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown route 'nope'");
}

#[tokio::test(start_paused = true)]
async fn retries_a_503_with_growing_jittered_backoff() {
    let a = ep("a", Step::Answer);
    a.fake
        .script([fake::status(503), fake::status(503), fake::status(503)]);
    let policy = RetryConfig {
        max_attempts: 4,
        base_delay: SEC,
        max_delay: 10 * SEC,
    };
    let r = router(&[&a], vec![target("a", 1, 1)], policy);
    let done = ask(&r, 60 * SEC).await.unwrap();
    assert_eq!(done.attempts, 4);
    let times = a.fake.call_times();
    for (retry, pair) in (1..).zip(times.windows(2)) {
        let slept = pair[1] - pair[0];
        assert!(
            slept <= retry::ceiling(&policy, retry),
            "retry {retry} slept {slept:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let a = ep("a", Step::Answer);
    a.fake.script([fake::retry_after(429, 5 * SEC)]);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(3));
    ask(&r, 60 * SEC).await.unwrap();
    let times = a.fake.call_times();
    assert_eq!(times.len(), 2);
    assert!(times[1] - times[0] >= 5 * SEC, "{:?}", times[1] - times[0]);
    assert!(times[1] - times[0] < 6 * SEC, "Retry-After, not more");
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_the_deadline_moves_on_at_once() {
    let a = ep("a", fake::retry_after(429, 30 * SEC));
    let b = ep("b", Step::Answer);
    let r = router(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(3),
    );
    let start = Instant::now();
    let done = ask(&r, 10 * SEC).await.unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("b", 2));
    assert_eq!(start.elapsed(), Duration::ZERO);

    b.fake.set(fake::status(503));
    let text = summary(ask(&r, 10 * SEC).await.unwrap_err());
    assert!(
        text.starts_with("a 429 after 1 attempt (Retry-After 30s is past the deadline); b 503"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_deadline() {
    let a = ep("a", fake::status(503));
    let never_open = CircuitBreakerConfig {
        failure_threshold: u32::MAX,
        cool_down: SEC,
    };
    let r = router_with(&[&a], vec![target("a", 1, 1)], retry(1000), never_open);
    let start = Instant::now();
    let err = ask(&r, 5 * SEC).await.unwrap_err();
    assert!(start.elapsed() <= 5 * SEC, "{:?}", start.elapsed());
    let calls = a.fake.calls();
    assert!(calls > 3, "kept retrying while time allowed: {calls}");
    assert!(a.fake.call_times().iter().all(|t| *t - start < 5 * SEC));
    let text = summary(err);
    assert_eq!(
        text,
        format!("a 503 after {calls} attempts (deadline reached)")
    );
}

#[tokio::test(start_paused = true)]
async fn an_opening_circuit_ends_the_retries() {
    let a = ep("a", fake::status(503));
    let r = router(&[&a], vec![target("a", 1, 1)], retry(1000));
    let text = summary(ask(&r, 60 * SEC).await.unwrap_err());
    let threshold = CircuitBreakerConfig::default().failure_threshold;
    assert_eq!(a.fake.calls(), threshold as usize);
    assert_eq!(
        text,
        format!("a 503 after {threshold} attempts (circuit opened)")
    );
}

#[tokio::test(start_paused = true)]
async fn a_hang_times_out_within_the_deadline() {
    let a = ep("a", Step::Hang);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(1));
    let start = Instant::now();
    let text = summary(ask(&r, 5 * SEC).await.unwrap_err());
    assert_eq!(
        start.elapsed(),
        5 * SEC,
        "cut at the deadline, not the 20s endpoint timeout"
    );
    assert_eq!(text, "a timed out after 5s (deadline reached)");
}

#[tokio::test(start_paused = true)]
async fn fails_over_to_priority_two_on_503s() {
    let a = ep("a", fake::status(503));
    let b = ep("b", Step::Answer);
    let r = router(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(3),
    );
    let done = ask(&r, 60 * SEC).await.unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("b", 4));
    assert_eq!(done.response.model(), "b-model");
    assert_eq!(a.fake.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn unauthorized_moves_to_the_next_target_at_once() {
    let a = ep("a", fake::status(401));
    let b = ep("b", Step::Answer);
    let r = router(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(3),
    );
    let start = Instant::now();
    let done = ask(&r, 60 * SEC).await.unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("b", 2));
    assert_eq!((a.fake.calls(), start.elapsed()), (1, Duration::ZERO));

    b.fake.set(fake::status(403));
    let text = summary(ask(&r, 60 * SEC).await.unwrap_err());
    assert_eq!(
        text,
        "a 401 after 1 attempt (check A_KEY); b 403 after 1 attempt (check B_KEY)"
    );
}

#[tokio::test(start_paused = true)]
async fn bad_request_fails_at_once_without_failover() {
    for status in [400, 404, 422] {
        let a = ep("a", fake::status(status));
        let b = ep("b", Step::Answer);
        let r = router(
            &[&a, &b],
            vec![target("a", 1, 1), target("b", 2, 1)],
            retry(3),
        );
        let err = ask(&r, 60 * SEC).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("route 'r': a rejected the request: HTTP {status}: status {status}")
        );
        assert!(matches!(err, RouteError::BadRequest { .. }));
        assert_eq!((a.fake.calls(), b.fake.calls()), (1, 0));
    }
}

#[tokio::test(start_paused = true)]
async fn all_failed_names_every_target_like_the_issue() {
    let primary = ep("openai-primary", fake::status(503));
    let backup = ep("azure-backup", Step::Hang);
    let targets = vec![target("openai-primary", 1, 1), target("azure-backup", 2, 1)];
    let r = router(&[&primary, &backup], targets.clone(), retry(2));
    let err = r
        .complete("r", prompt(), Instant::now() + 41 * SEC)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "route 'r': all targets failed: openai-primary 503 after 2 attempts; \
         azure-backup timed out after 20s (2 attempts)"
    );

    let r = router(&[&primary, &backup], targets, retry(3));
    let text = summary(ask(&r, 60 * SEC).await.unwrap_err());
    assert!(
        text.starts_with("openai-primary 503 after 3 attempts; azure-backup timed out after "),
        "{text}"
    );
    assert!(text.ends_with(" (3 attempts, deadline reached)"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn circuit_opens_skips_the_endpoint_and_recovers_after_a_probe() {
    let a = ep("a", fake::status(503));
    let b = ep("b", Step::Answer);
    let breaker = CircuitBreakerConfig {
        failure_threshold: 2,
        cool_down: 30 * SEC,
    };
    let r = router_with(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(1),
        breaker,
    );
    ask(&r, 60 * SEC).await.unwrap();
    ask(&r, 60 * SEC).await.unwrap();
    assert_eq!(a.fake.calls(), 2, "two failures open the circuit");

    let done = ask(&r, 60 * SEC).await.unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("b", 1));
    assert_eq!(a.fake.calls(), 2, "open: skipped without a call");
    b.fake.set(fake::status(503));
    let text = summary(ask(&r, 60 * SEC).await.unwrap_err());
    assert!(
        text.starts_with(
            "a skipped: circuit open after repeated failures, next probe in 30s; b 503"
        ),
        "{text}"
    );

    tokio::time::advance(30 * SEC).await;
    a.fake.set(Step::Answer);
    let done = ask(&r, 60 * SEC).await.unwrap();
    assert_eq!(done.endpoint, "a", "the probe goes through and succeeds");
    assert_eq!(
        ask(&r, 60 * SEC).await.unwrap().endpoint,
        "a",
        "closed again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_keeps_the_circuit_open() {
    let a = ep("a", fake::status(503));
    let b = ep("b", Step::Answer);
    let breaker = CircuitBreakerConfig {
        failure_threshold: 1,
        cool_down: 10 * SEC,
    };
    let r = router_with(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(3),
        breaker,
    );
    ask(&r, 60 * SEC).await.unwrap();
    assert_eq!(
        a.fake.calls(),
        1,
        "open after the first failure: no retries into it"
    );
    tokio::time::advance(10 * SEC).await;
    ask(&r, 60 * SEC).await.unwrap();
    assert_eq!(a.fake.calls(), 2, "one probe");
    ask(&r, 60 * SEC).await.unwrap();
    assert_eq!(a.fake.calls(), 2, "open again");
}

#[tokio::test(start_paused = true)]
async fn only_one_probe_while_half_open() {
    let a = ep("a", fake::status(503));
    let b = ep("b", Step::Answer);
    let breaker = CircuitBreakerConfig {
        failure_threshold: 1,
        cool_down: 10 * SEC,
    };
    let r = Arc::new(router_with(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(1),
        breaker,
    ));
    ask(&r, 60 * SEC).await.unwrap();
    tokio::time::advance(10 * SEC).await;
    a.fake.set(Step::AnswerAfter(5 * SEC));
    let probe = tokio::spawn({
        let r = Arc::clone(&r);
        async move { ask(&r, 60 * SEC).await }
    });
    tokio::task::yield_now().await;
    let other = ask(&r, 60 * SEC).await.unwrap();
    assert_eq!(other.endpoint, "b", "a is being probed");
    assert_eq!(probe.await.unwrap().unwrap().endpoint, "a");
    assert_eq!(ask(&r, 60 * SEC).await.unwrap().endpoint, "a");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_makes_requests_wait_instead_of_exceeding_n_per_minute() {
    let mut a = ep("a", Step::Answer);
    a.limits.requests_per_minute = Some(6);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(1));
    let start = Instant::now();
    for _ in 0..13 {
        ask(&r, 120 * SEC).await.unwrap();
    }
    let times = a.fake.call_times();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().filter(|u| **u - *t < 60 * SEC).count();
        assert!(in_window <= 6, "{in_window} calls within 60s from call {i}");
    }
    assert!(start.elapsed() >= 120 * SEC, "{:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_cannot_wait_for_budget_is_rate_limited() {
    let mut a = ep("a", Step::Answer);
    a.limits.requests_per_minute = Some(1);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(3));
    ask(&r, 10 * SEC).await.unwrap();
    let start = Instant::now();
    let err = ask(&r, 10 * SEC).await.unwrap_err();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "refused at once, not after waiting"
    );
    assert_eq!(
        err.to_string(),
        "route 'r': every target is rate-limited and the deadline cannot wait"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_primary_fails_over_when_the_deadline_cannot_wait() {
    let mut a = ep("a", Step::Answer);
    a.limits.requests_per_minute = Some(1);
    let b = ep("b", Step::Answer);
    let r = router(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(3),
    );
    assert_eq!(ask(&r, 10 * SEC).await.unwrap().endpoint, "a");
    assert_eq!(ask(&r, 10 * SEC).await.unwrap().endpoint, "b");
}

#[tokio::test(start_paused = true)]
async fn concurrency_cap_queues_requests() {
    let mut a = ep("a", Step::AnswerAfter(SEC));
    a.limits.max_concurrency = Some(2);
    let r = Arc::new(router(&[&a], vec![target("a", 1, 1)], retry(1)));
    let start = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let r = Arc::clone(&r);
            tokio::spawn(async move { ask(&r, 60 * SEC).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(a.fake.max_in_flight(), 2);
    assert_eq!(start.elapsed(), 3 * SEC);
}

#[tokio::test(start_paused = true)]
async fn equal_priority_shares_load_by_weight() {
    let a = ep("a", Step::Answer);
    let b = ep("b", Step::Answer);
    let r = router(
        &[&a, &b],
        vec![target("a", 1, 3), target("b", 1, 1)],
        retry(1),
    );
    for _ in 0..4000 {
        ask(&r, SEC).await.unwrap();
    }
    let share_a = a.fake.calls();
    assert!(
        (2850..=3150).contains(&share_a),
        "a got {share_a} of 4000 at weight 3:1"
    );
}

#[tokio::test(start_paused = true)]
async fn equal_priority_prefers_fewer_in_flight() {
    let a = ep("a", Step::AnswerAfter(10 * SEC));
    let b = ep("b", Step::AnswerAfter(10 * SEC));
    let r = Arc::new(router(
        &[&a, &b],
        vec![target("a", 1, 2), target("b", 1, 1)],
        retry(1),
    ));
    let tasks: Vec<_> = (0..9)
        .map(|_| {
            let r = Arc::clone(&r);
            tokio::spawn(async move { ask(&r, 60 * SEC).await })
        })
        .collect();
    tokio::time::sleep(SEC).await;
    assert_eq!(
        (a.fake.calls(), b.fake.calls()),
        (6, 3),
        "in flight kept at 2:1"
    );
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_equal_priority_peer_is_tried_before_the_failover() {
    let a = ep("a", fake::status(503));
    let b = ep("b", fake::status(503));
    let c = ep("c", Step::Answer);
    let r = router(
        &[&a, &b, &c],
        vec![target("a", 1, 1), target("b", 1, 1), target("c", 2, 1)],
        retry(2),
    );
    let done = ask(&r, 60 * SEC).await.unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("c", 5));
    assert_eq!((a.fake.calls(), b.fake.calls()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn deadline_already_passed_tries_nothing() {
    let a = ep("a", Step::Answer);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(3));
    let err = r.complete("r", prompt(), Instant::now()).await.unwrap_err();
    assert_eq!(summary(err), "a not tried: deadline reached");
    assert_eq!(a.fake.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn metrics_name_the_endpoints_and_routes() {
    let handle = crate::metrics::handle();
    metrics::describe();
    let a = ep("metrics-a", fake::status(503));
    let mut b = ep("metrics-b", Step::Answer);
    b.limits.requests_per_minute = Some(1);
    let targets = vec![target("metrics-a", 1, 1), target("metrics-b", 2, 1)];
    let r = router(&[&a, &b], targets, retry(2));
    ask(&r, 60 * SEC).await.unwrap();
    tokio::time::advance(30 * SEC).await;
    ask(&r, 60 * SEC).await.unwrap();
    let text = handle.render();
    for series in [
        "llm_router_retries_total{endpoint=\"metrics-a\"}",
        "llm_router_failovers_total{route=\"r\"}",
        "llm_router_circuit_state{endpoint=\"metrics-a\"}",
        "llm_router_rate_limit_waits_total{endpoint=\"metrics-b\"} 1",
        "llm_router_in_flight{endpoint=\"metrics-b\"} 0",
        "llm_router_tokens_total{endpoint=\"metrics-b\",kind=\"prompt\"} 20",
        "llm_router_tokens_total{endpoint=\"metrics-b\",kind=\"completion\"} 10",
        "llm_router_upstream_latency_seconds_count{endpoint=\"metrics-a\"}",
        "# HELP llm_router_circuit_state Circuit breaker state by endpoint: 0 closed, 1 half-open, 2 open.",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_provider_call_is_counted_by_endpoint_and_status() {
    let handle = crate::metrics::handle();
    let a = ep("status-a", Step::Answer);
    a.fake.script([
        fake::status(503),
        Step::Hang,
        Step::Fail(ProviderError::Connect("refused".into())),
    ]);
    let r = router(&[&a], vec![target("status-a", 1, 1)], retry(4));
    assert_eq!(ask(&r, 60 * SEC).await.unwrap().attempts, 4);

    let s = ep("status-s", Step::Answer);
    s.fake.script([fake::status(429)]);
    let r = router(&[&s], vec![target("status-s", 1, 1)], retry(2));
    let mut streaming = r
        .stream("r", prompt(), Instant::now() + 60 * SEC, None)
        .await
        .unwrap();
    while streaming.next().await.is_some() {}

    let b = ep("status-b", fake::status(400));
    let r = router(&[&b], vec![target("status-b", 1, 1)], retry(3));
    let reservation = r
        .reserve("r", &prompt(), Instant::now() + SEC)
        .await
        .unwrap();
    r.complete_reserved(reservation, prompt(), SEC)
        .await
        .unwrap_err();

    let text = handle.render();
    let series = |endpoint: &str, status: &str| {
        format!(
            "llm_router_upstream_responses_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} 1"
        )
    };
    for line in [
        series("status-a", "503"),
        series("status-a", "timeout"),
        series("status-a", "connect"),
        series("status-a", "200"),
        series("status-s", "429"),
        series("status-s", "200"),
        series("status-b", "400"),
    ] {
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
}

mod batch;

fn with_n(n: u32) -> LlmRequest {
    let body = serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "n": n});
    let serde_json::Value::Object(body) = body else {
        unreachable!()
    };
    LlmRequest::new(crate::provider::Api::Chat, body).expect("valid")
}

#[tokio::test(start_paused = true)]
async fn a_target_that_cannot_honour_a_parameter_is_passed_over() {
    let a = ep("a", Step::Answer);
    let b = ep("b", Step::Answer);
    a.fake.refuse("n");
    let r = router(
        &[&a, &b],
        vec![target("a", 1, 1), target("b", 2, 1)],
        retry(3),
    );
    let deadline = Instant::now() + 10 * SEC;
    let done = r.complete("r", with_n(2), deadline).await.unwrap();
    assert_eq!(done.endpoint, "b", "priority 1 cannot honour n");
    assert_eq!(a.fake.calls(), 0);
    assert!(r.refusal("r", &with_n(2)).is_none());
    let streamed = r.stream("r", with_n(2), deadline, None).await.unwrap();
    assert_eq!(streamed.endpoint(), "b");
    // A request a can take goes to it as before.
    let done = r.complete("r", prompt(), deadline).await.unwrap();
    assert_eq!(done.endpoint, "a");
}

#[tokio::test(start_paused = true)]
async fn a_request_no_target_can_honour_is_refused_naming_why() {
    let a = ep("a", Step::Answer);
    a.fake.refuse("n");
    let r = router(&[&a], vec![target("a", 1, 1)], retry(3));
    let deadline = Instant::now() + 10 * SEC;
    let err = r.complete("r", with_n(2), deadline).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RouteError::BadRequest { .. }), "{text}");
    assert!(
        text.contains("endpoint 'a'") && text.contains("`n`"),
        "{text}"
    );
    assert_eq!(a.fake.calls(), 0);
    assert!(r.refusal("r", &with_n(2)).is_some());
    assert!(r.stream("r", with_n(2), deadline, None).await.is_err());
}
