//! `llm-router` command line. Each subcommand is one role of the system:
//! - `broker`: the embedded KubeMQ-compatible broker alone;
//! - `worker`: one stateless worker replica;
//! - `up`: broker + workers + gateway (+ the simulated provider) in one process;
//! - `gateway`: the OpenAI-compatible HTTP gateway in front of the broker;
//! - `ask`: send one prompt to a route, print the answer;
//! - `sim-provider`: the simulated OpenAI/Anthropic server.

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use llm_router::broker::config::{BrokerConfig, EdgeLimits, FsyncPolicy, QueueLimits};
use llm_router::config::keys::RouteKeys;
use llm_router::config::{self as router_config, RouterConfig};
use llm_router::gateway::{self, GatewayOptions, RunningGateway};
use llm_router::kubemq::client::{Client, ClientOptions, ErrorKind};
use llm_router::kubemq::{request::RequestType, Request};
use llm_router::logging::Format as LogFormat;
use llm_router::routing::Router;
use llm_router::sim::{RunningSim, SimConfig};
use llm_router::worker::{self, Status, WorkerOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "llm-router",
    version,
    about = "LLM router over the KubeMQ message broker"
)]
struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Debugging only: also log prompt text (at debug level). Prompts are never logged
    /// without it; keys never are.
    #[arg(long, global = true)]
    log_prompts: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded KubeMQ-compatible broker (gRPC, REST, health and metrics).
    Broker(BrokerArgs),
    /// Run one worker replica: take requests off the broker's route channels and answer them.
    Worker(WorkerArgs),
    /// Run broker + workers + gateway (+ the simulated provider when no keys are set) in one process.
    Up(UpArgs),
    /// Run the OpenAI-compatible HTTP gateway: chat requests go to workers through the broker.
    Gateway(GatewayArgs),
    /// Send one prompt to a route through the broker and print the answer.
    Ask(AskArgs),
    /// Run the simulated OpenAI/Anthropic provider.
    SimProvider(SimArgs),
    /// Bulk jobs in OpenAI's Batch format through the broker's queues: submit, status,
    /// results, cancel, list.
    Batch(llm_router::batch::cli::BatchArgs),
}

#[derive(clap::Args)]
struct BrokerArgs {
    /// Address to bind every listener to.
    #[arg(long, env = "LLM_ROUTER_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// gRPC port (KubeMQ's default is 50000; 0 picks a free port).
    #[arg(long, env = "GRPC_PORT", default_value_t = 50000)]
    grpc_port: u16,
    /// REST, /health, /ready and /metrics port (KubeMQ's REST default is 9090).
    #[arg(long, env = "REST_PORT", default_value_t = 9090)]
    rest_port: u16,
    /// Data directory for queues and the events store [default: <user data dir>/llm-router/broker].
    #[arg(long, env = "LLM_ROUTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// When writes are fsynced: `always` (before each acknowledgement, shared by concurrent
    /// writers) or `interval:<ms>` (faster; a crash may lose that window).
    #[arg(long, env = "LLM_ROUTER_FSYNC", default_value = "always")]
    fsync: FsyncPolicy,
    /// Largest message accepted, in bytes (KubeMQ's GRPC_BODY_LIMIT; default 100 MiB).
    #[arg(long, env = "GRPC_BODY_LIMIT", default_value_t = 100 * 1024 * 1024)]
    max_message_bytes: usize,
    #[command(flatten)]
    limits: BrokerLimitArgs,
}

/// The broker's caps on what one client can make it hold (shared by `broker` and `up`).
#[derive(clap::Args)]
struct BrokerLimitArgs {
    /// Longest channel name, in bytes (246: the real KubeMQ fails queue names beyond it).
    #[arg(long, env = "LLM_ROUTER_MAX_CHANNEL_NAME_BYTES", default_value_t = 246)]
    max_channel_name_bytes: usize,
    /// Largest metadata plus tags of one message, in bytes.
    #[arg(long, env = "LLM_ROUTER_MAX_METADATA_BYTES", default_value_t = 1024 * 1024)]
    max_metadata_bytes: usize,
    /// Longest timeout a command or query may ask for, in seconds.
    #[arg(long, env = "LLM_ROUTER_MAX_REQUEST_TIMEOUT", default_value_t = 3600)]
    max_request_timeout: u64,
    /// gRPC connections open at once; more are closed as they arrive.
    #[arg(long, env = "LLM_ROUTER_MAX_GRPC_CONNECTIONS", default_value_t = 4096)]
    max_grpc_connections: usize,
    /// Concurrent calls on one gRPC connection (HTTP/2 streams).
    #[arg(long, env = "LLM_ROUTER_MAX_GRPC_STREAMS", default_value_t = 1024)]
    max_grpc_streams: u32,
    /// REST connections open at once.
    #[arg(long, env = "LLM_ROUTER_MAX_REST_CONNECTIONS", default_value_t = 1024)]
    max_rest_connections: usize,
    /// Bytes of body and metadata one subscriber's buffer may hold before it misses
    /// messages.
    #[arg(long, env = "LLM_ROUTER_SUBSCRIBER_BUFFER_BYTES", default_value_t = 64 * 1024 * 1024)]
    subscriber_buffer_bytes: usize,
    /// Seconds an events, commands or queries channel that appeared by use stays listed
    /// after its last message, once nobody subscribes to it by name.
    #[arg(
        long,
        env = "LLM_ROUTER_FORGET_IDLE_CHANNELS_AFTER",
        default_value_t = 60
    )]
    forget_idle_channels_after: u64,
    /// Most messages one queue may hold (ready, delayed, in flight) before sends to it are
    /// refused with error 139; 0 means no limit. Each costs about 40 bytes of memory.
    #[arg(long, env = "LLM_ROUTER_MAX_QUEUE_DEPTH", default_value_t = QueueLimits::default().max_queue_depth)]
    max_queue_depth: u64,
    /// Most body bytes one queue may hold before sends to it are refused with error 140;
    /// 0 means no limit. Bodies are kept on disk, not in memory.
    #[arg(long, env = "LLM_ROUTER_MAX_QUEUE_BYTES", default_value_t = QueueLimits::default().max_queue_bytes)]
    max_queue_bytes: u64,
}

impl BrokerLimitArgs {
    fn apply(&self, config: &mut BrokerConfig) {
        config.limits = EdgeLimits {
            max_channel_name_bytes: self.max_channel_name_bytes,
            max_metadata_bytes: self.max_metadata_bytes,
            max_request_timeout: Duration::from_secs(self.max_request_timeout),
            max_grpc_connections: self.max_grpc_connections,
            max_grpc_streams_per_connection: self.max_grpc_streams,
            max_rest_connections: self.max_rest_connections,
        };
        config.subscriber_buffer_bytes = self.subscriber_buffer_bytes;
        config.forget_idle_channels_after = Duration::from_secs(self.forget_idle_channels_after);
        config.queues.max_queue_depth = self.max_queue_depth;
        config.queues.max_queue_bytes = self.max_queue_bytes;
    }
}

impl BrokerArgs {
    fn into_config(self) -> BrokerConfig {
        let mut config = BrokerConfig {
            bind: self.bind,
            grpc_port: self.grpc_port,
            rest_port: self.rest_port,
            fsync: self.fsync,
            max_message_bytes: self.max_message_bytes,
            ..BrokerConfig::default()
        };
        self.limits.apply(&mut config);
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        config
    }
}

/// Where the routes come from and whether to use the simulated provider.
#[derive(clap::Args)]
struct RoutingArgs {
    /// Directory of `*.toml` router config files (missing: built-in defaults).
    #[arg(
        long = "config",
        env = "LLM_ROUTER_CONFIG_DIR",
        default_value = "config"
    )]
    config_dir: PathBuf,
    /// Route every endpoint to the simulated provider, started in this process.
    #[arg(long)]
    sim: bool,
    /// Port of the in-process simulated provider (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    sim_port: u16,
    /// Pause between the chunks of the simulated provider's streamed answers, ms.
    #[arg(long, default_value_t = 0)]
    sim_chunk_delay_ms: u64,
}

#[derive(clap::Args)]
struct WorkerArgs {
    /// The broker's gRPC address.
    #[arg(long, env = "LLM_ROUTER_BROKER", default_value = "127.0.0.1:50000")]
    broker: String,
    #[command(flatten)]
    routing: RoutingArgs,
    /// Address for /health, /ready and /metrics.
    #[arg(long, env = "LLM_ROUTER_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port for /health, /ready and /metrics (0 picks a free one).
    #[arg(long, env = "LLM_ROUTER_METRICS_PORT", default_value_t = 9091)]
    metrics_port: u16,
    /// ClientID at the broker [default: llm-router-worker-<host>-<random>].
    #[arg(long)]
    id: Option<String>,
    /// Consumer group shared by the replicas.
    #[arg(long, default_value = worker::DEFAULT_GROUP)]
    group: String,
    /// Most requests handled at once.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    #[command(flatten)]
    batch: worker::batch::BatchFlags,
}

/// The gateway's HTTP limits, shared by `gateway` and `up`. API keys come from the
/// environment only (LLM_ROUTER_GATEWAY_KEYS), never from the command line.
#[derive(clap::Args)]
struct GatewayHttpArgs {
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = gateway::DEFAULT_MAX_BODY)]
    max_body: usize,
    /// Requests per second per API key (one shared budget when no keys are set), 429 beyond
    /// [default: unlimited].
    #[arg(long)]
    rate_limit: Option<NonZeroU32>,
    /// Connections open at once; more are closed as they arrive.
    #[arg(long = "max-connections", env = "LLM_ROUTER_GATEWAY_MAX_CONNECTIONS", default_value_t = gateway::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Chat and embeddings requests answered at once (a stream counts until it ends);
    /// 429 beyond.
    #[arg(long, env = "LLM_ROUTER_GATEWAY_MAX_IN_FLIGHT", default_value_t = gateway::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Largest Batch API request body in bytes (`/v1/files` uploads, `/v1/batches`); larger
    /// ones get 413. Default: the largest batch file plus 1 MiB of multipart framing.
    #[arg(long, default_value_t = gateway::batchapi::DEFAULT_MAX_UPLOAD)]
    max_upload: usize,
    /// Most requests (non-blank lines) in one batch input file; more get 400 (OpenAI's limit).
    #[arg(long, default_value_t = llm_router::batch::limits::DEFAULT_MAX_LINES)]
    batch_max_lines: usize,
    /// Largest batch input file in bytes; larger ones get 400 (OpenAI's limit, 200 MiB).
    #[arg(long, default_value_t = llm_router::batch::limits::DEFAULT_MAX_FILE_BYTES)]
    batch_max_file_bytes: u64,
}

impl GatewayHttpArgs {
    /// Options for a gateway on `listen`, with the keys from LLM_ROUTER_GATEWAY_KEYS.
    fn options(&self, broker: String, listen: SocketAddr) -> anyhow::Result<GatewayOptions> {
        let mut options = GatewayOptions::new(broker, listen);
        options.max_body = self.max_body;
        options.rate_limit = self.rate_limit;
        options.max_connections = self.max_connections;
        options.max_in_flight = self.max_in_flight;
        options.max_upload = self.max_upload;
        options.batch_limits.max_lines = self.batch_max_lines;
        options.batch_limits.max_file_bytes = self.batch_max_file_bytes;
        options.keys = match std::env::var_os(gateway::auth::KEYS_ENV) {
            None => gateway::auth::ApiKeys::default(),
            Some(keys) => gateway::auth::ApiKeys::parse(
                keys.to_str()
                    .ok_or_else(|| anyhow!("{} is not valid UTF-8", gateway::auth::KEYS_ENV))?,
            ),
        };
        Ok(options)
    }
}

#[derive(clap::Args)]
struct GatewayArgs {
    /// The broker's gRPC address.
    #[arg(long, env = "LLM_ROUTER_BROKER", default_value = "127.0.0.1:50000")]
    broker: String,
    /// Address to listen on (port 0 picks a free one).
    #[arg(
        long,
        env = "LLM_ROUTER_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8000"
    )]
    listen: SocketAddr,
    /// Directory of `*.toml` router config files, for the routes (missing: built-in defaults).
    #[arg(
        long = "config",
        env = "LLM_ROUTER_CONFIG_DIR",
        default_value = "config"
    )]
    config_dir: PathBuf,
    #[command(flatten)]
    http: GatewayHttpArgs,
}

#[derive(clap::Args)]
struct UpArgs {
    /// Worker replicas to run.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[command(flatten)]
    batch: worker::batch::BatchFlags,
    #[command(flatten)]
    routing: RoutingArgs,
    /// Use the KubeMQ broker (or cluster) at this gRPC address instead of starting the
    /// embedded one: workers and gateway join it unchanged.
    #[arg(long, env = "LLM_ROUTER_BROKER", conflicts_with_all = ["grpc_port", "rest_port", "data_dir"])]
    broker: Option<String>,
    /// Broker gRPC port.
    #[arg(long, env = "GRPC_PORT", default_value_t = 50000)]
    grpc_port: u16,
    /// Broker REST, /health, /ready and /metrics port.
    #[arg(long, env = "REST_PORT", default_value_t = 9090)]
    rest_port: u16,
    /// Workers' /health, /ready and /metrics port.
    #[arg(long, env = "LLM_ROUTER_METRICS_PORT", default_value_t = 9091)]
    metrics_port: u16,
    /// Where the OpenAI-compatible gateway listens (port 0 picks a free one).
    #[arg(
        long,
        env = "LLM_ROUTER_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8000"
    )]
    gateway_listen: SocketAddr,
    #[command(flatten)]
    gateway: GatewayHttpArgs,
    /// Broker data directory [default: <user data dir>/llm-router/broker].
    #[arg(long, env = "LLM_ROUTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    broker_limits: BrokerLimitArgs,
}

#[derive(clap::Args)]
struct AskArgs {
    /// Route name (e.g. `openai`, `claude`).
    route: String,
    /// The prompt; read from stdin when omitted or `-`.
    prompt: Option<String>,
    /// The broker's gRPC address.
    #[arg(long, env = "LLM_ROUTER_BROKER", default_value = "127.0.0.1:50000")]
    broker: String,
    /// Send an OpenAI chat request and print the chat completion JSON.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Directory of `*.toml` router config files, to find the route's channel.
    #[arg(
        long = "config",
        env = "LLM_ROUTER_CONFIG_DIR",
        default_value = "config"
    )]
    config_dir: PathBuf,
    /// Send to this channel instead of looking the route up.
    #[arg(long)]
    channel: Option<String>,
    /// Model to ask for in JSON mode (default: the route's).
    #[arg(long)]
    model: Option<String>,
}

#[derive(clap::Args)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// Fixed latency per answer, ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Extra random latency up to this many ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Injected error rate by status, e.g. `--error-rate 503=0.1` (repeatable).
    #[arg(long = "error-rate", value_parser = parse_error_rate)]
    error_rates: Vec<(u16, f64)>,
    /// Probability of a 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    rate_429: f64,
    /// Retry-After of injected 429s, seconds.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Probability of never answering.
    #[arg(long, default_value_t = 0.0)]
    hang_rate: f64,
    /// Probability of resetting the connection.
    #[arg(long, default_value_t = 0.0)]
    reset_rate: f64,
    /// Requests per minute before answering 429.
    #[arg(long)]
    rpm_limit: Option<u32>,
    /// Seed of the fault draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Pause between the chunks of a streamed answer (`stream: true`), ms.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Probability that a streamed answer is cut by an error after a few chunks.
    #[arg(long, default_value_t = 0.0)]
    mid_stream_error_rate: f64,
}

impl SimArgs {
    fn into_config(self) -> SimConfig {
        SimConfig {
            listen: self.listen,
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            error_rates: self.error_rates,
            rate_429: self.rate_429,
            retry_after_secs: self.retry_after_secs,
            hang_rate: self.hang_rate,
            reset_rate: self.reset_rate,
            rpm_limit: self.rpm_limit,
            seed: self.seed,
            chunk_delay_ms: self.chunk_delay_ms,
            mid_stream_error_rate: self.mid_stream_error_rate,
            ..SimConfig::default()
        }
    }
}

fn parse_error_rate(s: &str) -> Result<(u16, f64), String> {
    let (status, rate) = s
        .split_once('=')
        .ok_or_else(|| format!("expected STATUS=RATE (e.g. 503=0.1), got '{s}'"))?;
    let status = status
        .trim()
        .parse()
        .map_err(|_| format!("bad status '{status}'"))?;
    let rate = rate
        .trim()
        .parse()
        .map_err(|_| format!("bad rate '{rate}'"))?;
    Ok((status, rate))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    llm_router::logging::init(cli.log_format, cli.log_prompts);
    // Series recorded before the recorder exists are lost (the circuit breakers set their
    // state once, when the router is built): install it before anything records.
    llm_router::metrics::handle();
    // The command runs as a task, not in `block_on` on the main thread: a future there (a
    // worker's receive loop) has every wake-up cross threads, two context switches each.
    let result = tokio::spawn(run_command(cli.command))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the command's task failed: {e}")));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            llm_router::logging::fatal(cli.log_format, &e);
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Broker(args) => run_broker(args.into_config()).await,
        Command::Worker(args) => run_worker(args).await,
        Command::Up(args) => run_up(args).await,
        Command::Gateway(args) => run_gateway(args).await,
        Command::Ask(args) => run_ask(args).await,
        Command::SimProvider(args) => run_sim(args.into_config()).await,
        Command::Batch(args) => llm_router::batch::cli::run(args).await,
    }
}

async fn run_broker(config: BrokerConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let fsync = config.fsync;
    let running = llm_router::broker::start(config).await?;
    tracing::info!(
        grpc = %running.grpc_addr,
        rest = %running.rest_addr,
        data_dir = %data_dir.display(),
        fsync = ?fsync,
        "broker listening: gRPC on {}, REST/health/metrics on http://{}",
        running.grpc_addr,
        running.rest_addr
    );
    let shutdown = running.broker.shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight calls and syncing the store");
        shutdown.cancel();
    });
    running.wait().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// worker and up
// ---------------------------------------------------------------------------------------

/// The router config and, when the sim serves routes, the running sim and why.
struct Routing {
    config: RouterConfig,
    sim: Option<(RunningSim, String)>,
    /// What the keys at hand did to each route (all real or all sim: nothing skipped).
    keys: Vec<RouteKeys>,
}

/// Loads the config; starts the sim for every route when asked, or (if `fallback`) for
/// the routes that have no target with a key, the others skipping their keyless targets.
/// Without either, missing keys are an error naming the variables.
async fn load_routing(args: &RoutingArgs, fallback: bool) -> anyhow::Result<Routing> {
    let config = router_config::load(Some(&args.config_dir))?;
    if args.sim {
        let sim = start_sim(args).await?;
        let config = config.with_sim(&sim.base_url());
        let keys = config.route_keys();
        return Ok(Routing {
            config,
            sim: Some((sim, "--sim".to_owned())),
            keys,
        });
    }
    let keys = config.route_keys();
    match config.check_keys() {
        Ok(()) => {
            return Ok(Routing {
                config,
                sim: None,
                keys,
            })
        }
        Err(e) if !fallback => bail!("{e}"),
        Err(_) => {}
    }
    let reason = missing_keys_reason(&config);
    if !keys.iter().any(|k| k.sim) {
        let config = config.with_keys(&keys, "");
        return Ok(Routing {
            config,
            sim: None,
            keys,
        });
    }
    let sim = start_sim(args).await?;
    let config = config.with_keys(&keys, &sim.base_url());
    Ok(Routing {
        config,
        sim: Some((sim, reason)),
        keys,
    })
}

async fn start_sim(args: &RoutingArgs) -> anyhow::Result<RunningSim> {
    llm_router::sim::start(SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], args.sim_port)),
        chunk_delay_ms: args.sim_chunk_delay_ms,
        ..SimConfig::default()
    })
    .await
    .context("cannot start the simulated provider")
}

/// "no provider keys set (OPENAI_API_KEY, ANTHROPIC_API_KEY)", naming what is missing.
fn missing_keys_reason(config: &RouterConfig) -> String {
    let mut vars: Vec<String> = config
        .missing_keys()
        .into_iter()
        .map(|m| m.variable)
        .collect();
    vars.sort();
    vars.dedup();
    let all_missing = config.endpoints.iter().all(|e| e.api_key.is_none());
    let what = if all_missing {
        "no provider keys set"
    } else {
        "provider keys missing"
    };
    format!("{what} ({})", vars.join(", "))
}

fn build_router(config: &RouterConfig) -> anyhow::Result<Arc<Router>> {
    let http = llm_router::provider::http_client(&config.connections)
        .context("cannot build the HTTP client")?;
    Ok(Arc::new(Router::new(config, http)?))
}

/// Serves the workers' /health, /ready and /metrics on `addr` until `shutdown`.
async fn spawn_http(
    addr: SocketAddr,
    statuses: Vec<Arc<Status>>,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for /metrics"))?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let stop = shutdown.cancelled_owned();
        if let Err(e) = worker::http::serve(listener, statuses, stop).await {
            tracing::error!("metrics server failed: {e}");
        }
    });
    Ok((local, task))
}

/// Cancels `token` on SIGINT/SIGTERM.
fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new work, finishing requests in flight");
        token.cancel();
    });
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let routing = load_routing(&args.routing, false).await?;
    if let Some((sim, _)) = &routing.sim {
        tracing::info!(
            "--sim: every endpoint routes to the simulated provider at {}",
            sim.base_url()
        );
    }
    let router = build_router(&routing.config)?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let status = Arc::new(Status::default());
    let addr = SocketAddr::new(args.bind, args.metrics_port);
    let (http_addr, http) = spawn_http(addr, vec![status.clone()], shutdown.clone()).await?;
    tracing::info!("worker health and metrics on http://{http_addr}/metrics");
    let mut options = WorkerOptions::new(args.broker, args.id.unwrap_or_else(worker::default_id));
    options.group = args.group;
    options.max_in_flight = args.max_in_flight;
    options.batch = args.batch.options();
    let result = worker::run(options, router, status, shutdown.clone().cancelled_owned()).await;
    shutdown.cancel();
    let _ = http.await;
    stop_sim(routing.sim).await;
    Ok(result?)
}

async fn stop_sim(sim: Option<(RunningSim, String)>) {
    if let Some((sim, _)) = sim {
        sim.shutdown.cancel();
        let _ = sim.task.await;
    }
}

async fn run_up(args: UpArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let broker = match &args.broker {
        Some(address) => UpBroker::External(address.clone()),
        None => UpBroker::Embedded(llm_router::broker::start(up_broker_config(&args)).await?),
    };
    let routing = load_routing(&args.routing, true).await?;
    let router = build_router(&routing.config)?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let statuses: Vec<_> = (0..args.workers.max(1))
        .map(|_| Arc::new(Status::default()))
        .collect();
    let http_addr = SocketAddr::from(([127, 0, 0, 1], args.metrics_port));
    let (http_addr, http) = spawn_http(http_addr, statuses.clone(), shutdown.clone()).await?;
    let mut workers = tokio::task::JoinSet::new();
    for (i, status) in statuses.iter().enumerate() {
        let mut options =
            WorkerOptions::new(broker.address(), format!("llm-router-up-worker-{}", i + 1));
        options.batch = args.batch.options();
        let stop = shutdown.clone().cancelled_owned();
        workers.spawn(worker::run(options, router.clone(), status.clone(), stop));
    }
    wait_ready(&statuses, Duration::from_secs(10)).await;
    let options = args
        .gateway
        .options(broker.address(), args.gateway_listen)?;
    let gateway = gateway::start(options, &routing.config).await?;
    if !gateway.wait_ready(Duration::from_secs(10)).await {
        tracing::warn!(
            "the gateway is not connected to the broker yet; it answers 503 until it is"
        );
    }
    // The gateway stops taking requests when the workers stop taking queries, so no new
    // request waits out its timeout on a channel nobody serves any more.
    let stop_gateway = gateway.shutdown.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        stop_gateway.cancel();
    });
    let summary = UpSummary {
        broker: &broker,
        http: http_addr,
        gateway: &gateway,
        routing: &routing,
        workers: statuses.len(),
        ready_in: started.elapsed(),
    };
    print_stdout(&summary.render())?;
    let mut failed = None;
    while let Some(result) = workers.join_next().await {
        if let Ok(Err(e)) = result {
            tracing::error!("worker stopped: {e}");
            failed.get_or_insert(e);
            shutdown.cancel();
        }
    }
    shutdown.cancel();
    gateway.stop().await;
    let _ = http.await;
    stop_sim(routing.sim).await;
    if let UpBroker::Embedded(broker) = broker {
        broker.shutdown().await;
    }
    failed.map_or(Ok(()), |e| Err(e.into()))
}

/// The broker `up` runs on: its own, or one given with `--broker`.
enum UpBroker {
    Embedded(llm_router::broker::RunningBroker),
    External(String),
}

impl UpBroker {
    fn address(&self) -> String {
        match self {
            Self::Embedded(b) => b.grpc_addr.to_string(),
            Self::External(address) => address.clone(),
        }
    }
}

fn up_broker_config(args: &UpArgs) -> BrokerConfig {
    let mut config = BrokerConfig {
        bind: IpAddr::from([127, 0, 0, 1]),
        grpc_port: args.grpc_port,
        rest_port: args.rest_port,
        ..BrokerConfig::default()
    };
    args.broker_limits.apply(&mut config);
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    config
}

async fn wait_ready(statuses: &[Arc<Status>], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !statuses.iter().all(|s| s.is_ready()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One line per route: its channel, then who answers it (the targets with their endpoints'
/// URLs, or the simulated provider and the keys that would make it real) and which
/// targets it skips for want of a key.
fn route_lines(routing: &Routing) -> Vec<String> {
    let config = &routing.config;
    config
        .routes
        .iter()
        .map(|r| {
            let keys = routing.keys.iter().find(|k| k.route == r.name);
            let endpoints: Vec<_> = r
                .targets
                .iter()
                .filter_map(|t| Some((t, config.endpoint(&t.endpoint)?)))
                .collect();
            let simulated = endpoints
                .iter()
                .all(|(_, e)| e.kind == llm_router::provider::ProviderKind::Sim);
            let missing = |k: &RouteKeys| {
                let mut vars: Vec<&str> = Vec::new();
                for m in &k.skipped {
                    if !vars.contains(&m.variable.as_str()) {
                        vars.push(&m.variable);
                    }
                }
                vars.join(", ")
            };
            let from = match keys {
                Some(k) if simulated && k.sim => {
                    format!("simulated provider (set {} for real answers)", missing(k))
                }
                _ if simulated => "simulated provider".to_owned(),
                _ => {
                    let each: Vec<String> = endpoints
                        .iter()
                        .map(|(t, e)| format!("{} {} at {}", t.endpoint, t.model, e.base_url))
                        .collect();
                    each.join(", ")
                }
            };
            let skips = match keys {
                Some(k) if !k.sim && !k.skipped.is_empty() => {
                    let each: Vec<String> = k
                        .skipped
                        .iter()
                        .map(|m| format!("{} ({} not set)", m.endpoint, m.variable))
                        .collect();
                    format!("; skips {}", each.join(", "))
                }
                _ => String::new(),
            };
            format!("{} → {}: {from}{skips}", r.name, r.channel)
        })
        .collect()
}

/// Where the answers come from, in one line.
fn provider_line(routing: &Routing) -> String {
    let Some((sim, why)) = &routing.sim else {
        return "real providers (keys from the environment)".to_owned();
    };
    let simulated: Vec<&str> = routing
        .keys
        .iter()
        .filter(|k| k.sim)
        .map(|k| k.route.as_str())
        .collect();
    if why == "--sim" || simulated.len() == routing.keys.len() {
        return format!(
            "{why}: every route answers from the built-in simulated provider at {}",
            sim.base_url()
        );
    }
    format!(
        "{why}: {} from the built-in simulated provider at {}; the other routes from their real providers",
        simulated.join(", "),
        sim.base_url()
    )
}

/// What `up` prints once everything listens.
struct UpSummary<'a> {
    broker: &'a UpBroker,
    http: SocketAddr,
    gateway: &'a RunningGateway,
    routing: &'a Routing,
    workers: usize,
    ready_in: Duration,
}

impl UpSummary<'_> {
    fn render(&self) -> String {
        let routes = route_lines(self.routing).join("\n                 ");
        let provider = provider_line(self.routing);
        let example = self
            .routing
            .config
            .routes
            .first()
            .map_or("openai", |r| r.name.as_str());
        let broker = match self.broker {
            UpBroker::Embedded(b) => format!(
                "  gRPC (KubeMQ)  {}\n  REST (KubeMQ)  http://{}   (/health /ready /metrics)\n",
                b.grpc_addr, b.rest_addr
            ),
            UpBroker::External(address) => {
                format!("  broker         external KubeMQ at {address} (--broker)\n")
            }
        };
        format!(
            "llm-router up: ready in {} ms\n{broker}  workers        {} in group {}, metrics http://{}/metrics\n  gateway        {}   (OpenAI base URL {}/v1; /health /ready /metrics)\n  routes         {}\n  provider       {}\n  try            llm-router ask {example} \"Hello\" --broker {}\n",
            self.ready_in.as_millis(),
            self.workers,
            worker::DEFAULT_GROUP,
            self.http,
            self.gateway.url(),
            self.gateway.url(),
            routes,
            provider,
            self.broker.address(),
        )
    }
}

fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// gateway
// ---------------------------------------------------------------------------------------

async fn run_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let config = router_config::load(Some(&args.config_dir))?;
    let options = args.http.options(args.broker, args.listen)?;
    let gateway = gateway::start(options, &config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: no new requests, finishing those in flight");
    gateway.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ask
// ---------------------------------------------------------------------------------------

async fn run_ask(args: AskArgs) -> anyhow::Result<()> {
    let channel = match &args.channel {
        Some(channel) => channel.clone(),
        None => route_channel(&args)?,
    };
    let prompt = read_prompt(args.prompt.as_deref())?;
    let (body, tags) = ask_body(&args, &prompt)?;
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| anyhow!("--timeout must be a positive number of seconds"))?;
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let client = Client::connect(ClientOptions::new(
        &args.broker,
        format!("llm-router-ask-{host}"),
    ))
    .await
    .with_context(|| format!("cannot reach the broker at {}", args.broker))?;
    let request = Request {
        request_type_data: RequestType::Query as i32,
        client_id: client.client_id().to_owned(),
        channel: channel.clone(),
        body,
        timeout: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
        tags,
        ..Request::default()
    };
    let response = client.send_request(request).await.map_err(|e| match e.kind() {
        ErrorKind::TimedOut => anyhow!(
            "no answer on channel '{channel}' within {}s: is a worker running? (llm-router worker --broker {})",
            args.timeout,
            args.broker
        ),
        _ => anyhow!("request on channel '{channel}' failed: {e}"),
    })?;
    print_answer(&args, &response)
}

fn route_channel(args: &AskArgs) -> anyhow::Result<String> {
    let config = router_config::load(Some(&args.config_dir))?;
    if let Some(route) = config.routes.iter().find(|r| r.name == args.route) {
        return Ok(route.channel.clone());
    }
    let known: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    bail!(
        "unknown route '{}'; configured routes: {} (or pass --channel)",
        args.route,
        known.join(", ")
    )
}

fn read_prompt(arg: Option<&str>) -> anyhow::Result<String> {
    match arg {
        Some(p) if p != "-" => Ok(p.to_owned()),
        _ => {
            let mut prompt = String::new();
            std::io::stdin()
                .read_to_string(&mut prompt)
                .context("cannot read the prompt from stdin")?;
            let prompt = prompt.trim_end_matches(['\n', '\r']);
            if prompt.trim().is_empty() {
                bail!("empty prompt: pass it as an argument or on stdin");
            }
            Ok(prompt.to_owned())
        }
    }
}

fn ask_body(
    args: &AskArgs,
    prompt: &str,
) -> anyhow::Result<(Vec<u8>, std::collections::HashMap<String, String>)> {
    let mut tags = std::collections::HashMap::new();
    if !args.json {
        return Ok((prompt.as_bytes().to_vec(), tags));
    }
    tags.insert(
        "content-type".to_owned(),
        worker::wire::JSON_CONTENT_TYPE.to_owned(),
    );
    let mut request = serde_json::json!({ "messages": [{ "role": "user", "content": prompt }] });
    if let Some(model) = &args.model {
        request["model"] = serde_json::Value::String(model.clone());
    }
    Ok((serde_json::to_vec(&request)?, tags))
}

fn print_answer(args: &AskArgs, response: &llm_router::kubemq::Response) -> anyhow::Result<()> {
    if !response.executed {
        let detail = if response.error.is_empty() {
            "the worker gave no reason"
        } else {
            &response.error
        };
        bail!("route '{}' failed: {detail}", args.route);
    }
    let body: serde_json::Value =
        serde_json::from_slice(&response.body).context("the answer is not JSON")?;
    if args.json {
        return print_stdout(&format!("{}\n", serde_json::to_string_pretty(&body)?));
    }
    match body.get("response").and_then(|r| r.as_str()) {
        Some(text) => print_stdout(&format!("{text}\n")),
        None => bail!("the answer has no \"response\" field: {body}"),
    }
}

// ---------------------------------------------------------------------------------------
// sim-provider
// ---------------------------------------------------------------------------------------

async fn run_sim(config: SimConfig) -> anyhow::Result<()> {
    let sim = llm_router::sim::start(config)
        .await
        .context("cannot start the simulated provider")?;
    tracing::info!(
        "simulated provider listening on {} (OpenAI: POST /v1/chat/completions, Anthropic: POST /v1/messages)",
        sim.base_url()
    );
    shutdown_signal().await;
    sim.shutdown.cancel();
    let _ = sim.task.await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
