//! Binds the gRPC and REST listeners and runs them until shutdown.

use super::config::BrokerConfig;
use super::grpc::Service;
use super::store::StoreError;
use super::{rest, Broker};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr} for {what}: {source}; pick another port with --{what}-port or stop what uses it")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
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
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Opens the store, binds both listeners and serves until `broker.shutdown` is cancelled.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, StartError> {
    let grpc = bind("grpc", SocketAddr::new(config.bind, config.grpc_port)).await?;
    let http = bind("rest", SocketAddr::new(config.bind, config.rest_port)).await?;
    let grpc_addr = local_addr(&grpc, "grpc")?;
    let rest_addr = local_addr(&http, "rest")?;
    let broker = Broker::open(config)?;
    let service = Service::new(broker.clone());
    // Without TCP_NODELAY every small reply waits for the peer's delayed ACK (~40 ms).
    // The builder's own nodelay option only applies to listeners tonic binds itself.
    let incoming = TcpIncoming::from_listener(grpc, true, None).map_err(|e| StartError::Bind {
        what: "grpc",
        addr: grpc_addr,
        source: std::io::Error::other(e),
    })?;
    // Wide HTTP/2 windows: a busy subscriber stream never stalls on WINDOW_UPDATE round trips.
    let grpc_server = tonic::transport::Server::builder()
        .initial_connection_window_size(8 * 1024 * 1024)
        .initial_stream_window_size(2 * 1024 * 1024)
        .add_service(service.clone().into_server())
        .serve_with_incoming_shutdown(incoming, broker.shutdown.clone().cancelled_owned());
    let rest_server = axum::serve(http, rest::router(service))
        .tcp_nodelay(true)
        .with_graceful_shutdown(broker.shutdown.clone().cancelled_owned());
    let task = tokio::spawn(async move {
        let (g, r) = tokio::join!(grpc_server, rest_server);
        if let Err(e) = g {
            tracing::error!("gRPC server stopped with an error: {e}");
        }
        if let Err(e) = r {
            tracing::error!("REST server stopped with an error: {e}");
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
    listener.local_addr().map_err(|source| StartError::Bind {
        what,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}
