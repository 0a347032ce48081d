//! Events, events store, commands and queries: everything that is published to
//! subscribers rather than stored for consumers.

pub mod channels;

use super::config::BrokerConfig;
use super::store::{Store, StoreError};
use crate::kubemq::{Event, EventReceive, Request, Response, Result as EventResult, Subscribe};
use futures::stream::BoxStream;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// Pub/sub state.
pub struct PubSub {}

impl PubSub {
    /// Rebuilds events-store channels and durable cursors from the store.
    pub fn open(
        _config: &BrokerConfig,
        _store: Store,
        _shutdown: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        Ok(Arc::new(Self {}))
    }

    pub async fn send_event(&self, _event: Event) -> Result<EventResult, Status> {
        Err(Status::unimplemented("SendEvent"))
    }

    pub fn send_events_stream(
        self: &Arc<Self>,
        _events: BoxStream<'static, Result<Event, Status>>,
    ) -> BoxStream<'static, Result<EventResult, Status>> {
        Box::pin(futures::stream::once(async {
            Err(Status::unimplemented("SendEventsStream"))
        }))
    }

    pub fn subscribe_to_events(
        self: &Arc<Self>,
        _sub: Subscribe,
    ) -> Result<BoxStream<'static, Result<EventReceive, Status>>, Status> {
        Err(Status::unimplemented("SubscribeToEvents"))
    }

    pub fn subscribe_to_requests(
        self: &Arc<Self>,
        _sub: Subscribe,
    ) -> Result<BoxStream<'static, Result<Request, Status>>, Status> {
        Err(Status::unimplemented("SubscribeToRequests"))
    }

    pub async fn send_request(&self, _request: Request) -> Result<Response, Status> {
        Err(Status::unimplemented("SendRequest"))
    }

    pub fn send_response(&self, _response: Response) -> Result<(), Status> {
        Err(Status::unimplemented("SendResponse"))
    }
}
