//! `llm-router` command line. Each subcommand is one role of the system.

use clap::{Parser, Subcommand};
use llm_router::broker::config::{BrokerConfig, FsyncPolicy};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "llm-router",
    version,
    about = "LLM router over the KubeMQ message broker"
)]
struct Cli {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded KubeMQ-compatible broker (gRPC, REST, health and metrics).
    Broker(BrokerArgs),
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
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        config
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match cli.command {
        Command::Broker(args) => run_broker(args.into_config()).await,
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
