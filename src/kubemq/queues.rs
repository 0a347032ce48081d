//! Queue operations for batch jobs: batched sends, QueuesInfo, peeks, and QueuesDownstream
//! transactions (get, then ack / requeue by sequence).
//!
//! Why not the connection actor in [`super::client`]: queue traffic is bulk and stream-based,
//! and tonic's lazy channel already reconnects on the next call; a downstream stream that
//! breaks is simply reopened by its owner. Works the same against a real KubeMQ server.

use super::client::{Error, ErrorKind};
use super::kubemq_client::KubemqClient;
use super::{
    QueueInfo, QueueMessage, QueueMessagesBatchRequest, QueuesDownstreamRequest,
    QueuesDownstreamRequestType as Kind, QueuesDownstreamResponse, QueuesInfoRequest,
    ReceiveQueueMessagesRequest, SendQueueMessageResult,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::Streaming;

/// Cloneable handle for queue calls to one broker.
#[derive(Clone)]
pub struct QueueClient {
    grpc: KubemqClient<Channel>,
    client_id: Arc<str>,
}

impl QueueClient {
    /// Prepares a connection to `address` (`host:port`); it is made on the first call and
    /// remade after the broker goes away.
    pub fn new(address: &str, client_id: &str) -> Result<Self, Error> {
        let grpc = super::client::lazy_grpc(address)?;
        Ok(Self {
            grpc,
            client_id: client_id.into(),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Sends `messages` in one batch. Every message must be stored: an item the broker
    /// refused fails the whole call, naming the first refusal, so the caller never
    /// acknowledges anything on the strength of a partial send.
    pub async fn send_all(&self, mut messages: Vec<QueueMessage>) -> Result<(), Error> {
        if messages.is_empty() {
            return Ok(());
        }
        for m in &mut messages {
            if m.client_id.is_empty() {
                m.client_id = self.client_id.to_string();
            }
            if m.message_id.is_empty() {
                m.message_id = uuid::Uuid::new_v4().simple().to_string();
            }
        }
        let request = QueueMessagesBatchRequest {
            batch_id: uuid::Uuid::new_v4().simple().to_string(),
            messages,
        };
        let response = self
            .grpc
            .clone()
            .send_queue_messages_batch(request)
            .await
            .map_err(|s| Error::from_status(&s))?
            .into_inner();
        first_refusal(&response.results).map_or(Ok(()), Err)
    }

    /// The broker's counters for one queue (zeros when it does not exist yet).
    pub async fn info(&self, queue: &str) -> Result<QueueInfo, Error> {
        let request = QueuesInfoRequest {
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            queue_name: queue.to_owned(),
        };
        let response = self
            .grpc
            .clone()
            .queues_info(request)
            .await
            .map_err(|s| Error::from_status(&s))?
            .into_inner();
        Ok(response
            .info
            .into_iter()
            .flat_map(|i| i.queues)
            .find(|q| q.name == queue)
            .unwrap_or_else(|| QueueInfo {
                name: queue.to_owned(),
                ..QueueInfo::default()
            }))
    }

    /// Looks at up to `max` waiting messages without taking them (waits up to 1 s when
    /// fewer are there, as the broker does).
    pub async fn peek(&self, channel: &str, max: i32) -> Result<Vec<QueueMessage>, Error> {
        let request = ReceiveQueueMessagesRequest {
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            client_id: self.client_id.to_string(),
            channel: channel.to_owned(),
            max_number_of_messages: max,
            wait_time_seconds: 1,
            is_peak: true,
        };
        let response = self
            .grpc
            .clone()
            .receive_queue_messages(request)
            .await
            .map_err(|s| Error::from_status(&s))?
            .into_inner();
        if response.is_error {
            return Err(Error::new(ErrorKind::Rejected, response.error));
        }
        Ok(response.messages)
    }

    /// Opens a downstream stream for transactions. Nothing is awaited here: grpc-go
    /// servers (a real KubeMQ) send the response headers only with the first response,
    /// and that needs a first request, so the call completes in the first [`Downstream::get`].
    pub fn downstream(&self) -> Downstream {
        let (tx, rx) = mpsc::channel(64);
        let mut grpc = self.grpc.clone();
        let call = async move {
            grpc.queues_downstream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map(tonic::Response::into_inner)
        };
        Downstream {
            requests: tx,
            responses: Responses::Opening(Box::pin(call)),
            client_id: self.client_id.clone(),
            gets: 0,
        }
    }
}

/// Keeps the first copy of each sequence. A real KubeMQ (v2.4.0) sometimes lists one
/// message twice in a `Get` when the queue's messages are being handed between streams;
/// worked twice, it would cost two provider calls, and acked twice, the second ack fails
/// the whole range ("invalid ack sequence id") and every message after it comes back.
fn once_each(mut messages: Vec<QueueMessage>) -> Vec<QueueMessage> {
    let mut seen = std::collections::HashSet::new();
    messages.retain(|m| {
        let seq = m.attributes.as_ref().map_or(0, |a| a.sequence);
        seq == 0 || seen.insert(seq)
    });
    messages
}

fn first_refusal(results: &[SendQueueMessageResult]) -> Option<Error> {
    results.iter().find(|r| r.is_error).map(|r| {
        Error::new(
            ErrorKind::Rejected,
            format!("the broker refused a queue message: {}", r.error),
        )
    })
}

/// Messages held by one `Get` until settled.
#[derive(Debug)]
pub struct Transaction {
    pub id: String,
    pub messages: Vec<QueueMessage>,
}

/// One QueuesDownstream stream. Requests on it are handled in order by the broker, so a
/// settlement sent before the next `get` is applied before that get.
pub struct Downstream {
    requests: mpsc::Sender<QueuesDownstreamRequest>,
    responses: Responses,
    client_id: Arc<str>,
    gets: u64,
}

type Opening = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Streaming<QueuesDownstreamResponse>, tonic::Status>>
            + Send,
    >,
>;

/// The stream's responses, once the call is established.
enum Responses {
    Opening(Opening),
    Open(Box<Streaming<QueuesDownstreamResponse>>),
}

/// Gets on one stream before its owner should open a fresh one: a real KubeMQ keeps every
/// transaction of a stream (and its messages) until the stream ends.
pub const GETS_PER_STREAM: u64 = 1000;

impl Downstream {
    /// Takes up to `max` messages from `channel`, waiting up to `wait` (the broker waits at
    /// least 1 s when fewer are there). Settlement errors that arrived since the last get
    /// are logged: an unsettled message simply comes back, so nothing is lost.
    pub async fn get(
        &mut self,
        channel: &str,
        max: i32,
        wait: Duration,
    ) -> Result<Transaction, Error> {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        self.send(QueuesDownstreamRequest {
            request_id: request_id.clone(),
            request_type_data: Kind::Get as i32,
            channel: channel.to_owned(),
            max_items: max,
            wait_timeout: wait_ms,
            ..self.base()
        })
        .await?;
        self.gets += 1;
        loop {
            let response = self.next_response().await?;
            if response.ref_request_id == request_id
                && response.request_type_data == Kind::Get as i32
            {
                if response.is_error {
                    return Err(Error::new(ErrorKind::Rejected, response.error));
                }
                return Ok(Transaction {
                    id: response.transaction_id,
                    messages: once_each(response.messages),
                });
            }
            if response.is_error {
                tracing::warn!(transaction = %response.transaction_id, "queue settlement failed, the messages will come back: {}", response.error);
            }
        }
    }

    /// Whether this stream has served [`GETS_PER_STREAM`] gets and should be replaced.
    pub fn is_worn(&self) -> bool {
        self.gets >= GETS_PER_STREAM
    }

    async fn next_response(&mut self) -> Result<QueuesDownstreamResponse, Error> {
        let stream = match &mut self.responses {
            Responses::Open(stream) => stream,
            Responses::Opening(call) => {
                let stream = call.await.map_err(|s| Error::from_status(&s))?;
                self.responses = Responses::Open(Box::new(stream));
                match &mut self.responses {
                    Responses::Open(stream) => stream,
                    Responses::Opening(_) => {
                        return Err(Error::new(ErrorKind::Unavailable, "queue stream not open"))
                    }
                }
            }
        };
        stream
            .message()
            .await
            .map_err(|s| Error::from_status(&s))?
            .ok_or_else(|| Error::new(ErrorKind::Unavailable, "the broker closed the queue stream"))
    }

    /// Ends transaction `id` without settling what is left in it: those messages go back
    /// to the queue as they were. Send it after settling a get, even an empty one: a real
    /// KubeMQ keeps an open transaction collecting new messages after its get answered,
    /// hidden from every other consumer until it is closed. Closing a closed transaction
    /// is a no-op with no response.
    pub async fn close(&mut self, id: &str) -> Result<(), Error> {
        self.send(QueuesDownstreamRequest {
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            request_type_data: Kind::CloseByClient as i32,
            ref_transaction_id: id.to_owned(),
            ..self.base()
        })
        .await
    }

    /// Acknowledges `sequences` of transaction `id`: they are done and gone.
    pub async fn ack(&mut self, id: &str, sequences: Vec<i64>) -> Result<(), Error> {
        self.settle(Kind::AckRange, id, sequences, String::new())
            .await
    }

    /// Puts `sequences` back at the tail of `channel` as fresh sends (receive count kept
    /// in the message's own tags by the caller, not bumped by the broker).
    pub async fn requeue(
        &mut self,
        id: &str,
        sequences: Vec<i64>,
        channel: &str,
    ) -> Result<(), Error> {
        self.settle(Kind::ReQueueRange, id, sequences, channel.to_owned())
            .await
    }

    /// Gives `sequences` back unsettled-with-failure: re-published with ReceiveCount+1,
    /// dead-lettered by the message's policy once over its maximum.
    pub async fn nack(&mut self, id: &str, sequences: Vec<i64>) -> Result<(), Error> {
        self.settle(Kind::NAckRange, id, sequences, String::new())
            .await
    }

    async fn settle(
        &mut self,
        kind: Kind,
        id: &str,
        mut sequences: Vec<i64>,
        requeue_channel: String,
    ) -> Result<(), Error> {
        if sequences.is_empty() {
            return Ok(());
        }
        sequences.sort_unstable();
        sequences.dedup();
        self.send(QueuesDownstreamRequest {
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            request_type_data: kind as i32,
            ref_transaction_id: id.to_owned(),
            sequence_range: sequences,
            re_queue_channel: requeue_channel,
            ..self.base()
        })
        .await
    }

    fn base(&self) -> QueuesDownstreamRequest {
        QueuesDownstreamRequest {
            client_id: self.client_id.to_string(),
            ..QueuesDownstreamRequest::default()
        }
    }

    async fn send(&mut self, request: QueuesDownstreamRequest) -> Result<(), Error> {
        self.requests.send(request).await.map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                "the queue stream to the broker ended",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubemq::QueueMessageAttributes;

    fn message(seq: u64, body: &str) -> QueueMessage {
        QueueMessage {
            body: body.as_bytes().to_vec(),
            attributes: Some(QueueMessageAttributes {
                sequence: seq,
                ..Default::default()
            }),
            ..QueueMessage::default()
        }
    }

    #[test]
    fn a_message_listed_twice_in_one_get_is_worked_once() {
        let got = once_each(vec![
            message(309, "a"),
            message(309, "a"),
            message(168, "b"),
            message(309, "a"),
            message(171, "c"),
        ]);
        let seqs: Vec<u64> = got
            .iter()
            .map(|m| m.attributes.as_ref().map_or(0, |a| a.sequence))
            .collect();
        assert_eq!(seqs, vec![309, 168, 171]);
    }
}
