//! The `kubemq.kubemq` gRPC service. Each call passes the readiness gate and is handed to
//! the part that owns it; the error style of each family is decided there.

use super::pubsub::channels;
use super::{Broker, COMPAT_VERSION};
use crate::kubemq::kubemq_server::{Kubemq, KubemqServer};
use crate::kubemq::{Result as EventResult, *};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::result::Result;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status, Streaming};

type Reply<T> = Result<GrpcResponse<T>, Status>;
type Out<T> = BoxStream<'static, Result<T, Status>>;

/// The service, cheap to clone; the REST front end calls it in-process too.
#[derive(Clone)]
pub struct Service {
    broker: Arc<Broker>,
}

impl Service {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }

    /// The tonic server for this service, with the configured message-size limits.
    pub fn into_server(self) -> KubemqServer<Self> {
        let limit = self.broker.config.max_message_bytes;
        KubemqServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The real server refuses every call until its internal broker is up.
    fn gate(&self) -> Result<(), Status> {
        if self.broker.is_ready() {
            Ok(())
        } else {
            Err(Status::unavailable(
                "grpc server is not ready to accept requests",
            ))
        }
    }

    /// The Ping answer; also served by REST.
    pub fn ping_result(&self) -> PingResult {
        let now = super::ids::now_secs();
        PingResult {
            host: self.broker.config.host.clone(),
            version: COMPAT_VERSION.to_owned(),
            server_start_time: self.broker.started_at,
            server_up_time_seconds: now - self.broker.started_at,
        }
    }
}

fn boxed<T: Send + 'static>(input: Streaming<T>) -> BoxStream<'static, Result<T, Status>> {
    input.boxed()
}

#[tonic::async_trait]
impl Kubemq for Service {
    async fn send_event(&self, req: GrpcRequest<Event>) -> Reply<EventResult> {
        self.gate()?;
        let result = self.broker.pubsub.send_event(req.into_inner()).await?;
        Ok(GrpcResponse::new(result))
    }

    type SendEventsStreamStream = Out<EventResult>;

    async fn send_events_stream(
        &self,
        req: GrpcRequest<Streaming<Event>>,
    ) -> Reply<Self::SendEventsStreamStream> {
        self.gate()?;
        let out = self
            .broker
            .pubsub
            .send_events_stream(boxed(req.into_inner()));
        Ok(GrpcResponse::new(out))
    }

    type SubscribeToEventsStream = Out<EventReceive>;

    async fn subscribe_to_events(
        &self,
        req: GrpcRequest<Subscribe>,
    ) -> Reply<Self::SubscribeToEventsStream> {
        self.gate()?;
        let out = self.broker.pubsub.subscribe_to_events(req.into_inner())?;
        Ok(GrpcResponse::new(out))
    }

    type SubscribeToRequestsStream = Out<Request>;

    async fn subscribe_to_requests(
        &self,
        req: GrpcRequest<Subscribe>,
    ) -> Reply<Self::SubscribeToRequestsStream> {
        self.gate()?;
        let out = self.broker.pubsub.subscribe_to_requests(req.into_inner())?;
        Ok(GrpcResponse::new(out))
    }

    async fn send_request(&self, req: GrpcRequest<Request>) -> Reply<Response> {
        self.gate()?;
        let request = req.into_inner();
        let response = if request.channel == channels::INTERNAL_CHANNEL {
            channels::handle(&self.broker, request).await?
        } else {
            self.broker.pubsub.send_request(request).await?
        };
        Ok(GrpcResponse::new(response))
    }

    async fn send_response(&self, req: GrpcRequest<Response>) -> Reply<Empty> {
        self.gate()?;
        self.broker.pubsub.send_response(req.into_inner())?;
        Ok(GrpcResponse::new(Empty {}))
    }

    async fn send_queue_message(
        &self,
        req: GrpcRequest<QueueMessage>,
    ) -> Reply<SendQueueMessageResult> {
        self.gate()?;
        Ok(GrpcResponse::new(
            self.broker.queues.send(req.into_inner()).await,
        ))
    }

    async fn send_queue_messages_batch(
        &self,
        req: GrpcRequest<QueueMessagesBatchRequest>,
    ) -> Reply<QueueMessagesBatchResponse> {
        self.gate()?;
        let response = self.broker.queues.send_batch(req.into_inner()).await?;
        Ok(GrpcResponse::new(response))
    }

    async fn receive_queue_messages(
        &self,
        req: GrpcRequest<ReceiveQueueMessagesRequest>,
    ) -> Reply<ReceiveQueueMessagesResponse> {
        self.gate()?;
        Ok(GrpcResponse::new(
            self.broker.queues.receive(req.into_inner()).await,
        ))
    }

    type StreamQueueMessageStream = Out<StreamQueueMessagesResponse>;

    async fn stream_queue_message(
        &self,
        req: GrpcRequest<Streaming<StreamQueueMessagesRequest>>,
    ) -> Reply<Self::StreamQueueMessageStream> {
        self.gate()?;
        Ok(GrpcResponse::new(
            self.broker.queues.stream(boxed(req.into_inner())),
        ))
    }

    async fn ack_all_queue_messages(
        &self,
        req: GrpcRequest<AckAllQueueMessagesRequest>,
    ) -> Reply<AckAllQueueMessagesResponse> {
        self.gate()?;
        Ok(GrpcResponse::new(
            self.broker.queues.ack_all(req.into_inner()).await,
        ))
    }

    async fn ping(&self, _req: GrpcRequest<Empty>) -> Reply<PingResult> {
        self.gate()?;
        Ok(GrpcResponse::new(self.ping_result()))
    }

    type QueuesDownstreamStream = Out<QueuesDownstreamResponse>;

    async fn queues_downstream(
        &self,
        req: GrpcRequest<Streaming<QueuesDownstreamRequest>>,
    ) -> Reply<Self::QueuesDownstreamStream> {
        self.gate()?;
        Ok(GrpcResponse::new(
            self.broker.queues.downstream(boxed(req.into_inner())),
        ))
    }

    type QueuesUpstreamStream = Out<QueuesUpstreamResponse>;

    async fn queues_upstream(
        &self,
        req: GrpcRequest<Streaming<QueuesUpstreamRequest>>,
    ) -> Reply<Self::QueuesUpstreamStream> {
        self.gate()?;
        Ok(GrpcResponse::new(
            self.broker.queues.upstream(boxed(req.into_inner())),
        ))
    }

    async fn queues_info(&self, req: GrpcRequest<QueuesInfoRequest>) -> Reply<QueuesInfoResponse> {
        self.gate()?;
        Ok(GrpcResponse::new(self.broker.queues.info(req.into_inner())))
    }
}
