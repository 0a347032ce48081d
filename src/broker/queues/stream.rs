//! StreamQueueMessage (KUBEMQ.md §3.5): one message lifecycle per stream, with a
//! visibility timer; the stream ends after ack, reject, resend, or expiry.

use super::lease::Lease;
use super::message;
use super::queue::Queue;
use super::{persist, Out, Queues};
use crate::broker::errors::KubeMqError;
use crate::broker::{ids, validate};
use crate::kubemq::{
    QueueMessage, StreamQueueMessagesRequest, StreamQueueMessagesResponse,
    StreamRequestType as Kind,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::futures::Notified;
use tokio::time::Instant;
use tonic::Status;

type Input = BoxStream<'static, Result<StreamQueueMessagesRequest, Status>>;
type Response = StreamQueueMessagesResponse;

/// An accepted ReceiveMessage still waiting for a message.
struct Pending {
    queue: Arc<Queue>,
    deadline: Instant,
    request_id: String,
}

/// One stream. Dropped with an active message (client gone), the message fails as on a
/// visibility expiry; at broker shutdown it is returned untouched instead.
struct Session {
    queues: Arc<Queues>,
    input: Input,
    /// Set by the first ReceiveMessage; a second one is error 128.
    subscribed: bool,
    pending: Option<Pending>,
    /// The delivered message, until settled.
    active: Option<Lease>,
    /// Request id of the ReceiveMessage that delivered `active`.
    active_request: String,
    visibility: Duration,
    visibility_deadline: Option<Instant>,
    /// A terminal response was sent: the stream ends.
    done: bool,
    shutting_down: bool,
}

pub(crate) fn open(queues: Arc<Queues>, input: Input) -> Out<Response> {
    let visibility = secs(queues.limits.default_visibility_seconds);
    let session = Session {
        queues,
        input,
        subscribed: false,
        pending: None,
        active: None,
        active_request: String::new(),
        visibility,
        visibility_deadline: None,
        done: false,
        shutting_down: false,
    };
    futures::stream::unfold(session, |mut s| async move {
        let resp = s.next().await?;
        Some((Ok(resp), s))
    })
    .boxed()
}

fn secs(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

async fn wait_notified(n: Option<std::pin::Pin<Box<Notified<'_>>>>) {
    match n {
        Some(n) => n.await,
        None => futures::future::pending().await,
    }
}

async fn wait_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => futures::future::pending().await,
    }
}

impl Session {
    async fn next(&mut self) -> Option<Response> {
        if self.done {
            return None;
        }
        let shutdown = self.queues.shutdown.clone();
        loop {
            let wait_queue = self.pending.as_ref().map(|p| p.queue.clone());
            let mut notified = wait_queue.as_ref().map(|q| Box::pin(q.signal().notified()));
            if let Some(n) = notified.as_mut() {
                n.as_mut().enable();
            }
            if let Some(resp) = self.try_deliver() {
                return Some(resp);
            }
            let wait_deadline = self.pending.as_ref().map(|p| p.deadline);
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.shutting_down = true;
                    return None;
                }
                item = self.input.next() => {
                    let req = item?.ok()?;
                    if let Some(resp) = self.handle(req) {
                        return Some(resp);
                    }
                }
                () = wait_notified(notified) => {}
                () = wait_until(wait_deadline) => return Some(self.no_message()),
                () = wait_until(self.visibility_deadline) => return Some(self.visibility_expired()),
            }
        }
    }

    /// Delivers a message to the pending ReceiveMessage, if one is ready.
    fn try_deliver(&mut self) -> Option<Response> {
        let pending = self.pending.as_ref()?;
        let mut lease = Lease::new(pending.queue.clone());
        self.queues.take_now(&pending.queue, 1, &mut lease);
        let msg = lease.delivered_copies().pop()?;
        let pending = self.pending.take()?;
        self.active = Some(lease);
        self.active_request = pending.request_id.clone();
        self.visibility_deadline = Some(Instant::now() + self.visibility);
        Some(Response {
            request_id: pending.request_id,
            stream_request_type_data: Kind::ReceiveMessage as i32,
            message: Some(msg),
            ..Default::default()
        })
    }

    fn no_message(&mut self) -> Response {
        self.done = true;
        let request_id = self
            .pending
            .take()
            .map(|p| p.request_id)
            .unwrap_or_default();
        failure(
            request_id,
            Kind::ReceiveMessage as i32,
            KubeMqError::NoNewMessage,
        )
    }

    fn visibility_expired(&mut self) -> Response {
        self.done = true;
        self.visibility_deadline = None;
        if let Some(mut lease) = self.active.take() {
            let msgs = lease.take_all();
            self.queues.fail(&lease.queue, msgs);
        }
        let request_id = std::mem::take(&mut self.active_request);
        failure(
            request_id,
            Kind::ReceiveMessage as i32,
            KubeMqError::VisibilityExpired,
        )
    }

    fn handle(&mut self, mut req: StreamQueueMessagesRequest) -> Option<Response> {
        if req.request_id.is_empty() {
            req.request_id = ids::nuid();
        }
        let kind = req.stream_request_type_data;
        match self.dispatch(&mut req) {
            Ok(false) => None,
            Ok(true) => Some(Response {
                request_id: req.request_id,
                stream_request_type_data: kind,
                ..Default::default()
            }),
            Err(e) => Some(failure(req.request_id, kind, e)),
        }
    }

    /// Runs one request; `Ok(true)` asks for a success response.
    fn dispatch(&mut self, req: &mut StreamQueueMessagesRequest) -> Result<bool, KubeMqError> {
        validate::client_id(&req.client_id)?;
        let kind = match Kind::try_from(req.stream_request_type_data) {
            Ok(Kind::Unknown) | Err(_) => return Err(KubeMqError::InvalidStreamRequestType),
            Ok(kind) => kind,
        };
        if matches!(kind, Kind::AckMessage | Kind::RejectMessage) && req.ref_sequence == 0 {
            return Err(KubeMqError::AckSequenceInvalid);
        }
        match kind {
            Kind::ReceiveMessage => self.receive(req).map(|()| false),
            Kind::AckMessage => self.ack(req.ref_sequence),
            Kind::RejectMessage => self.reject(req.ref_sequence),
            Kind::ModifyVisibility => self.modify_visibility(req.visibility_seconds),
            Kind::ResendMessage => self.resend(&req.channel),
            Kind::SendModifiedMessage => self.send_modified(req.modified_message.take()),
            Kind::Unknown => Err(KubeMqError::InvalidStreamRequestType),
        }
    }

    fn visibility_of(&self, secs_req: i32) -> Result<Duration, KubeMqError> {
        let limits = &self.queues.limits;
        if !(0..=limits.max_visibility_seconds).contains(&secs_req) {
            return Err(KubeMqError::VisibilityInvalid);
        }
        Ok(secs(if secs_req == 0 {
            limits.default_visibility_seconds
        } else {
            secs_req
        }))
    }

    fn receive(&mut self, req: &StreamQueueMessagesRequest) -> Result<(), KubeMqError> {
        validate::queue_channel(&req.channel)?;
        let visibility = self.visibility_of(req.visibility_seconds)?;
        let limits = &self.queues.limits;
        if !(0..=limits.max_wait_timeout_seconds).contains(&req.wait_time_seconds) {
            return Err(KubeMqError::WaitTimeoutInvalid);
        }
        let wait = secs(if req.wait_time_seconds == 0 {
            limits.default_wait_timeout_seconds
        } else {
            req.wait_time_seconds
        });
        if self.subscribed {
            return Err(KubeMqError::SubscriptionAlreadyActive);
        }
        self.subscribed = true;
        self.visibility = visibility;
        self.pending = Some(Pending {
            queue: self.queues.queue(&req.channel),
            deadline: Instant::now() + wait,
            request_id: req.request_id.clone(),
        });
        Ok(())
    }

    /// The active message, if `seq` names it.
    fn settle_active(&mut self, seq: u64, none: KubeMqError) -> Result<Lease, KubeMqError> {
        let lease = self.active.as_ref().ok_or(none)?;
        if lease.msgs.first().map(message::seq) != Some(seq) {
            return Err(KubeMqError::AckSequenceInvalid);
        }
        self.done = true;
        self.visibility_deadline = None;
        self.active.take().ok_or(none)
    }

    fn ack(&mut self, seq: u64) -> Result<bool, KubeMqError> {
        let mut lease = self.settle_active(seq, KubeMqError::NoActiveMessageToAck)?;
        let msgs = lease.take_all();
        self.queues.ack(&lease.queue, &msgs);
        Ok(true)
    }

    fn reject(&mut self, seq: u64) -> Result<bool, KubeMqError> {
        let mut lease = self.settle_active(seq, KubeMqError::NoActiveMessageToReject)?;
        let msgs = lease.take_all();
        self.queues.fail(&lease.queue, msgs);
        Ok(true)
    }

    fn modify_visibility(&mut self, secs_req: i32) -> Result<bool, KubeMqError> {
        self.visibility = self.visibility_of(secs_req)?;
        if self.active.is_some() {
            self.visibility_deadline = Some(Instant::now() + self.visibility);
        }
        Ok(true)
    }

    fn resend(&mut self, channel: &str) -> Result<bool, KubeMqError> {
        validate::queue_channel(channel)?;
        let lease = self.take_active(KubeMqError::NoActiveMessageToSend)?;
        let mut msgs = lease.msgs.clone();
        for m in &mut msgs {
            m.channel = channel.to_owned();
        }
        self.replace(lease, msgs);
        Ok(true)
    }

    fn send_modified(&mut self, modified: Option<QueueMessage>) -> Result<bool, KubeMqError> {
        let mut msg = modified.ok_or(KubeMqError::InvalidQueueMessage)?;
        message::ensure_id(&mut msg);
        message::validate(&msg, &self.queues.limits)?;
        let lease = self.take_active(KubeMqError::NoActiveMessageToAck)?;
        self.replace(lease, vec![msg]);
        Ok(true)
    }

    fn take_active(&mut self, none: KubeMqError) -> Result<Lease, KubeMqError> {
        let lease = self.active.take().ok_or(none)?;
        self.done = true;
        self.visibility_deadline = None;
        Ok(lease)
    }

    /// Acks the original held by `lease` and sends `msgs` as new messages, in one store job.
    fn replace(&self, mut lease: Lease, msgs: Vec<QueueMessage>) {
        let old = lease.take_all();
        let deletes = old
            .iter()
            .map(|m| persist::delete(&lease.queue.name, message::seq(m)))
            .collect();
        lease.queue.settled(super::queue::Tally::of(&old));
        self.queues.forward(msgs, deletes);
    }
}

fn failure(request_id: String, kind: i32, e: KubeMqError) -> Response {
    Response {
        request_id,
        stream_request_type_data: kind,
        is_error: true,
        error: e.to_string(),
        ..Default::default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.shutting_down {
            return;
        }
        if let Some(mut lease) = self.active.take() {
            let msgs = lease.take_all();
            self.queues.fail(&lease.queue, msgs);
        }
    }
}
