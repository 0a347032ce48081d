//! One handler per REST endpoint (KUBEMQ.md §6.2). Each binds its JSON body to the proto
//! message and calls the gRPC service in-process, so REST and gRPC share every rule.

use super::envelope::{Envelope, RestError};
use super::json::{self, Wire};
use crate::broker::grpc::Service;
use crate::kubemq::kubemq_server::Kubemq;
use crate::kubemq::{
    AckAllQueueMessagesRequest, Empty, Event, QueueMessage, QueueMessagesBatchRequest,
    QueuesInfoRequest, ReceiveQueueMessagesRequest, Request, Response,
};
use axum::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Query, State};
use axum::http::{header, HeaderMap};
use std::collections::HashMap;

type Reply = Result<Envelope, RestError>;
type GrpcReply<T> = Result<tonic::Response<T>, tonic::Status>;

/// A proto message bound from a JSON request body.
pub struct Proto<T>(pub T);

#[async_trait]
impl<T: Wire> FromRequest<Service> for Proto<T> {
    type Rejection = RestError;

    async fn from_request(req: axum::extract::Request, state: &Service) -> Result<Self, RestError> {
        require_json(req.headers())?;
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, state))?;
        let message: T = json::decode(&body)?;
        let limit = state.broker().config.max_message_bytes;
        let size = message.encoded_len();
        if size > limit {
            return Err(RestError::TooLarge { size, limit });
        }
        Ok(Self(message))
    }
}

/// JSON bodies only: `application/json` or any `+json` type, parameters allowed.
fn require_json(headers: &HeaderMap) -> Result<(), RestError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(RestError::ContentType)
    }
}

fn body_error(e: BytesRejection, state: &Service) -> RestError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        RestError::BodyTooLarge {
            body_limit: super::body_limit(state),
            limit: state.broker().config.max_message_bytes,
        }
    } else {
        RestError::Body(e.body_text())
    }
}

/// The envelope of a unary call's outcome.
fn reply<T: Wire>(outcome: GrpcReply<T>) -> Reply {
    let data = outcome.map_err(grpc_error)?.into_inner();
    Envelope::ok(&data)
}

fn grpc_error(status: tonic::Status) -> RestError {
    RestError::Grpc(Box::new(status))
}

fn call<T>(message: T) -> tonic::Request<T> {
    tonic::Request::new(message)
}

/// `GET /` — liveness in the real server's words.
pub async fn root() -> &'static str {
    "hi"
}

/// `GET /ping`
pub async fn ping(State(s): State<Service>) -> Reply {
    reply(Kubemq::ping(&s, call(Empty {})).await)
}

/// `POST /send/event` (events, or the events store with `Store:true`).
pub async fn send_event(State(s): State<Service>, Proto(event): Proto<Event>) -> Reply {
    reply(Kubemq::send_event(&s, call(event)).await)
}

/// `POST /send/request` — blocks up to the request's `Timeout`.
pub async fn send_request(State(s): State<Service>, Proto(request): Proto<Request>) -> Reply {
    reply(Kubemq::send_request(&s, call(request)).await)
}

/// `POST /send/response` — `data` is null on success.
pub async fn send_response(State(s): State<Service>, Proto(response): Proto<Response>) -> Reply {
    Kubemq::send_response(&s, call(response))
        .await
        .map_err(grpc_error)?;
    Ok(Envelope::ok_empty())
}

/// `POST /queue/send`
pub async fn queue_send(State(s): State<Service>, Proto(message): Proto<QueueMessage>) -> Reply {
    reply(Kubemq::send_queue_message(&s, call(message)).await)
}

/// `POST /queue/send_batch`
pub async fn queue_send_batch(
    State(s): State<Service>,
    Proto(batch): Proto<QueueMessagesBatchRequest>,
) -> Reply {
    reply(Kubemq::send_queue_messages_batch(&s, call(batch)).await)
}

/// `POST /queue/receive` — same wait semantics as the gRPC call.
pub async fn queue_receive(
    State(s): State<Service>,
    Proto(request): Proto<ReceiveQueueMessagesRequest>,
) -> Reply {
    reply(Kubemq::receive_queue_messages(&s, call(request)).await)
}

/// `POST /queue/ack_all`
pub async fn queue_ack_all(
    State(s): State<Service>,
    Proto(request): Proto<AckAllQueueMessagesRequest>,
) -> Reply {
    reply(Kubemq::ack_all_queue_messages(&s, call(request)).await)
}

/// `GET /queue/info?QueueName=…` (also `queue_name`, any case).
pub async fn queue_info(
    State(s): State<Service>,
    query: Option<Query<HashMap<String, String>>>,
) -> Reply {
    let pairs = query.map(|Query(q)| q).unwrap_or_default();
    let request: QueuesInfoRequest = json::from_pairs(pairs)?;
    reply(Kubemq::queues_info(&s, call(request)).await)
}
