//! The whole request path in one process: the broker (embedded, or the real KubeMQ server
//! when `LLM_ROUTER_TEST_BROKER=kubemq`), simulated providers, worker replicas and the
//! gateway, each on an ephemeral loopback port. Test crates add their own
//! request helpers to [`Stack`] in an `impl Stack` block of their own.

use super::Broker;
use llm_router::config::RouterConfig;
use llm_router::gateway::{self, GatewayOptions, RunningGateway};
use llm_router::provider::http_client;
use llm_router::routing::Router;
use llm_router::sim::{RunningSim, SimConfig};
use llm_router::worker::{self, Status, WorkerError, WorkerOptions};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running worker: cancel the token, then await the task.
pub type WorkerTask = (CancellationToken, JoinHandle<Result<(), WorkerError>>);

/// The simulated provider on an ephemeral loopback port.
pub async fn start_sim(sim: SimConfig) -> RunningSim {
    llm_router::sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..sim
    })
    .await
    .expect("start sim")
}

/// A sim that answers after `latency_ms`.
pub fn slow_sim(latency_ms: u64) -> SimConfig {
    SimConfig {
        latency_ms,
        ..SimConfig::default()
    }
}

/// One call at a time at the `anthropic` endpoint, the `claude` route's only target: with a
/// slow sim, batch lines queue up for the slot.
pub const ONE_CLAUDE_SLOT: [(&str, &str); 1] = [(
    "LLM_ROUTER__ENDPOINTS__ANTHROPIC__LIMITS__MAX_CONCURRENCY",
    "1",
)];

/// The default routes pointed at `sim`, with `env` overrides (`LLM_ROUTER__…`).
pub fn sim_routes(sim: &RunningSim, env: &[(&str, &str)]) -> RouterConfig {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    llm_router::config::load_with_env(None, &env)
        .expect("config")
        .with_sim(&sim.base_url())
}

/// Spawns worker `id` on `router` without waiting; the status tells when it is subscribed.
pub fn spawn_worker(broker: &str, id: &str, router: Arc<Router>) -> (Arc<Status>, WorkerTask) {
    let status = Arc::new(Status::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker::run(
        WorkerOptions::new(broker, id),
        router,
        status.clone(),
        stop.clone().cancelled_owned(),
    ));
    (status, (stop, task))
}

/// Worker `id` on the broker at `broker` (`host:port`) with its own router on `config`
/// (as a separate process would have), once it is subscribed.
pub async fn start_worker(broker: &str, config: &RouterConfig, id: &str) -> WorkerTask {
    let router = Arc::new(
        Router::new(
            config,
            http_client(&config.connections).expect("http client"),
        )
        .expect("router"),
    );
    let (status, worker) = spawn_worker(broker, id, router);
    super::eventually("worker subscribed", || status.is_ready()).await;
    worker
}

/// Cancels every worker first, so none waits on another's shutdown, then awaits them.
pub async fn stop_workers(workers: Vec<WorkerTask>) {
    for (stop, _) in &workers {
        stop.cancel();
    }
    for (_, task) in workers {
        let _ = task.await;
    }
}

/// A gateway on an ephemeral loopback port, on the broker at `broker` (`host:port`).
pub async fn start_gateway(
    broker: String,
    config: &RouterConfig,
    tune: impl FnOnce(&mut GatewayOptions),
) -> RunningGateway {
    let mut options = GatewayOptions::new(broker, "127.0.0.1:0".parse().expect("addr"));
    tune(&mut options);
    gateway::start(options, config).await.expect("gateway")
}

/// Waits until a GET of each of `urls` is 200 in the same round; fails the test after `limit`.
pub async fn wait_ok(http: &reqwest::Client, urls: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut all = true;
        for url in urls {
            let response = http.get(url).send().await;
            all &= response.is_ok_and(|r| r.status() == StatusCode::OK);
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "gateway never ready: {urls:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A batch input file of `n` chat lines for `gpt-4o-mini`, `req-0` to `req-{n-1}`.
pub fn job_file(n: usize) -> String {
    job_file_for(n, Some("gpt-4o-mini"))
}

/// [`job_file`] with `body.model` set to `model` (left out with None: the job's route).
pub fn job_file_for(n: usize, model: Option<&str>) -> String {
    (0..n)
        .map(|i| {
            let mut body =
                serde_json::json!({"messages": [{"role": "user", "content": format!("say {i}")}]});
            if let Some(model) = model {
                body["model"] = model.into();
            }
            serde_json::json!({
                "custom_id": format!("req-{i}"),
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": body,
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Broker, simulated providers, workers and one gateway, all in this process.
pub struct Stack {
    pub broker: Broker,
    /// Stopped with the stack; tests that keep their sims to read stats leave this empty.
    pub sims: Vec<RunningSim>,
    pub config: RouterConfig,
    pub workers: Vec<WorkerTask>,
    pub gateway: RunningGateway,
    pub http: reqwest::Client,
}

impl Stack {
    /// A fresh broker, one subscribed worker per id on `config`, then the gateway with
    /// `tune`d options. Does not wait for the gateway to be ready.
    pub async fn start(
        sims: Vec<RunningSim>,
        config: RouterConfig,
        worker_ids: impl IntoIterator<Item = String>,
        tune: impl FnOnce(&mut GatewayOptions),
    ) -> Self {
        let broker = Broker::start().await;
        let mut workers = Vec::new();
        for id in worker_ids {
            workers.push(start_worker(&broker.grpc_address(), &config, &id).await);
        }
        let gateway = start_gateway(broker.grpc_address(), &config, tune).await;
        Self {
            broker,
            sims,
            config,
            workers,
            gateway,
            http: reqwest::Client::new(),
        }
    }

    /// `path` on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
    }

    /// Waits up to 5 s for the gateway's `/ready` (its broker link is up).
    pub async fn wait_ready(&self) {
        wait_ok(&self.http, &[self.url("/ready")], Duration::from_secs(5)).await;
    }

    pub async fn stop(self) {
        self.gateway.stop().await;
        stop_workers(self.workers).await;
        for sim in self.sims {
            sim.shutdown.cancel();
        }
        self.broker.stop().await;
    }
}
