//! Membership: every router process announces itself on [`MEMBERS_CHANNEL`] once a
//! heartbeat and counts the members it heard lately (itself included), so that each takes
//! its `1/count` share of the endpoints' limits (`Router::set_replicas`) and the replicas
//! together stay within them.
//!
//! Plain events, no group: every member hears every heartbeat. A member that cannot hear
//! its own heartbeat (the broker is away) keeps its last count rather than believing it
//! is alone, which would let every replica take the whole budget at once.

use crate::kubemq::client::{Client, Error as ClientError};
use crate::kubemq::subscribe::SubscribeType;
use crate::kubemq::{Event, EventReceive, Subscribe};
use crate::routing::Router;
use futures::StreamExt;
use parking_lot::Mutex;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use crate::protocol::members::{Heartbeat, MembershipOptions, MEMBERS_CHANNEL};

/// This process's membership; announcing and listening run until the last clone drops.
#[derive(Clone)]
pub struct Membership {
    inner: Arc<Inner>,
}

struct Inner {
    view: Arc<View>,
    settled: watch::Receiver<bool>,
    /// The announce and listen tasks; dropped (aborted) with the last handle.
    _tasks: JoinSet<()>,
}

/// What the listen task knows, shared with the handles.
struct View {
    id: String,
    /// Live members now (itself included); written by the listen task only.
    count: AtomicU32,
}

impl Membership {
    /// Starts announcing and listening with the default intervals.
    pub async fn start(
        client: Client,
        router: Arc<Router>,
        id: String,
    ) -> Result<Self, ClientError> {
        Self::start_with(client, router, id, MembershipOptions::default()).await
    }

    /// Starts announcing and listening.
    pub async fn start_with(
        client: Client,
        router: Arc<Router>,
        id: String,
        options: MembershipOptions,
    ) -> Result<Self, ClientError> {
        let heartbeats = client.subscribe_to_events(subscribe(&client)).await?;
        router.drain_budgets();
        let view = Arc::new(View {
            id: id.clone(),
            count: AtomicU32::new(router.replicas()),
        });
        let (settle, settled) = watch::channel(false);
        let listener = Listener {
            view: Arc::clone(&view),
            router,
            options,
            seen: HashMap::new(),
            first_self: None,
            settle,
        };
        let mut tasks = JoinSet::new();
        tasks.spawn(announce(
            client,
            id,
            Arc::clone(&listener.router),
            options.heartbeat,
        ));
        tasks.spawn(listener.run(heartbeats));
        Ok(Self {
            inner: Arc::new(Inner {
                view,
                settled,
                _tasks: tasks,
            }),
        })
    }

    /// The membership of `router` in this process: one per router, however many workers
    /// share it (an `up` with several in-process workers is one member). Starts it on
    /// first use; it lives while any worker holds it.
    pub async fn join(
        client: Client,
        router: Arc<Router>,
        id: String,
    ) -> Result<Self, ClientError> {
        static LIVE: Mutex<Vec<(Weak<Router>, Weak<Inner>)>> = Mutex::new(Vec::new());
        // Workers of one `up` start together: one of them starts, the others find it.
        static JOINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = JOINING.lock().await;
        let found = {
            let mut live = LIVE.lock();
            live.retain(|(r, m)| r.strong_count() > 0 && m.strong_count() > 0);
            live.iter()
                .find(|(r, _)| std::ptr::eq(r.as_ptr(), Arc::as_ptr(&router)))
                .and_then(|(_, m)| m.upgrade())
        };
        if let Some(inner) = found {
            return Ok(Self { inner });
        }
        let started = Self::start(client, Arc::clone(&router), id).await?;
        LIVE.lock()
            .push((Arc::downgrade(&router), Arc::downgrade(&started.inner)));
        Ok(started)
    }

    /// Live members now (including self).
    pub fn count(&self) -> u32 {
        self.inner.view.count.load(Ordering::Acquire)
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.inner.view.id
    }

    /// Resolves once one full heartbeat round has been heard, so the count (and the
    /// router's share) can be trusted; returns at once if listening has stopped.
    pub async fn settled(&self) {
        let mut settled = self.inner.settled.clone();
        let _ = settled.wait_for(|s| *s).await;
    }
}

fn subscribe(client: &Client) -> Subscribe {
    Subscribe {
        subscribe_type_data: SubscribeType::Events as i32,
        client_id: client.client_id().to_owned(),
        channel: MEMBERS_CHANNEL.to_owned(),
        ..Subscribe::default()
    }
}

/// Sends a heartbeat every `every`; a failure is only logged, the next one retries.
async fn announce(client: Client, id: String, router: Arc<Router>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let beat = Heartbeat {
            id: id.clone(),
            ts,
            endpoints: router.endpoint_status(),
        };
        let body = match serde_json::to_vec(&beat) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!("cannot encode a heartbeat: {e}");
                return;
            }
        };
        let event = Event {
            client_id: client.client_id().to_owned(),
            channel: MEMBERS_CHANNEL.to_owned(),
            body,
            ..Event::default()
        };
        if let Err(e) = client.send_event(event).await {
            tracing::debug!("heartbeat not sent: {e}");
        }
    }
}

/// Counts the members heard within the expiry and tells the router when that changes.
struct Listener {
    view: Arc<View>,
    router: Arc<Router>,
    options: MembershipOptions,
    /// When each member was last heard, by id.
    seen: HashMap<String, Instant>,
    /// When our own first heartbeat came back: the start of the first full round.
    first_self: Option<Instant>,
    settle: watch::Sender<bool>,
}

/// Most router processes counted at once.
const MAX_MEMBERS: usize = 4096;
/// Longest member id counted; ours are a host name and a short random suffix.
const MAX_MEMBER_ID_BYTES: usize = 256;

impl Listener {
    async fn run(mut self, mut heartbeats: crate::kubemq::client::EventSubscription) {
        let mut sweep = tokio::time::interval(self.options.heartbeat / 4);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                heard = heartbeats.next() => match heard {
                    Some(event) => self.heard(&event),
                    None => return,
                },
                _ = sweep.tick() => self.sweep(),
            }
        }
    }

    fn heard(&mut self, event: &EventReceive) {
        let Ok(beat) = serde_json::from_slice::<Heartbeat>(&event.body) else {
            tracing::debug!("ignoring a message on {MEMBERS_CHANNEL} that is not a heartbeat");
            return;
        };
        let now = Instant::now();
        if beat.id == self.view.id && self.first_self.is_none() {
            self.first_self = Some(now);
        }
        // The channel is open to any client: forged beats must not grow the table
        // without end, nor shrink every member's share to nothing.
        let known = self.seen.contains_key(&beat.id);
        if !known && (self.seen.len() >= MAX_MEMBERS || beat.id.len() > MAX_MEMBER_ID_BYTES) {
            tracing::warn!(
                "ignoring a heartbeat on {MEMBERS_CHANNEL}: {} members are known already (the most counted is {MAX_MEMBERS}) or its id is over {MAX_MEMBER_ID_BYTES} bytes",
                self.seen.len()
            );
            return;
        }
        self.seen.insert(beat.id, now);
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        let expiry = self.options.expiry;
        let hears_itself = self
            .seen
            .get(&self.view.id)
            .is_some_and(|t| now.duration_since(*t) < expiry);
        if !hears_itself {
            return;
        }
        self.seen.retain(|_, t| now.duration_since(*t) < expiry);
        let count = u32::try_from(self.seen.len()).unwrap_or(u32::MAX).max(1);
        if self.view.count.swap(count, Ordering::AcqRel) != count {
            tracing::info!(members = count, "router processes sharing the limits");
        }
        self.router.set_replicas(count);
        crate::routing::metrics::replicas(count);
        let round_heard = self
            .first_self
            .is_some_and(|t| now >= t + self.options.heartbeat + self.options.heartbeat / 4);
        if round_heard && !*self.settle.borrow() {
            let _ = self.settle.send(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::EndpointStatus;
    use serde::Deserialize;

    #[test]
    fn heartbeats_of_old_and_new_members_read_each_other() {
        let old: Heartbeat = serde_json::from_str(r#"{"id":"a","ts":1}"#).unwrap();
        assert!(old.endpoints.is_empty());
        assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"id":"a","ts":1}"#);
        #[derive(Deserialize)]
        struct OldHeartbeat {
            id: String,
        }
        let new = Heartbeat {
            endpoints: vec![EndpointStatus {
                name: "openai".into(),
                circuit: "closed".into(),
                in_flight: 3,
                p50_ms: Some(120),
                p95_ms: Some(480),
                rpm: Some(250),
                left: Some(190),
            }],
            ..old
        };
        let body = serde_json::to_string(&new).unwrap();
        assert!(body.len() < 200, "{} bytes: {body}", body.len());
        let read: OldHeartbeat = serde_json::from_str(&body).unwrap();
        assert_eq!(read.id, "a");
    }
}
