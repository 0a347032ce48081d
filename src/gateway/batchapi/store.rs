//! Reading and writing events-store channels: the only place the Batch API keeps state.
//!
//! The batches, jobs and files histories are read through long-lived views
//! ([`super::follow`]); a replay, from the first event up to a sync marker this reader stored
//! just before, is only for a batch's result log when its output file is read.

use crate::kubemq::client::{Client, Error as ClientError, ErrorKind};
use crate::kubemq::subscribe::{EventsStoreType, SubscribeType};
use crate::kubemq::{Event, EventReceive, Subscribe};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// The tag marking a reader's sync marker; readers skip such events.
pub const SYNC_TAG: &str = "llm-router-sync";

/// Longest wait for one replay attempt to reach its marker, and the attempts made.
const REPLAY_LIMIT: Duration = Duration::from_secs(15);
const REPLAY_ATTEMPTS: u32 = 3;
/// Most events room is made for up front in [`first_n`].
const PREALLOC_EVENTS: usize = 256;
/// Longest wait for a file's content chunks (up to 200 of 1 MiB).
const CONTENT_LIMIT: Duration = Duration::from_secs(120);

/// Stores one event on `channel`.
pub async fn publish(
    client: &Client,
    channel: &str,
    body: Vec<u8>,
    tags: HashMap<String, String>,
) -> Result<(), ClientError> {
    client
        .send_event(Event {
            event_id: uuid::Uuid::new_v4().simple().to_string(),
            client_id: client.client_id().to_owned(),
            channel: channel.to_owned(),
            body,
            tags,
            store: true,
            ..Event::default()
        })
        .await
}

/// A subscription to `channel` from its first event.
pub async fn from_first(
    client: &Client,
    channel: &str,
) -> Result<crate::kubemq::client::EventSubscription, ClientError> {
    let subscribe = Subscribe {
        subscribe_type_data: SubscribeType::EventsStore as i32,
        // Unique per reader: the broker allows one events-store subscriber per ClientID.
        client_id: format!(
            "{}-read-{}",
            client.client_id(),
            uuid::Uuid::new_v4().simple()
        ),
        channel: channel.to_owned(),
        events_store_type_data: EventsStoreType::StartFromFirst as i32,
        ..Subscribe::default()
    };
    client.subscribe_to_events(subscribe).await
}

/// Stores a sync marker on `channel`; returns its id.
pub async fn mark(client: &Client, channel: &str) -> Result<String, ClientError> {
    let marker = uuid::Uuid::new_v4().simple().to_string();
    mark_as(client, channel, &marker).await?;
    Ok(marker)
}

/// Stores the sync marker `marker` on `channel`.
pub async fn mark_as(client: &Client, channel: &str, marker: &str) -> Result<(), ClientError> {
    let tags = HashMap::from([(SYNC_TAG.to_owned(), marker.to_owned())]);
    // Not empty: the broker refuses an event with neither body nor metadata.
    publish(client, channel, b"sync".to_vec(), tags).await
}

/// Whether `event` is a sync marker (of any reader); readers skip them.
pub fn is_marker(event: &EventReceive) -> bool {
    event.tags.contains_key(SYNC_TAG)
}

/// Every event stored on `channel` so far, markers left out. A replay that does not
/// reach its marker in time is started over (a fresh subscription) a few times: a stream
/// that broke and resumed may have skipped events, the marker among them.
pub async fn replay(client: &Client, channel: &str) -> Result<Vec<EventReceive>, ClientError> {
    let mut attempt = 1;
    loop {
        match replay_once(client, channel).await {
            Err(e) if e.kind() == ErrorKind::TimedOut && attempt < REPLAY_ATTEMPTS => {
                tracing::warn!(%channel, attempt, "replay did not reach its marker, starting over: {e}");
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn replay_once(client: &Client, channel: &str) -> Result<Vec<EventReceive>, ClientError> {
    let mut events = from_first(client, channel).await?;
    let marker = mark(client, channel).await?;
    let mut out = Vec::new();
    let read = async {
        while let Some(event) = events.next().await {
            match event.tags.get(SYNC_TAG) {
                Some(id) if *id == marker => return Ok(()),
                Some(_) => {}
                None => out.push(event),
            }
        }
        Err(ClientError::new(
            ErrorKind::Unavailable,
            format!("the broker ended {channel} before it was read"),
        ))
    };
    let read = within(channel, REPLAY_LIMIT, read).await;
    read.map_err(|e| ClientError::new(e.kind(), format!("{e} ({} events read)", out.len())))?;
    Ok(out)
}

/// The first `n` events of `channel` (markers left out): for channels whose length is known.
pub async fn first_n(
    client: &Client,
    channel: &str,
    n: usize,
) -> Result<Vec<EventReceive>, ClientError> {
    let mut events = from_first(client, channel).await?;
    let read = async {
        // n may come from a record on the broker: never sized from it beyond a little.
        let mut out = Vec::with_capacity(n.min(PREALLOC_EVENTS));
        while out.len() < n {
            match events.next().await {
                Some(event) if is_marker(&event) => {}
                Some(event) => out.push(event),
                None => {
                    return Err(ClientError::new(
                        ErrorKind::Unavailable,
                        format!("the broker ended {channel} before it was read"),
                    ))
                }
            }
        }
        Ok(out)
    };
    within(channel, CONTENT_LIMIT, read).await
}

async fn within<T>(
    channel: &str,
    limit: Duration,
    read: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit, read).await.map_err(|_| {
        ClientError::new(
            ErrorKind::TimedOut,
            format!("reading {channel} took over {}s", limit.as_secs()),
        )
    })?
}
