//! Queues: durable messages taken by competing consumers, with every receive style
//! KubeMQ offers (receive/peek, ack-all, the single-message stream, downstream
//! transactions, upstream sends).

use super::config::BrokerConfig;
use super::store::{Store, StoreError};
use crate::kubemq::{
    AckAllQueueMessagesRequest, AckAllQueueMessagesResponse, QueueMessage,
    QueueMessagesBatchRequest, QueueMessagesBatchResponse, QueuesDownstreamRequest,
    QueuesDownstreamResponse, QueuesInfoRequest, QueuesInfoResponse, QueuesUpstreamRequest,
    QueuesUpstreamResponse, ReceiveQueueMessagesRequest, ReceiveQueueMessagesResponse,
    SendQueueMessageResult, StreamQueueMessagesRequest, StreamQueueMessagesResponse,
};
use futures::stream::BoxStream;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// All queues.
pub struct Queues {}

type Out<T> = BoxStream<'static, Result<T, Status>>;

impl Queues {
    /// Rebuilds every queue from the store.
    pub fn open(
        _config: &BrokerConfig,
        _store: Store,
        _shutdown: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        Ok(Arc::new(Self {}))
    }

    pub async fn send(&self, _msg: QueueMessage) -> SendQueueMessageResult {
        SendQueueMessageResult::default()
    }

    pub async fn send_batch(
        &self,
        _req: QueueMessagesBatchRequest,
    ) -> Result<QueueMessagesBatchResponse, Status> {
        Err(Status::unimplemented("SendQueueMessagesBatch"))
    }

    pub async fn receive(&self, _req: ReceiveQueueMessagesRequest) -> ReceiveQueueMessagesResponse {
        ReceiveQueueMessagesResponse::default()
    }

    pub async fn ack_all(&self, _req: AckAllQueueMessagesRequest) -> AckAllQueueMessagesResponse {
        AckAllQueueMessagesResponse::default()
    }

    pub fn stream(
        self: &Arc<Self>,
        _input: BoxStream<'static, Result<StreamQueueMessagesRequest, Status>>,
    ) -> Out<StreamQueueMessagesResponse> {
        Box::pin(futures::stream::empty())
    }

    pub fn downstream(
        self: &Arc<Self>,
        _input: BoxStream<'static, Result<QueuesDownstreamRequest, Status>>,
    ) -> Out<QueuesDownstreamResponse> {
        Box::pin(futures::stream::empty())
    }

    pub fn upstream(
        self: &Arc<Self>,
        _input: BoxStream<'static, Result<QueuesUpstreamRequest, Status>>,
    ) -> Out<QueuesUpstreamResponse> {
        Box::pin(futures::stream::empty())
    }

    pub fn info(&self, _req: QueuesInfoRequest) -> QueuesInfoResponse {
        QueuesInfoResponse::default()
    }
}
