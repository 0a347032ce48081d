//! The router processes as their heartbeats on the membership channel tell them: the
//! latest heartbeat of each, with when it arrived.

use crate::kubemq::client::EventSubscription;
use crate::protocol::members::{Heartbeat, MembershipOptions};
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A worker not heard for this long is dropped from the page.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The latest heartbeat per member id; written by [`follow`], read by the handler.
#[derive(Debug, Default)]
pub struct Workers {
    latest: Mutex<HashMap<String, (Instant, Heartbeat)>>,
}

/// One member as the page shows it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub beat: Heartbeat,
    pub ago: Duration,
    pub live: bool,
}

impl Workers {
    pub fn heard(&self, beat: Heartbeat, at: Instant) {
        let mut latest = self.latest.lock();
        latest.retain(|_, (t, _)| at.saturating_duration_since(*t) < FORGET_AFTER);
        latest.insert(beat.id.clone(), (at, beat));
    }

    /// Every member heard lately, by id; live ones were heard within the membership expiry.
    pub fn seen(&self, now: Instant) -> Vec<Seen> {
        let expiry = MembershipOptions::default().expiry;
        let latest = self.latest.lock();
        let mut seen: Vec<Seen> = latest
            .values()
            .map(|(at, beat)| {
                let ago = now.saturating_duration_since(*at);
                Seen {
                    beat: beat.clone(),
                    ago,
                    live: ago < expiry,
                }
            })
            .filter(|s| s.ago < FORGET_AFTER)
            .collect();
        seen.sort_by(|a, b| a.beat.id.cmp(&b.beat.id));
        seen
    }
}

/// Records every heartbeat until the subscription ends.
pub async fn follow(workers: Arc<Workers>, mut heartbeats: EventSubscription) {
    while let Some(event) = heartbeats.next().await {
        match serde_json::from_slice::<Heartbeat>(&event.body) {
            Ok(beat) => workers.heard(beat, Instant::now()),
            Err(e) => {
                tracing::debug!("status page: ignoring a message that is not a heartbeat: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str) -> Heartbeat {
        Heartbeat {
            id: id.into(),
            ts: 0,
            endpoints: Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn members_go_stale_then_disappear() {
        let workers = Workers::default();
        workers.heard(beat("b"), Instant::now());
        workers.heard(beat("a"), Instant::now());
        tokio::time::advance(Duration::from_secs(2)).await;
        workers.heard(beat("b"), Instant::now());
        tokio::time::advance(Duration::from_secs(2)).await;
        let seen = workers.seen(Instant::now());
        let ids: Vec<(&str, bool)> = seen.iter().map(|s| (s.beat.id.as_str(), s.live)).collect();
        assert_eq!(ids, [("a", false), ("b", true)]);
        tokio::time::advance(FORGET_AFTER).await;
        assert!(workers.seen(Instant::now()).is_empty());
    }
}
