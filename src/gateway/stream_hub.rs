//! One events subscription per gateway for every stream it relays.
//!
//! Why not a subscription per stream: a real KubeMQ (grpc-go) sends a subscription's
//! response headers only with its first event, so a client cannot see when a new
//! subscription is in place and had to wait a fixed grace (300 ms) before sending each
//! stream's query; and every stream left a channel behind in the broker. Instead the
//! gateway subscribes once to `llm-router.stream.<hub>.>`, confirms the subscription by
//! publishing a probe to itself and seeing it arrive, and names each stream's channel
//! `llm-router.stream.<hub>.<query id>`. A stream then only registers its inbox here.

use super::error::ApiError;
use crate::kubemq::client::{Client, Event as Lifecycle};
use crate::kubemq::subscribe::SubscribeType;
use crate::kubemq::{Event, EventReceive, Subscribe};
use crate::protocol::stream::CHANNEL_PREFIX;
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// Events buffered per stream before the stream counts as fallen behind and is ended.
const INBOX: usize = 1024;
/// Pause between probes while the subscription is not confirmed.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Longest wait for a confirmed subscription before a stream gives up.
const READY_LIMIT: Duration = Duration::from_secs(5);
/// The probe's channel, under the hub's prefix.
const PROBE: &str = "probe";

/// Cloneable; the subscription starts with the first stream.
#[derive(Clone)]
pub struct StreamHub {
    inner: Arc<Inner>,
}

struct Inner {
    /// `llm-router.stream.<hub id>.`
    prefix: String,
    inboxes: Mutex<HashMap<String, mpsc::Sender<EventReceive>>>,
    ready: watch::Sender<bool>,
    started: std::sync::Once,
}

impl Default for StreamHub {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamHub {
    pub fn new() -> Self {
        let (ready, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                prefix: format!("{CHANNEL_PREFIX}{}.", uuid::Uuid::new_v4().simple()),
                inboxes: Mutex::default(),
                ready,
                started: std::sync::Once::new(),
            }),
        }
    }

    /// An inbox for the stream answering query `request_id`, once the hub's subscription
    /// is confirmed; the channel to name in the query's stream tag is [`Inbox::channel`].
    pub async fn open(&self, client: &Client, request_id: &str) -> Result<Inbox, ApiError> {
        self.start(client);
        let mut ready = self.inner.ready.subscribe();
        let confirmed = tokio::time::timeout(READY_LIMIT, ready.wait_for(|r| *r)).await;
        if !matches!(confirmed, Ok(Ok(_))) {
            return Err(ApiError::BrokerUnavailable(format!(
                "the broker did not confirm the gateway's stream subscription within {}s",
                READY_LIMIT.as_secs()
            )));
        }
        let channel = format!("{}{request_id}", self.inner.prefix);
        let (tx, rx) = mpsc::channel(INBOX);
        self.inner.inboxes.lock().insert(channel.clone(), tx);
        Ok(Inbox {
            channel,
            events: rx,
            hub: self.inner.clone(),
        })
    }

    fn start(&self, client: &Client) {
        self.inner.started.call_once(|| {
            // Lives as long as the client: its subscription ends when the client closes.
            tokio::spawn(run(self.inner.clone(), client.clone()));
        });
    }

    /// Streams registered now (for tests: nothing stays behind).
    pub fn open_streams(&self) -> usize {
        self.inner.inboxes.lock().len()
    }
}

/// One stream's events, in the order the broker delivered them.
pub struct Inbox {
    channel: String,
    events: mpsc::Receiver<EventReceive>,
    hub: Arc<Inner>,
}

impl Inbox {
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next event; `None` when the stream fell behind or the hub's link broke.
    pub async fn next(&mut self) -> Option<EventReceive> {
        self.events.recv().await
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.hub.inboxes.lock().remove(&self.channel);
    }
}

async fn run(inner: Arc<Inner>, client: Client) {
    let wildcard = format!("{}>", inner.prefix);
    let probe_channel = format!("{}{PROBE}", inner.prefix);
    let mut lifecycle = client.events();
    let subscribe = Subscribe {
        subscribe_type_data: SubscribeType::Events as i32,
        client_id: client.client_id().to_owned(),
        channel: wildcard.clone(),
        ..Subscribe::default()
    };
    let mut events = match client.subscribe_to_events(subscribe).await {
        Ok(events) => events,
        Err(e) => {
            tracing::error!("the gateway cannot subscribe to its stream channels: {e}");
            return;
        }
    };
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let unconfirmed = !*inner.ready.borrow();
        tokio::select! {
            event = events.next() => match event {
                Some(event) if event.channel == probe_channel => {
                    inner.ready.send_replace(true);
                }
                Some(event) => dispatch(&inner, event),
                None => break,
            },
            change = lifecycle.recv() => match change {
                Ok(Lifecycle::SubscriptionLost { channel, .. }) if channel == wildcard => {
                    // Events may have been missed: streams in flight see the gap by
                    // their sequence numbers; new ones wait for a fresh probe.
                    inner.ready.send_replace(false);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    inner.ready.send_replace(false);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = probe.tick(), if unconfirmed => {
                let event = Event {
                    client_id: client.client_id().to_owned(),
                    channel: probe_channel.clone(),
                    body: b"probe".to_vec(),
                    ..Event::default()
                };
                if let Err(e) = client.send_event(event).await {
                    tracing::debug!("stream subscription probe not sent: {e}");
                }
            }
        }
    }
    inner.ready.send_replace(false);
}

/// Hands `event` to its stream; a stream whose inbox is full is ended (it sees its
/// inbox close), so one slow client never holds up the others.
fn dispatch(inner: &Inner, event: EventReceive) {
    let mut inboxes = inner.inboxes.lock();
    let Some(inbox) = inboxes.get(&event.channel) else {
        // A stream that already ended, or a cancel this gateway published.
        return;
    };
    if let Err(mpsc::error::TrySendError::Full(event)) = inbox.try_send(event) {
        tracing::warn!(channel = %event.channel, "a stream fell {INBOX} events behind and is ended");
        inboxes.remove(&event.channel);
    }
}
