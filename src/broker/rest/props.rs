//! Property tests of the REST JSON mapping: whatever the broker prints, it reads back
//! unchanged, whatever the case of the keys.

use super::gojson;
use super::json::{self, Wire};
use crate::kubemq::{QueueMessage, QueueMessageAttributes, QueueMessagePolicy, Request};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use serde_json::Value;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z.]{1,12}", any::<String>()]
}

fn policy() -> impl Strategy<Value = QueueMessagePolicy> {
    (any::<i32>(), any::<i32>(), any::<i32>(), text()).prop_map(|(e, d, m, q)| QueueMessagePolicy {
        expiration_seconds: e,
        delay_seconds: d,
        max_receive_count: m,
        max_receive_queue: q,
    })
}

fn attributes() -> impl Strategy<Value = QueueMessageAttributes> {
    (
        any::<i64>(),
        any::<u64>(),
        any::<i32>(),
        any::<bool>(),
        text(),
    )
        .prop_map(|(timestamp, sequence, receive_count, re_routed, from)| {
            QueueMessageAttributes {
                timestamp,
                sequence,
                receive_count,
                re_routed,
                re_routed_from_queue: from,
                ..Default::default()
            }
        })
}

fn queue_message() -> impl Strategy<Value = QueueMessage> {
    (
        (text(), text(), text(), text()),
        vec(any::<u8>(), 0..64),
        hash_map(text(), text(), 0..4),
        proptest::option::of(attributes()),
        proptest::option::of(policy()),
    )
        .prop_map(
            |((id, client, channel, metadata), body, tags, attributes, policy)| QueueMessage {
                message_id: id,
                client_id: client,
                channel,
                metadata,
                body,
                tags,
                attributes,
                policy,
                ..Default::default()
            },
        )
}

fn request() -> impl Strategy<Value = Request> {
    (
        (text(), any::<i32>(), text(), text()),
        (vec(any::<u8>(), 0..64), any::<i32>(), any::<i32>()),
    )
        .prop_map(
            |((id, kind, channel, metadata), (body, timeout, ttl))| Request {
                request_id: id,
                request_type_data: kind,
                channel,
                metadata,
                body,
                timeout,
                cache_ttl: ttl,
                ..Default::default()
            },
        )
}

/// The message as the REST envelope prints it (Go escapes included).
fn print<T: Wire>(message: &T) -> Result<Vec<u8>, TestCaseError> {
    let dynamic = json::to_dynamic(message).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let data = Data(dynamic);
    gojson::to_vec(&data).map_err(|e| TestCaseError::fail(e.to_string()))
}

struct Data(prost_reflect::DynamicMessage);

impl serde::Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_with_options(s, &json::serialize_options())
    }
}

/// Rewrites the keys of every message object (not of `Tags`) with the case `flip` picks.
fn recase(value: &mut Value, flip: &mut impl Iterator<Item = bool>) {
    let Value::Object(map) = value else {
        return;
    };
    let entries = std::mem::take(map);
    for (key, mut v) in entries {
        if key != "Tags" {
            recase(&mut v, flip);
        }
        let key = if flip.next().unwrap_or(false) {
            key.to_ascii_lowercase()
        } else {
            key.to_ascii_uppercase()
        };
        map.insert(key, v);
    }
}

fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(
    message: &T,
    flips: Vec<bool>,
) -> Result<(), TestCaseError> {
    let printed = print(message)?;
    let back: T = json::decode(&printed).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, message);
    let mut value: Value =
        serde_json::from_slice(&printed).map_err(|e| TestCaseError::fail(e.to_string()))?;
    recase(&mut value, &mut flips.into_iter().cycle());
    let recased = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = json::decode(&recased).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, message);
    Ok(())
}

proptest! {
    #[test]
    fn queue_messages_survive_print_and_read(m in queue_message(), flips in vec(any::<bool>(), 1..8)) {
        round_trip(&m, flips)?;
    }

    #[test]
    fn requests_survive_print_and_read(r in request(), flips in vec(any::<bool>(), 1..8)) {
        round_trip(&r, flips)?;
    }
}
