//! Routing over real loopback HTTP: routers built from config files, endpoints served by
//! the simulated provider (or by nothing, for refused connections). Real time throughout
//! (reqwest over sockets does not mix with a paused clock); the timing-exact cases are the
//! paused-time unit tests in `src/routing`.
#![expect(clippy::unwrap_used, reason = "a panic is how a test fails")]

use llm_router::config::{self, RouterConfig};
use llm_router::provider::{http_client, LlmRequest};
use llm_router::routing::{RouteError, Router};
use llm_router::sim::{self, RunningSim, SimConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

async fn start(config: SimConfig) -> RunningSim {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    sim::start(SimConfig { listen, ..config }).await.unwrap()
}

/// A loopback address nothing listens on.
async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Loads the defaults plus `toml` as a config file, with `env` as the environment.
fn load(toml: &str, env: &[(&str, &str)]) -> RouterConfig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.toml"), toml).unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    config::load_with_env(Some(dir.path()), &env).unwrap()
}

/// Route `t` over endpoints `a` (priority 1) and `b` (priority 2) at the given URLs.
fn pair(a: &str, b: &str, extra: &str) -> String {
    format!(
        r#"
[endpoints.a]
kind = "sim"
base-url = "{a}"
timeout = "300ms"
[endpoints.b]
kind = "sim"
base-url = "{b}"
[routes.t]
channel = "t_requests"
retry = {{ max-attempts = 3, base-delay = "10ms", max-delay = "50ms" }}
targets = [
  {{ endpoint = "a", model = "model-a", priority = 1 }},
  {{ endpoint = "b", model = "model-b", priority = 2 }},
]
{extra}
"#
    )
}

fn router(config: &RouterConfig) -> Router {
    Router::new(config, http_client(&config.connections).unwrap()).unwrap()
}

fn prompt(text: &str) -> LlmRequest {
    LlmRequest::prompt(text)
}

fn within(d: Duration) -> Instant {
    Instant::now() + d
}

#[tokio::test]
async fn answers_through_the_sim_from_a_config_file() {
    let a = start(SimConfig::default()).await;
    let b = start(SimConfig::default()).await;
    let r = router(&load(&pair(&a.base_url(), &b.base_url(), ""), &[]));
    let done = r
        .complete("t", prompt("hello router"), within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("a", 1));
    assert_eq!(done.response.text(), "sim: hello router");
    assert_eq!(done.response.model(), "model-a");
    assert!(r
        .routes()
        .iter()
        .any(|i| i.name == "t" && i.channel == "t_requests"));
}

#[tokio::test]
async fn fails_over_when_the_primary_returns_503s() {
    let a = start(SimConfig {
        error_rates: vec![(503, 1.0)],
        ..SimConfig::default()
    })
    .await;
    let b = start(SimConfig::default()).await;
    let r = router(&load(&pair(&a.base_url(), &b.base_url(), ""), &[]));
    let done = r
        .complete("t", prompt("x"), within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("b", 4));
    assert_eq!((a.stats().requests, a.stats().errors), (3, 3));
}

#[tokio::test]
async fn fails_over_when_the_primary_refuses_connections() {
    let b = start(SimConfig::default()).await;
    let r = router(&load(&pair(&refused_url().await, &b.base_url(), ""), &[]));
    let done = r
        .complete("t", prompt("x"), within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("b", 4));
}

#[tokio::test]
async fn fails_over_when_the_primary_hangs() {
    let a = start(SimConfig {
        hang_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let b = start(SimConfig::default()).await;
    let r = router(&load(&pair(&a.base_url(), &b.base_url(), ""), &[]));
    let start_at = Instant::now();
    let done = r
        .complete("t", prompt("x"), within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(done.endpoint, "b");
    assert!(
        start_at.elapsed() >= Duration::from_millis(900),
        "3 × 300ms timeouts first"
    );
    assert_eq!(a.stats().hangs, 3);
}

#[tokio::test]
async fn all_failed_says_what_happened_at_each_target() {
    let a = start(SimConfig {
        error_rates: vec![(503, 1.0)],
        ..SimConfig::default()
    })
    .await;
    let b = start(SimConfig {
        hang_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let extra = "[endpoints.b.limits]\n";
    let config = load(
        &pair(&a.base_url(), &b.base_url(), extra),
        &[("LLM_ROUTER__ENDPOINTS__B__TIMEOUT", "200ms")],
    );
    let err = router(&config)
        .complete("t", prompt("x"), within(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "route 't': all targets failed: a 503 after 3 attempts; b timed out after 200ms (3 attempts)"
    );
}

#[tokio::test]
async fn unauthorized_moves_on_at_once_and_names_the_key_variable() {
    let a = start(SimConfig {
        api_key: Some("the-right-key".into()),
        ..SimConfig::default()
    })
    .await;
    let b = start(SimConfig {
        api_key: Some("the-right-key".into()),
        ..SimConfig::default()
    })
    .await;
    let toml = pair(&a.base_url(), &b.base_url(), "");
    let keys = |a_key, b_key| {
        load(
            &toml,
            &[
                ("LLM_ROUTER__ENDPOINTS__A__API_KEY_ENV", "A_TEST_KEY"),
                ("LLM_ROUTER__ENDPOINTS__B__API_KEY_ENV", "B_TEST_KEY"),
                ("A_TEST_KEY", a_key),
                ("B_TEST_KEY", b_key),
            ],
        )
    };
    let config = keys("sk-wrong-a", "the-right-key");
    let r = router(&config);
    let done = r
        .complete("t", prompt("x"), within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("b", 2));
    assert_eq!(a.stats().rejected, 1, "no retry after a 401");

    let config = keys("sk-wrong-a", "sk-wrong-b");
    let text = router(&config)
        .complete("t", prompt("x"), within(Duration::from_secs(5)))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "route 't': all targets failed: a 401 after 1 attempt (check A_TEST_KEY); \
         b 401 after 1 attempt (check B_TEST_KEY)"
    );
    assert!(!text.contains("sk-wrong"), "keys never appear in errors");
}

#[tokio::test]
async fn retry_after_is_honoured_over_http() {
    let a = start(SimConfig {
        rate_429: 1.0,
        retry_after_secs: 1,
        ..SimConfig::default()
    })
    .await;
    let b = start(SimConfig::default()).await;
    let config = load(
        &pair(&a.base_url(), &b.base_url(), ""),
        &[("LLM_ROUTER__ROUTES__T__RETRY__MAX_ATTEMPTS", "2")],
    );
    let start_at = Instant::now();
    let done = router(&config)
        .complete("t", prompt("x"), within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("b", 3));
    assert_eq!(a.stats().rate_limited, 2);
    assert!(
        start_at.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start_at.elapsed()
    );
}

#[tokio::test]
async fn bad_request_fails_at_once() {
    let a = start(SimConfig {
        error_rates: vec![(422, 1.0)],
        ..SimConfig::default()
    })
    .await;
    let b = start(SimConfig::default()).await;
    let err = router(&load(&pair(&a.base_url(), &b.base_url(), ""), &[]))
        .complete("t", prompt("x"), within(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, RouteError::BadRequest { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("route 't': a rejected the request: HTTP 422"),
        "{err}"
    );
    assert_eq!((a.stats().requests, b.stats().requests), (1, 0));
}

/// The sim allows 100 requests a minute; 150 arrive at once with 2s to spare. The router
/// sends only what its matching budget allows and answers the rest "rate-limited" at
/// once: the sim never says 429. Without the limit the same burst collects 429s.
#[tokio::test]
async fn rate_limit_holds_no_429_from_a_limited_endpoint() {
    let limited = SimConfig {
        rpm_limit: Some(100),
        ..SimConfig::default()
    };
    let a = start(limited.clone()).await;
    let r = Arc::new(router(&load(
        &single(&a.base_url(), "requests-per-minute = 100"),
        &[],
    )));
    let results = burst(&r, 150).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let limited_now = results
        .iter()
        .filter(|r| matches!(r, Err(RouteError::RateLimited { .. })))
        .count();
    assert_eq!(a.stats().rate_limited, 0, "{:?}", a.stats());
    assert!(ok >= 5, "the burst allowance went through: {ok}");
    assert_eq!(ok as u64, a.stats().ok);
    assert_eq!(ok + limited_now, 150);

    let control = start(limited).await;
    let r = Arc::new(router(&load(&single(&control.base_url(), ""), &[])));
    burst(&r, 150).await;
    assert!(control.stats().rate_limited >= 50, "{:?}", control.stats());
}

/// Connections in ESTABLISHED state whose server end is 127.0.0.1:`port`, from the kernel's
/// table: what the sim side still holds open for the router's pool.
fn established_to(port: u16) -> usize {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// A burst of 40 leaves at most `idle-per-endpoint` connections behind, not 40; with room
/// for all of them, all 40 stay (the control that shows the count is what we think).
#[tokio::test]
async fn idle_connections_after_a_burst_are_capped_per_endpoint() {
    let slow = SimConfig {
        latency_ms: 200,
        ..SimConfig::default()
    };
    for (cap, expected) in [(4usize, 4usize), (64, 40)] {
        let sim = start(slow.clone()).await;
        let port = sim.addr.port();
        let toml = format!(
            "{}\n[connections]\nidle-per-endpoint = {cap}\n",
            single(&sim.base_url(), "")
        );
        let r = Arc::new(router(&load(&toml, &[])));
        let results = burst(&r, 40).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(sim.stats().ok, 40);
        let until = Instant::now() + Duration::from_secs(5);
        let mut held = established_to(port);
        while held != expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
            held = established_to(port);
        }
        assert_eq!(
            held, expected,
            "cap {cap}: connections left open after the burst"
        );
    }
}

/// Route `t` over endpoint `a` alone, with `limits` lines.
fn single(a: &str, limits: &str) -> String {
    format!(
        r#"
[endpoints.a]
kind = "sim"
base-url = "{a}"
limits = {{ {limits} }}
[routes.t]
channel = "t_requests"
targets = [{{ endpoint = "a", model = "m" }}]
"#
    )
}

async fn burst(r: &Arc<Router>, n: usize) -> Vec<Result<(), RouteError>> {
    let deadline = within(Duration::from_secs(2));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let r = Arc::clone(r);
            tokio::spawn(async move { r.complete("t", prompt("x"), deadline).await.map(|_| ()) })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn circuit_opens_on_refused_connections_and_closes_when_the_endpoint_returns() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_addr = listener.local_addr().unwrap();
    drop(listener);
    let b = start(SimConfig::default()).await;
    let breaker = "[circuit-breaker]\nfailure-threshold = 3\ncool-down = \"300ms\"\n";
    let r = router(&load(
        &pair(&format!("http://{a_addr}"), &b.base_url(), breaker),
        &[],
    ));
    let ask = || r.complete("t", prompt("x"), within(Duration::from_secs(5)));

    assert_eq!(ask().await.unwrap().attempts, 4, "3 refused, then b");
    let skipped = ask().await.unwrap();
    assert_eq!(
        (skipped.endpoint.as_str(), skipped.attempts),
        ("b", 1),
        "open: a skipped"
    );

    let a = sim::start(SimConfig {
        listen: a_addr,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(ask().await.unwrap().endpoint, "a", "the probe succeeds");
    assert_eq!(ask().await.unwrap().endpoint, "a", "closed");
    assert_eq!(a.stats().ok, 2);
}

#[tokio::test]
async fn anthropic_endpoints_work_through_the_sim() {
    let s = start(SimConfig::default()).await;
    let toml = format!(
        r#"
[endpoints.claude-sim]
kind = "anthropic"
base-url = "{}"
[routes.c]
channel = "c_requests"
targets = [{{ endpoint = "claude-sim", model = "claude-3-5-haiku-latest" }}]
"#,
        s.base_url()
    );
    let done = router(&load(&toml, &[]))
        .complete("c", prompt("bonjour"), within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(done.response.text(), "sim: bonjour");
}

/// What `llm-router up` does without keys: the default routes, pointed at the sim.
#[tokio::test]
async fn default_routes_answer_from_the_sim_without_keys() {
    let s = start(SimConfig::default()).await;
    let config = config::load_with_env(None, &HashMap::new()).unwrap();
    assert!(config.check_keys().is_err());
    let config = config.with_sim(&s.base_url());
    config.check_keys().unwrap();
    let r = router(&config);
    for route in ["openai", "claude", "summarize", "sentiment"] {
        let done = r
            .complete(route, prompt("hi"), within(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(done.response.text(), "sim: hi", "route {route}");
    }
}
