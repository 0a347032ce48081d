//! Binds the gRPC and REST listeners and runs them until shutdown.

use super::config::BrokerConfig;
use super::grpc::Service;
use super::store::StoreError;
use super::{rest, Broker};
use crate::edge::{self, conn, ConnCap, HttpLimits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr} for {what}: {cause}; pick another port with --{what}-port or stop what uses it")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        /// Not `source`: the message already says it, and a chained source would repeat it.
        cause: std::io::Error,
    },
}

/// A started broker: where it listens, and how to stop it.
pub struct RunningBroker {
    pub grpc_addr: SocketAddr,
    pub rest_addr: SocketAddr,
    pub broker: Arc<Broker>,
    /// Both servers; finishes when they have drained after shutdown.
    task: JoinHandle<()>,
}

impl RunningBroker {
    /// Stops accepting calls, ends subscriptions and long polls, waits for the servers to
    /// drain and the store to commit everything it was given.
    pub async fn shutdown(self) {
        self.broker.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the servers stop (after [`Broker::shutdown`] is cancelled elsewhere).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!("broker server task failed: {e}");
        }
        let store = self.broker.store.clone();
        if tokio::task::spawn_blocking(move || store.close())
            .await
            .is_err()
        {
            tracing::error!("closing the store failed");
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|cause| StartError::Bind { what, addr, cause })
}

/// Opens the store, binds both listeners and serves until `broker.shutdown` is cancelled.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, StartError> {
    let grpc = bind("grpc", SocketAddr::new(config.bind, config.grpc_port)).await?;
    let http = bind("rest", SocketAddr::new(config.bind, config.rest_port)).await?;
    let grpc_addr = local_addr(&grpc, "grpc")?;
    let rest_addr = local_addr(&http, "rest")?;
    let broker = Broker::open(config)?;
    let service = Service::new(broker.clone());
    let limits = &broker.config.limits;
    let incoming = conn::incoming(
        grpc,
        ConnCap::new("grpc", limits.max_grpc_connections),
        HttpLimits::DEFAULT_HEADER_TIMEOUT,
    );
    // Wide HTTP/2 windows: a busy subscriber stream never stalls on WINDOW_UPDATE round
    // trips. Keepalive pings find peers that vanished without a FIN, so their connection
    // slots come back.
    let grpc_server = tonic::transport::Server::builder()
        .initial_connection_window_size(8 * 1024 * 1024)
        .initial_stream_window_size(2 * 1024 * 1024)
        .max_concurrent_streams(Some(limits.max_grpc_streams_per_connection))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(service.clone().into_server())
        .serve_with_incoming_shutdown(incoming, broker.shutdown.clone().cancelled_owned());
    let rest_server = edge::serve(
        http,
        rest::router(service),
        "rest",
        HttpLimits::new(limits.max_rest_connections),
        broker.shutdown.clone().cancelled_owned(),
    );
    let task = tokio::spawn(async move {
        let (g, ()) = tokio::join!(grpc_server, rest_server);
        if let Err(e) = g {
            tracing::error!("gRPC server stopped with an error: {e}");
        }
    });
    Ok(RunningBroker {
        grpc_addr,
        rest_addr,
        broker,
        task,
    })
}

fn local_addr(listener: &TcpListener, what: &'static str) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|cause| StartError::Bind {
        what,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        cause,
    })
}
