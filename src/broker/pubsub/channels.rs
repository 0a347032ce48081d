//! Channel management through the `kubemq.cluster.internal.requests` query that every
//! current SDK sends (create, delete, list), answered in-process (KUBEMQ.md §4.1).

use crate::broker::Broker;
use crate::kubemq::{Request, Response};
use tonic::Status;

/// The query channel the SDKs use for channel management.
pub const INTERNAL_CHANNEL: &str = "kubemq.cluster.internal.requests";

/// Answers one channel-management query.
pub async fn handle(_broker: &Broker, _request: Request) -> Result<Response, Status> {
    Err(Status::unimplemented("channel management"))
}
