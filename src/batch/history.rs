//! Reading and writing job history on the jobs channel (see [`super::job`]).
//!
//! Reading is a replay from the first event. To know where "now" is, the reader first
//! stores a sync marker and reads until it sees it: everything stored before the marker
//! has then been read, without guessing at quiet periods.

use super::job::{JobEvent, Jobs, JOBS_CHANNEL};
use crate::kubemq::client::{Client, Error as ClientError, ErrorKind};
use crate::kubemq::subscribe::{EventsStoreType, SubscribeType};
use crate::kubemq::{Event, Subscribe};
use futures::StreamExt;
use std::time::Duration;

/// Longest wait for the replay to reach the marker.
const REPLAY_LIMIT: Duration = Duration::from_secs(30);

/// Stores `event` in the job's history.
pub async fn publish(client: &Client, event: &JobEvent) -> Result<(), ClientError> {
    let body = serde_json::to_vec(event)
        .map_err(|e| ClientError::new(ErrorKind::Rejected, format!("job event: {e}")))?;
    send(client, body).await
}

async fn send(client: &Client, body: Vec<u8>) -> Result<(), ClientError> {
    client
        .send_event(Event {
            event_id: uuid::Uuid::new_v4().simple().to_string(),
            client_id: client.client_id().to_owned(),
            channel: JOBS_CHANNEL.to_owned(),
            body,
            store: true,
            ..Event::default()
        })
        .await
}

/// Every job as the history tells it now.
pub async fn replay(client: &Client) -> Result<Jobs, ClientError> {
    let subscribe = Subscribe {
        subscribe_type_data: SubscribeType::EventsStore as i32,
        client_id: format!(
            "{}-replay-{}",
            client.client_id(),
            uuid::Uuid::new_v4().simple()
        ),
        channel: JOBS_CHANNEL.to_owned(),
        events_store_type_data: EventsStoreType::StartFromFirst as i32,
        ..Subscribe::default()
    };
    let mut events = client.subscribe_to_events(subscribe).await?;
    let marker = format!("sync-{}", uuid::Uuid::new_v4().simple());
    publish(client, &JobEvent::Sync { id: marker.clone() }).await?;
    let read = async {
        let mut jobs = Jobs::default();
        while let Some(event) = events.next().await {
            match serde_json::from_slice::<JobEvent>(&event.body) {
                Ok(JobEvent::Sync { id }) if id == marker => return Ok(jobs),
                Ok(job_event) => jobs.apply(job_event),
                Err(e) => tracing::debug!("ignoring an unreadable event on {JOBS_CHANNEL}: {e}"),
            }
        }
        Err(ClientError::new(
            ErrorKind::Unavailable,
            "the broker ended the jobs history before it was read",
        ))
    };
    tokio::time::timeout(REPLAY_LIMIT, read)
        .await
        .map_err(|_| {
            ClientError::new(
                ErrorKind::TimedOut,
                format!(
                    "reading the jobs history on {JOBS_CHANNEL} took over {}s",
                    REPLAY_LIMIT.as_secs()
                ),
            )
        })?
}
