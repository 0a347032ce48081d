//! ReceiveQueueMessages (receive and peek) and AckAllQueueMessages (KUBEMQ.md §3.3, §3.4).

use super::message;
use super::Queues;
use crate::broker::errors::KubeMqError;
use crate::broker::{ids, validate};
use crate::kubemq::{
    AckAllQueueMessagesRequest, AckAllQueueMessagesResponse, ReceiveQueueMessagesRequest,
    ReceiveQueueMessagesResponse,
};
use std::time::Duration;

fn check_receive(q: &Queues, req: &ReceiveQueueMessagesRequest) -> Result<Duration, KubeMqError> {
    validate::client_id(&req.client_id)?;
    validate::queue_channel(&req.channel)?;
    if !(1..=q.limits.max_number_of_messages).contains(&req.max_number_of_messages) {
        return Err(KubeMqError::MaxMessagesInvalid);
    }
    wait_seconds(q, req.wait_time_seconds)
}

/// WaitTimeSeconds: 0 means the default, negative or above the maximum is error 136.
fn wait_seconds(q: &Queues, secs: i32) -> Result<Duration, KubeMqError> {
    if !(0..=q.limits.max_wait_timeout_seconds).contains(&secs) {
        return Err(KubeMqError::WaitTimeoutInvalid);
    }
    let secs = if secs == 0 {
        q.limits.default_wait_timeout_seconds
    } else {
        secs
    };
    Ok(Duration::from_secs(u64::try_from(secs).unwrap_or(1)))
}

fn request_id(id: String) -> String {
    if id.is_empty() {
        ids::nuid()
    } else {
        id
    }
}

pub(crate) async fn receive(
    q: &Queues,
    req: ReceiveQueueMessagesRequest,
) -> ReceiveQueueMessagesResponse {
    let request_id = request_id(req.request_id.clone());
    let wait = match check_receive(q, &req) {
        Ok(wait) => wait,
        Err(e) => {
            return ReceiveQueueMessagesResponse {
                request_id,
                is_peak: req.is_peak,
                is_error: true,
                error: e.to_string(),
                ..Default::default()
            }
        }
    };
    let queue = q.queue(&req.channel);
    let max = usize::try_from(req.max_number_of_messages).unwrap_or(1);
    let mut got = q.collect(&queue, max, wait).await;
    let messages = if req.is_peak {
        // Peeked messages go back with their sequences when the lease drops.
        got.lease.delivered_copies()
    } else {
        // Acked only now that the response is ready: a caller that goes away mid-wait
        // gets its messages returned instead of lost (divergence from v2.4.0, §3.3).
        let msgs = got.lease.take_all();
        q.ack(&queue, &msgs);
        msgs.into_iter().map(message::delivered).collect()
    };
    ReceiveQueueMessagesResponse {
        request_id,
        messages_received: i32::try_from(messages.len()).unwrap_or(i32::MAX),
        messages,
        messages_expired: i32::try_from(got.expired).unwrap_or(i32::MAX),
        is_peak: req.is_peak,
        ..Default::default()
    }
}

pub(crate) async fn ack_all(
    q: &Queues,
    req: AckAllQueueMessagesRequest,
) -> AckAllQueueMessagesResponse {
    let request_id = request_id(req.request_id.clone());
    let checked = validate::client_id(&req.client_id)
        .and_then(|()| validate::queue_channel(&req.channel))
        .and_then(|()| wait_seconds(q, req.wait_time_seconds));
    let wait = match checked {
        Ok(wait) => wait,
        Err(e) => {
            return AckAllQueueMessagesResponse {
                request_id,
                is_error: true,
                error: e.to_string(),
                ..Default::default()
            }
        }
    };
    let queue = q.queue(&req.channel);
    let mut got = q.collect(&queue, usize::MAX, wait).await;
    let msgs = got.lease.take_all();
    let affected = msgs.len() as u64;
    q.ack(&queue, &msgs);
    AckAllQueueMessagesResponse {
        request_id,
        affected_messages: affected,
        ..Default::default()
    }
}
