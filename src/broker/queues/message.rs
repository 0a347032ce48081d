//! The queue-message rules of KUBEMQ.md §3.0/§3.1: validation, attribute reset on send,
//! delivery copies, expiry and the MaxReceiveCount limit.

use crate::broker::config::QueueLimits;
use crate::broker::errors::KubeMqError;
use crate::broker::ids;
use crate::broker::validate;
use crate::kubemq::{QueueMessage, QueueMessageAttributes, QueueMessagePolicy};

/// Nanoseconds per second, for the ns timestamps KubeMQ puts in attributes.
pub(crate) const NS: i64 = 1_000_000_000;

/// The message's attributes, created empty when missing.
pub(crate) fn attrs(msg: &mut QueueMessage) -> &mut QueueMessageAttributes {
    msg.attributes.get_or_insert_with(Default::default)
}

/// Sequence of a stored message (0 when it has none yet).
pub(crate) fn seq(msg: &QueueMessage) -> u64 {
    msg.attributes.as_ref().map_or(0, |a| a.sequence)
}

/// Stored ReceiveCount: how many failed deliveries the message has been through.
pub(crate) fn stored_rc(msg: &QueueMessage) -> i32 {
    msg.attributes.as_ref().map_or(0, |a| a.receive_count)
}

fn policy(msg: &QueueMessage) -> QueueMessagePolicy {
    msg.policy.clone().unwrap_or_default()
}

/// §3.1 validation, in the upstream order.
pub(crate) fn validate(msg: &QueueMessage, limits: &QueueLimits) -> Result<(), KubeMqError> {
    validate::client_id(&msg.client_id)?;
    validate::queue_channel(&msg.channel)?;
    if msg.metadata.is_empty() && msg.body.is_empty() {
        return Err(KubeMqError::MessageEmpty);
    }
    validate::metadata(&msg.metadata, &msg.tags)?;
    let p = policy(msg);
    if !(0..=limits.max_expiration_seconds).contains(&p.expiration_seconds) {
        return Err(KubeMqError::ExpirationInvalid);
    }
    if !(0..=limits.max_receive_count).contains(&p.max_receive_count) {
        return Err(KubeMqError::MaxReceiveCountInvalid);
    }
    if !(0..=limits.max_delay_seconds).contains(&p.delay_seconds) {
        return Err(KubeMqError::DelayInvalid);
    }
    if !p.max_receive_queue.is_empty() {
        validate::queue_channel(&p.max_receive_queue)?;
    }
    Ok(())
}

/// Gives the message an id when it has none (done before validation: errors echo it).
pub(crate) fn ensure_id(msg: &mut QueueMessage) {
    if msg.message_id.is_empty() {
        msg.message_id = ids::nuid();
    }
}

/// A fresh send: attributes reset, MaxReceiveCount 0 → the configured maximum, expiry
/// and delay times computed from `now`.
pub(crate) fn prepare_send(msg: &mut QueueMessage, limits: &QueueLimits, now: i64) {
    let p = msg.policy.get_or_insert_with(Default::default);
    if p.max_receive_count == 0 {
        p.max_receive_count = limits.max_receive_count;
    }
    let (exp, delay) = (i64::from(p.expiration_seconds), i64::from(p.delay_seconds));
    msg.attributes = Some(QueueMessageAttributes {
        timestamp: now,
        expiration_at: if exp > 0 { now + (exp + delay) * NS } else { 0 },
        delayed_to: if delay > 0 { now + delay * NS } else { 0 },
        ..Default::default()
    });
}

/// A delayed message becoming due: re-sent with DelaySeconds 0 and fresh attributes.
pub(crate) fn prepare_release(msg: &mut QueueMessage, limits: &QueueLimits, now: i64) {
    msg.policy
        .get_or_insert_with(Default::default)
        .delay_seconds = 0;
    prepare_send(msg, limits, now);
}

/// The copy moved to a dead-letter queue: re-routed, ReceiveCount 0, policy cleared.
pub(crate) fn dead_letter_copy(msg: &mut QueueMessage, from: &str, now: i64) {
    msg.channel = msg
        .policy
        .as_ref()
        .map(|p| p.max_receive_queue.clone())
        .unwrap_or_default();
    msg.policy = Some(QueueMessagePolicy::default());
    msg.attributes = Some(QueueMessageAttributes {
        timestamp: now,
        re_routed: true,
        re_routed_from_queue: from.to_owned(),
        ..Default::default()
    });
}

/// What a consumer sees: the stored message with ReceiveCount + 1.
pub(crate) fn delivered(mut msg: QueueMessage) -> QueueMessage {
    attrs(&mut msg).receive_count += 1;
    msg
}

/// Whether one more delivery would exceed MaxReceiveCount (0 means unlimited).
pub(crate) fn over_limit(msg: &QueueMessage) -> bool {
    let max = msg.policy.as_ref().map_or(0, |p| p.max_receive_count);
    exceeds(stored_rc(msg) + 1, max)
}

/// Whether a delivery with ReceiveCount `rc` is beyond MaxReceiveCount `max` (0: unlimited).
/// The one rule behind both [`over_limit`] and the ready index's check.
pub(crate) fn exceeds(rc: i32, max: i32) -> bool {
    max > 0 && rc > max
}

/// Where a failed message goes next, when it cannot stay: its dead-letter queue, if any.
pub(crate) fn dead_letter_queue(msg: &QueueMessage) -> Option<&str> {
    msg.policy
        .as_ref()
        .map(|p| p.max_receive_queue.as_str())
        .filter(|q| !q.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_resets_attributes_and_defaults_max_receive_count() {
        let mut m = QueueMessage {
            attributes: Some(QueueMessageAttributes {
                sequence: 9,
                receive_count: 4,
                ..Default::default()
            }),
            policy: Some(QueueMessagePolicy {
                expiration_seconds: 5,
                delay_seconds: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        prepare_send(&mut m, &QueueLimits::default(), 10 * NS);
        let a = m.attributes.clone().unwrap_or_default();
        assert_eq!((a.sequence, a.receive_count), (0, 0));
        assert_eq!(a.expiration_at, 17 * NS);
        assert_eq!(a.delayed_to, 12 * NS);
        assert_eq!(m.policy.map(|p| p.max_receive_count), Some(1024));
    }

    #[test]
    fn limit_allows_exactly_max_deliveries() {
        let mut m = QueueMessage {
            policy: Some(QueueMessagePolicy {
                max_receive_count: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        attrs(&mut m).receive_count = 1;
        assert!(!over_limit(&m));
        attrs(&mut m).receive_count = 2;
        assert!(over_limit(&m));
    }
}
