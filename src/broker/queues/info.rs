//! Read-only views: QueuesInfo, and the queue stats channel management lists.

use super::queue::{Queue, State};
use super::Queues;
use crate::kubemq::{QueueInfo, QueuesInfo, QueuesInfoRequest, QueuesInfoResponse};

/// One queue as `list-channels` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueChannelStats {
    pub name: String,
    /// Unix ms of the last send or delivery (0 if none).
    pub last_activity: i64,
    /// Whether a consumer is waiting on it or holds messages from it.
    pub is_active: bool,
    pub incoming_messages: i64,
    pub incoming_volume: i64,
    pub outgoing_messages: i64,
    pub outgoing_volume: i64,
    pub waiting: i64,
    pub expired: i64,
    pub delayed: i64,
}

fn stats(name: &str, st: &State) -> QueueChannelStats {
    QueueChannelStats {
        name: name.to_owned(),
        last_activity: st.stats.last_activity_ms,
        is_active: st.consumers > 0 || st.in_flight.count > 0,
        incoming_messages: st.stats.sent,
        incoming_volume: st.stats.sent_bytes,
        outgoing_messages: st.stats.delivered,
        outgoing_volume: st.stats.delivered_bytes,
        waiting: st.ready.len() as i64,
        expired: st.stats.expired,
        delayed: st.delayed.count as i64,
    }
}

/// Queues whose name contains `search`, sorted by name.
fn matching(queues: &Queues, search: &str) -> Vec<std::sync::Arc<Queue>> {
    let mut found: Vec<_> = queues
        .registry
        .read()
        .values()
        .filter(|q| q.name.contains(search))
        .cloned()
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

pub(crate) fn list(queues: &Queues, search: &str) -> Vec<QueueChannelStats> {
    matching(queues, search)
        .iter()
        .map(|q| stats(&q.name, &q.lock()))
        .collect()
}

fn queue_info(q: &Queue) -> QueueInfo {
    let st = q.lock();
    QueueInfo {
        name: q.name.clone(),
        messages: (st.ready.len() + st.in_flight.count + st.storing.count) as i64,
        bytes: st.ready.bytes(),
        first_sequence: st.ready.first_seq().map_or(0, |s| s as i64),
        last_sequence: st.next_seq.saturating_sub(1) as i64,
        sent: st.stats.sent,
        delivered: st.stats.delivered,
        waiting: st.ready.len() as i64,
        subscribers: st.consumers as i64,
    }
}

/// QueuesInfo. `QueueName` is a `;`-separated list of exact names (empty means all), as
/// upstream filters it. Names are reported as they are, without the upstream trimming
/// quirk (KUBEMQ.md §3.8).
pub(crate) fn info(queues: &Queues, req: QueuesInfoRequest) -> QueuesInfoResponse {
    let wanted: Vec<&str> = req.queue_name.split(';').collect();
    let list: Vec<QueueInfo> = matching(queues, "")
        .iter()
        .filter(|q| req.queue_name.is_empty() || wanted.contains(&q.name.as_str()))
        .map(|q| queue_info(q))
        .collect();
    QueuesInfoResponse {
        ref_request_id: req.request_id,
        info: Some(QueuesInfo {
            total_queue: i32::try_from(list.len()).unwrap_or(i32::MAX),
            sent: list.iter().map(|q| q.sent).sum(),
            delivered: list.iter().map(|q| q.delivered).sum(),
            waiting: list.iter().map(|q| q.waiting).sum(),
            queues: list,
        }),
    }
}
