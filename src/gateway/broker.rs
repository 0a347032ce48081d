//! The gateway's connection to the broker. It is made in the background, so the gateway
//! listens (and answers 503, and `/ready` says not ready) while the broker is not there yet.

use super::error::ApiError;
use crate::kubemq::client::{Client, ClientOptions, ErrorKind};
use crate::kubemq::{Request, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// Longest wait for a ping in `/ready`.
const READY_PING: Duration = Duration::from_secs(2);

/// A cloneable handle; the client appears once the first ping succeeds.
#[derive(Clone)]
pub struct BrokerLink {
    address: Arc<str>,
    /// Set once by the connect task; the client then reconnects by itself.
    client: Arc<OnceCell<Client>>,
}

impl BrokerLink {
    /// Starts connecting to `address` as `client_id`, retrying until it works or
    /// `shutdown` is cancelled.
    pub fn connect(address: &str, client_id: &str, shutdown: CancellationToken) -> Self {
        let link = Self {
            address: address.into(),
            client: Arc::new(OnceCell::new()),
        };
        let mut options = ClientOptions::new(address, client_id);
        options.connect_timeout = None;
        let cell = link.client.clone();
        // Ends on its own once connected, or at shutdown; nothing to wait for.
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                connected = Client::connect(options) => match connected {
                    Ok(client) => { let _ = cell.set(client); }
                    Err(e) => tracing::error!("gateway cannot use the broker: {e}"),
                },
            }
        });
        link
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The connected client, or 503 while the broker is not there yet.
    pub fn client(&self) -> Result<&Client, ApiError> {
        self.client.get().ok_or_else(|| {
            ApiError::BrokerUnavailable(format!("not connected to {} yet", self.address))
        })
    }

    /// Whether the broker answers a ping now.
    pub async fn is_ready(&self) -> bool {
        let Ok(client) = self.client() else {
            return false;
        };
        matches!(
            tokio::time::timeout(READY_PING, client.ping()).await,
            Ok(Ok(_))
        )
    }

    /// Sends a query and waits for its answer. `route` (with the query's channel and
    /// timeout) is named in the text when no worker answers in time.
    pub async fn query(&self, request: Request, route: &str) -> Result<Response, ApiError> {
        let client = self.client()?;
        let channel = request.channel.clone();
        let timeout = Duration::from_millis(u64::try_from(request.timeout).unwrap_or(0));
        let mut request = request;
        request.client_id = client.client_id().to_owned();
        client
            .send_request(request)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::TimedOut => ApiError::NoWorker {
                    route: route.to_owned(),
                    channel,
                    timeout,
                },
                ErrorKind::Connect | ErrorKind::Unavailable | ErrorKind::Closed => {
                    ApiError::BrokerUnavailable(format!("{} ({e})", self.address))
                }
                ErrorKind::Rejected => ApiError::BrokerRejected(e.to_string()),
            })
    }
}
