//! QueuesDownstream (KUBEMQ.md §3.7): transactions per stream, requests handled strictly
//! in order, responses only for Get, ActiveOffsets and errors.
//!
//! Divergence from v2.4.0: a transaction stops collecting once its Get is answered (the
//! real server keeps absorbing new messages into open transactions).

use super::lease::Lease;
use super::message;
use super::{Out, Queues};
use crate::broker::{ids, validate};
use crate::kubemq::{
    QueuesDownstreamRequest, QueuesDownstreamRequestType as Kind, QueuesDownstreamResponse,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// `MaxItems <= 0` means this many.
const MAX_ITEMS: usize = 200_000;
/// Shortest Get wait, in ms.
const MIN_WAIT_MS: i32 = 1000;
/// Closed transactions remembered per stream (for their "closed response" errors).
const MAX_CLOSED: usize = 1024;

const NOT_FOUND: &str = "transaction is completed or transaction id not found";
const UNKNOWN: &str = "request unknown";

type Input = BoxStream<'static, Result<QueuesDownstreamRequest, Status>>;
type Response = QueuesDownstreamResponse;

/// One downstream stream. Dropping it (stream end, client gone, shutdown) returns every
/// unsettled message with its sequence and ReceiveCount, through the leases' drop.
struct Session {
    queues: Arc<Queues>,
    input: Input,
    /// This stream's transactions; `None` once closed.
    txns: HashMap<String, Option<Lease>>,
    /// Closed transaction ids, oldest first, so the map stays bounded.
    closed: VecDeque<String>,
}

pub(crate) fn open(queues: Arc<Queues>, input: Input) -> Out<Response> {
    let session = Session {
        queues,
        input,
        txns: HashMap::new(),
        closed: VecDeque::new(),
    };
    futures::stream::unfold(session, |mut s| async move {
        let resp = s.next().await?;
        Some((Ok(resp), s))
    })
    .boxed()
}

impl Session {
    async fn next(&mut self) -> Option<Response> {
        loop {
            let req = tokio::select! {
                () = self.queues.shutdown.cancelled() => return None,
                item = self.input.next() => item?.ok()?,
            };
            let resp = if req.request_type_data == Kind::Get as i32 {
                Some(self.get(req).await)
            } else {
                self.settle(&req)
            };
            if resp.is_some() {
                return resp;
            }
        }
    }

    async fn get(&mut self, req: QueuesDownstreamRequest) -> Response {
        let txn = ids::uuid();
        let mut resp = Response {
            transaction_id: txn.clone(),
            ref_request_id: req.request_id.clone(),
            request_type_data: Kind::Get as i32,
            ..Default::default()
        };
        let valid = validate::client_id(&req.client_id)
            .and_then(|()| validate::queue_channel(&req.channel));
        if let Err(e) = valid {
            resp.is_error = true;
            resp.error = e.to_string();
            return resp;
        }
        let max = usize::try_from(req.max_items)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(MAX_ITEMS);
        let wait_ms = u64::try_from(req.wait_timeout.max(MIN_WAIT_MS)).unwrap_or(1000);
        let queue = self.queues.queue(&req.channel);
        let mut got = self
            .queues
            .collect(&queue, max, Duration::from_millis(wait_ms))
            .await;
        if req.auto_ack || got.lease.is_empty() {
            let msgs = got.lease.take_all();
            self.queues.ack(&queue, &msgs);
            resp.messages = msgs.into_iter().map(message::delivered).collect();
            self.remember(txn, None);
        } else {
            resp.messages = got.lease.delivered_copies();
            self.remember(txn, Some(got.lease));
        }
        resp
    }

    fn remember(&mut self, txn: String, lease: Option<Lease>) {
        if lease.is_none() {
            self.closed.push_back(txn.clone());
        }
        self.txns.insert(txn, lease);
        while self.closed.len() > MAX_CLOSED {
            if let Some(old) = self.closed.pop_front() {
                if matches!(self.txns.get(&old), Some(None)) {
                    self.txns.remove(&old);
                }
            }
        }
    }

    fn settle(&mut self, req: &QueuesDownstreamRequest) -> Option<Response> {
        let Some(slot) = self.txns.get_mut(&req.ref_transaction_id) else {
            return Some(error(req, req.request_type_data, NOT_FOUND));
        };
        let was_open = slot.is_some();
        let q = &self.queues;
        let result = match Kind::try_from(req.request_type_data) {
            Ok(Kind::AckAll) => ack_all(q, slot),
            Ok(Kind::AckRange) => ack_range(q, slot, &req.sequence_range),
            Ok(Kind::NAckAll) => nack_all(q, slot),
            Ok(Kind::NAckRange) => nack_range(q, slot, &req.sequence_range),
            Ok(Kind::ReQueueAll) => requeue_all(q, slot, &req.re_queue_channel),
            Ok(Kind::ReQueueRange) => {
                requeue_range(q, slot, &req.sequence_range, &req.re_queue_channel)
            }
            Ok(Kind::ActiveOffsets) => return Some(active_offsets(req, slot)),
            Ok(Kind::CloseByClient) => {
                slot.take();
                Ok(())
            }
            _ => return Some(error(req, Kind::PollRequestTypeUnknown as i32, UNKNOWN)),
        };
        if slot.as_ref().is_some_and(Lease::is_empty) {
            slot.take();
        }
        if was_open && slot.is_none() {
            self.closed.push_back(req.ref_transaction_id.clone());
        }
        result
            .err()
            .map(|text| error(req, req.request_type_data, &text))
    }
}

fn error(req: &QueuesDownstreamRequest, kind: i32, text: &str) -> Response {
    Response {
        transaction_id: req.ref_transaction_id.clone(),
        ref_request_id: req.request_id.clone(),
        request_type_data: kind,
        is_error: true,
        error: text.to_owned(),
        ..Default::default()
    }
}

fn active_offsets(req: &QueuesDownstreamRequest, slot: &Option<Lease>) -> Response {
    let Some(lease) = slot else {
        return error(
            req,
            req.request_type_data,
            "cannot get active offsets with closed response ",
        );
    };
    Response {
        transaction_id: req.ref_transaction_id.clone(),
        ref_request_id: req.request_id.clone(),
        request_type_data: Kind::ActiveOffsets as i32,
        active_offsets: lease.sequences(),
        ..Default::default()
    }
}

fn ack_all(q: &Queues, slot: &mut Option<Lease>) -> Result<(), String> {
    let mut lease = slot
        .take()
        .ok_or("cannot ack messages with closed response ")?;
    let msgs = lease.take_all();
    q.ack(&lease.queue, &msgs);
    Ok(())
}

fn nack_all(q: &Queues, slot: &mut Option<Lease>) -> Result<(), String> {
    let mut lease = slot
        .take()
        .ok_or("cannot nack messages with closed response ")?;
    let msgs = lease.take_all();
    q.fail(&lease.queue, msgs);
    Ok(())
}

fn requeue_all(q: &Queues, slot: &mut Option<Lease>, channel: &str) -> Result<(), String> {
    let lease = slot
        .as_mut()
        .ok_or("cannot ack messages with closed response ")?;
    check_destination(lease, channel)?;
    let msgs = lease.take_all();
    forward(q, lease, msgs, channel);
    slot.take();
    Ok(())
}

fn ack_range(q: &Queues, slot: &mut Option<Lease>, seqs: &[i64]) -> Result<(), String> {
    let lease = slot
        .as_mut()
        .ok_or("cannot ack messages with closed response ")?;
    if seqs.is_empty() {
        return Err("cannot ack empty list of of offsets".into());
    }
    let (msgs, bad) = pick(lease, seqs);
    q.ack(&lease.queue, &msgs);
    bad.map_or(Ok(()), |s| Err(format!("invalid ack sequence id {s}")))
}

fn nack_range(q: &Queues, slot: &mut Option<Lease>, seqs: &[i64]) -> Result<(), String> {
    let lease = slot
        .as_mut()
        .ok_or("cannot nack messages with closed response ")?;
    if seqs.is_empty() {
        return Err("cannot nack empty list of of offsets".into());
    }
    let (msgs, bad) = pick(lease, seqs);
    q.fail(&lease.queue, msgs);
    bad.map_or(Ok(()), |s| Err(format!("invalid nack sequence id {s}")))
}

fn requeue_range(
    q: &Queues,
    slot: &mut Option<Lease>,
    seqs: &[i64],
    channel: &str,
) -> Result<(), String> {
    let lease = slot
        .as_mut()
        .ok_or("cannot requeue messages with closed response ")?;
    if channel.is_empty() {
        return Err("cannot requeue messages with empty channel destination ".into());
    }
    if seqs.is_empty() {
        return Err("cannot requeue empty list of of offsets".into());
    }
    check_destination(lease, channel)?;
    let (msgs, bad) = pick(lease, seqs);
    forward(q, lease, msgs, channel);
    bad.map_or(Ok(()), |s| Err(format!("invalid ack sequence id {s}")))
}

fn check_destination(lease: &Lease, channel: &str) -> Result<(), String> {
    if channel.is_empty() {
        return Err("cannot requeue messages with empty channel destination ".into());
    }
    validate::queue_channel(channel).map_err(|e| {
        let seq = lease.msgs.first().map_or(0, message::seq);
        format!("re-queue message with seq {seq} failed, {e}")
    })
}

/// Sends `msgs` to `channel` as new messages and acks the originals, in one store job.
fn forward(q: &Queues, lease: &Lease, mut msgs: Vec<crate::kubemq::QueueMessage>, channel: &str) {
    if msgs.is_empty() {
        return;
    }
    let deletes = msgs
        .iter()
        .map(|m| super::persist::delete(&lease.queue.name, message::seq(m)))
        .collect();
    lease.queue.settled(super::queue::Tally::of(&msgs));
    for m in &mut msgs {
        m.channel = channel.to_owned();
    }
    q.forward(msgs, deletes);
}

/// Takes the listed sequences out of `lease`, stopping at the first one it does not hold.
fn pick(lease: &mut Lease, seqs: &[i64]) -> (Vec<crate::kubemq::QueueMessage>, Option<i64>) {
    let mut msgs = Vec::with_capacity(seqs.len());
    for &s in seqs {
        match u64::try_from(s).ok().and_then(|seq| lease.take_seq(seq)) {
            Some(m) => msgs.push(m),
            None => return (msgs, Some(s)),
        }
    }
    (msgs, None)
}
