//! A long-lived view of one events-store channel: one subscription from the channel's
//! first event, kept for the gateway's life, folding every event into a state.
//!
//! Why: reading a history by replaying it (a fresh subscription and a marker per read)
//! made every read cost the whole channel, and the background scan opened a new
//! subscription under a new ClientID every 10 s even with nothing going on; on a real
//! KubeMQ each of those leaves a durable subscription behind. With a view, reads and the
//! scan read memory: a GET costs the same however often anyone read before, and stores
//! nothing. Only a read that misses (an id another replica may have just written) stores
//! one marker and waits for it to come back on the same subscription. A write through
//! [`View::store`] returns once the view holds it, so this replica reads its own writes.
//!
//! The subscription lives as long as the client: after a broker restart the client
//! resubscribes at the sequence after the last event delivered, so nothing is folded twice.

use super::store;
use crate::kubemq::client::{Client, Error as ClientError, ErrorKind};
use crate::kubemq::EventReceive;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Longest wait for a marker (or a stored event) to come back.
const SYNC_LIMIT: Duration = Duration::from_secs(15);
/// The tag naming an event stored through [`View::store`], so its writer sees it arrive.
const ECHO_TAG: &str = "llm-router-echo";

/// A state built from a channel's events, in order.
pub trait Fold: Default + Send + Sync + 'static {
    fn fold(&mut self, event: &EventReceive);
}

/// Cloneable handle to one followed channel.
pub struct View<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for View<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    channel: String,
    state: RwLock<S>,
    /// Markers and echo tags this process stored and waits for; the follow task takes a
    /// waiter out and wakes it once the event is folded, or drops them all when it ends.
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl<S: Fold> View<S> {
    /// Subscribes to `channel` from its first event and folds events as they come; the
    /// subscription resumes by itself after a broker restart, without gaps or repeats.
    pub async fn start(client: &Client, channel: &str) -> Result<Self, ClientError> {
        let events = store::from_first(client, channel).await?;
        let view = Self {
            inner: Arc::new(Inner {
                channel: channel.to_owned(),
                state: RwLock::new(S::default()),
                waiting: Mutex::default(),
            }),
        };
        // Ends with the client (its subscriptions end with it).
        tokio::spawn(follow(view.inner.clone(), events));
        Ok(view)
    }

    /// `read` on the state as far as it has arrived, with no broker call.
    pub fn now<T>(&self, read: impl FnOnce(&S) -> T) -> T {
        read(&self.inner.state.read())
    }

    /// `read` on the state once everything stored before this call has arrived (by any
    /// replica): one marker stored, and awaited on the view's own subscription.
    pub async fn synced<T>(
        &self,
        client: &Client,
        read: impl FnOnce(&S) -> T,
    ) -> Result<T, ClientError> {
        let marker = uuid::Uuid::new_v4().simple().to_string();
        self.await_stored(
            &marker,
            store::mark_as(client, &self.inner.channel, &marker),
        )
        .await?;
        Ok(self.now(read))
    }

    /// Stores `body` on the channel and returns once the view has folded it.
    pub async fn store(&self, client: &Client, body: Vec<u8>) -> Result<(), ClientError> {
        let echo = uuid::Uuid::new_v4().simple().to_string();
        let tags = HashMap::from([(ECHO_TAG.to_owned(), echo.clone())]);
        let stored = store::publish(client, &self.inner.channel, body, tags);
        self.await_stored(&echo, stored).await
    }

    /// Runs `stored` (a publish tagged `key`) and waits until the tagged event arrived.
    async fn await_stored(
        &self,
        key: &str,
        stored: impl std::future::Future<Output = Result<(), ClientError>>,
    ) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.inner.waiting.lock().insert(key.to_owned(), tx);
        if let Err(e) = stored.await {
            self.inner.waiting.lock().remove(key);
            return Err(e);
        }
        let arrived = tokio::time::timeout(SYNC_LIMIT, rx).await;
        self.inner.waiting.lock().remove(key);
        match arrived {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ClientError::new(
                ErrorKind::Unavailable,
                format!("the subscription to {} ended", self.inner.channel),
            )),
            Err(_) => Err(ClientError::new(
                ErrorKind::TimedOut,
                format!(
                    "reading {} took over {}s",
                    self.inner.channel,
                    SYNC_LIMIT.as_secs()
                ),
            )),
        }
    }
}

async fn follow<S: Fold>(
    inner: Arc<Inner<S>>,
    mut events: crate::kubemq::client::EventSubscription,
) {
    while let Some(event) = events.next().await {
        match event.tags.get(store::SYNC_TAG) {
            Some(marker) => {
                if let Some(waiter) = inner.waiting.lock().remove(marker) {
                    let _ = waiter.send(());
                }
            }
            None => {
                inner.state.write().fold(&event);
                let echo = event.tags.get(ECHO_TAG);
                let waiter = echo.and_then(|key| inner.waiting.lock().remove(key));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(());
                }
            }
        }
    }
    tracing::debug!(channel = %inner.channel, "view subscription ended");
    // Waiters see their sender dropped: the view cannot answer any more.
    inner.waiting.lock().clear();
}
