//! KubeMQ's REST JSON ↔ the generated proto types, the way the Go server's binder reads
//! and writes them (KUBEMQ.md §6.1): proto field names matched case-insensitively,
//! unknown keys ignored, bytes as standard base64, enums and 64-bit integers as numbers,
//! zero values omitted on output.

use crate::kubemq::FILE_DESCRIPTOR_SET;
use base64::Engine as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor,
    SerializeOptions,
};
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The REST extension key: UTF-8 text that fills `Body` when `Body` is absent.
/// Not part of upstream KubeMQ v2.4.0.
pub const BODY_STRING: &str = "BodyString";

/// A generated proto type with its full name in the descriptor pool.
pub trait Wire: prost::Message + Default {
    const NAME: &'static str;
}

macro_rules! wire {
    ($($t:ident),* $(,)?) => {
        $(impl Wire for crate::kubemq::$t {
            const NAME: &'static str = concat!("kubemq.", stringify!($t));
        })*
    };
}

wire!(
    Empty,
    PingResult,
    Event,
    Result,
    Request,
    Response,
    QueueMessage,
    QueueMessagesBatchRequest,
    QueueMessagesBatchResponse,
    SendQueueMessageResult,
    ReceiveQueueMessagesRequest,
    ReceiveQueueMessagesResponse,
    AckAllQueueMessagesRequest,
    AckAllQueueMessagesResponse,
    QueuesInfoRequest,
    QueuesInfoResponse,
);

/// Why a JSON body could not become a proto message.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The client sent something that does not bind; the text is shown to the client.
    #[error("invalid request body: {0}")]
    Bind(String),
    /// Our own descriptor set is broken; never the client's fault.
    #[error("proto descriptor unavailable: {0}")]
    Descriptor(String),
}

/// The decoded descriptor pool of `proto/kubemq.proto`, built once.
fn pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| JsonError::Descriptor(e.clone()))
}

fn descriptor<T: Wire>() -> Result<MessageDescriptor, JsonError> {
    pool()?
        .get_message_by_name(T::NAME)
        .ok_or_else(|| JsonError::Descriptor(format!("{} is not in the descriptor set", T::NAME)))
}

/// Decodes a request body. An empty body or `null` binds nothing, as in Go.
pub fn decode<T: Wire>(body: &[u8]) -> Result<T, JsonError> {
    let desc = descriptor::<T>()?;
    let mut value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| JsonError::Bind(e.to_string()))?
    };
    if value.is_null() {
        value = Value::Object(Map::new());
    }
    normalize(&mut value, &desc)?;
    from_value(value, desc)
}

/// Decodes an already normalised JSON value into `T`.
fn from_value<T: Wire>(value: Value, desc: MessageDescriptor) -> Result<T, JsonError> {
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(desc, value, &options)
        .map_err(|e| JsonError::Bind(e.to_string()))?;
    message
        .transcode_to::<T>()
        .map_err(|e| JsonError::Descriptor(e.to_string()))
}

/// Builds a proto message from loose key/value pairs (query strings), with the same rules
/// as a JSON body; every value is a string, so only string fields should be addressed.
pub fn from_pairs<T: Wire>(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<T, JsonError> {
    let desc = descriptor::<T>()?;
    let map: Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k.replace('_', ""), Value::String(v)))
        .collect();
    let mut value = Value::Object(map);
    normalize(&mut value, &desc)?;
    from_value(value, desc)
}

/// The message as a reflective value, ready for [`serialize`].
pub fn to_dynamic<T: Wire>(message: &T) -> Result<DynamicMessage, JsonError> {
    let desc = descriptor::<T>()?;
    DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
        .map_err(|e| JsonError::Descriptor(e.to_string()))
}

/// Output options matching Go's `encoding/json` on the gogo structs with `omitempty`.
pub fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .use_enum_numbers(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(true)
}

/// Rewrites the keys of `value` to the proto field names of `desc`, recursively, drops keys
/// that name no field, and applies the [`BODY_STRING`] extension.
fn normalize(value: &mut Value, desc: &MessageDescriptor) -> Result<(), JsonError> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    let input = std::mem::take(map);
    let mut body_string = None;
    // Exact-case keys first, so that `Body` beats `body` when both are sent.
    let (exact, other): (Vec<_>, Vec<_>) = input
        .into_iter()
        .partition(|(k, _)| desc.get_field_by_name(k).is_some());
    for (key, mut field_value) in exact.into_iter().chain(other) {
        match field_named(desc, &key) {
            Some(field) if !map.contains_key(field.name()) => {
                normalize_field(&mut field_value, &field)?;
                map.insert(field.name().to_owned(), field_value);
            }
            Some(_) => {}
            None if key.eq_ignore_ascii_case(BODY_STRING) => body_string = Some(field_value),
            None => {}
        }
    }
    apply_body_string(map, desc, body_string)
}

/// The field whose proto name equals `key`, ignoring ASCII case.
fn field_named(desc: &MessageDescriptor, key: &str) -> Option<FieldDescriptor> {
    desc.get_field_by_name(key)
        .or_else(|| desc.fields().find(|f| f.name().eq_ignore_ascii_case(key)))
}

/// Normalises nested messages: singular, repeated, and map values.
fn normalize_field(value: &mut Value, field: &FieldDescriptor) -> Result<(), JsonError> {
    let nested = match field.kind() {
        Kind::Message(m) if field.is_map() => match m.map_entry_value_field().kind() {
            Kind::Message(v) => v,
            _ => return Ok(()),
        },
        Kind::Message(m) => m,
        _ => return Ok(()),
    };
    match value {
        Value::Array(items) if field.is_list() => items
            .iter_mut()
            .try_for_each(|item| normalize(item, &nested)),
        Value::Object(entries) if field.is_map() => entries
            .values_mut()
            .try_for_each(|item| normalize(item, &nested)),
        _ if field.is_list() || field.is_map() => Ok(()),
        _ => normalize(value, &nested),
    }
}

/// Fills `Body` from `BodyString` when the message has a `Body` and the client sent none.
fn apply_body_string(
    map: &mut Map<String, Value>,
    desc: &MessageDescriptor,
    body_string: Option<Value>,
) -> Result<(), JsonError> {
    let Some(text) = body_string else {
        return Ok(());
    };
    let has_body_field = desc
        .get_field_by_name("Body")
        .is_some_and(|f| f.kind() == Kind::Bytes);
    let body_absent = map.get("Body").map_or(true, Value::is_null);
    if !has_body_field || !body_absent {
        return Ok(());
    }
    match text {
        Value::String(s) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
            map.insert("Body".to_owned(), Value::String(encoded));
            Ok(())
        }
        Value::Null => Ok(()),
        _ => Err(JsonError::Bind(format!("{BODY_STRING} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubemq::{Event, QueueMessagesBatchRequest, Request};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn keys_match_case_insensitively_and_unknown_keys_are_ignored() -> TestResult {
        let body = br#"{"clientid":"c","CHANNEL":"ch","Body":"aGk=","nope":1,"Tags":{"k":"v"}}"#;
        let event: Event = decode(body)?;
        assert_eq!(event.client_id, "c");
        assert_eq!(event.channel, "ch");
        assert_eq!(event.body, b"hi");
        assert_eq!(event.tags.get("k").map(String::as_str), Some("v"));
        Ok(())
    }

    #[test]
    fn body_string_fills_an_absent_body_only() -> TestResult {
        let event: Event = decode(br#"{"BodyString":"hello"}"#)?;
        assert_eq!(event.body, b"hello");
        let event: Event = decode(br#"{"Body":"aGk=","bodystring":"hello"}"#)?;
        assert_eq!(event.body, b"hi");
        assert!(decode::<Event>(br#"{"BodyString":5}"#).is_err());
        Ok(())
    }

    #[test]
    fn nested_messages_are_normalised() -> TestResult {
        let body = br#"{"batchid":"b","messages":[{"channel":"q","bodystring":"x","policy":{"delayseconds":3}}]}"#;
        let batch: QueueMessagesBatchRequest = decode(body)?;
        assert_eq!(batch.batch_id, "b");
        let msg = &batch.messages[0];
        assert_eq!(msg.body, b"x");
        assert_eq!(msg.policy.as_ref().map(|p| p.delay_seconds), Some(3));
        Ok(())
    }

    #[test]
    fn enums_are_numbers_and_any_int32_binds() -> TestResult {
        let req: Request = decode(br#"{"RequestTypeData":7,"Timeout":1000}"#)?;
        assert_eq!(req.request_type_data, 7);
        assert_eq!(req.timeout, 1000);
        Ok(())
    }

    #[test]
    fn empty_and_null_bodies_bind_nothing() -> TestResult {
        assert_eq!(decode::<Event>(b"")?, Event::default());
        assert_eq!(decode::<Event>(b"null")?, Event::default());
        Ok(())
    }

    #[test]
    fn null_values_bind_nothing() -> TestResult {
        let body = br#"{"ClientID":null,"Timeout":null,"Tags":null,"Body":null,"BodyString":null}"#;
        assert_eq!(decode::<Request>(body)?, Request::default());
        let body = br#"{"Messages":[{"Policy":null,"channel":"q"}],"BatchID":null}"#;
        let batch: QueueMessagesBatchRequest = decode(body)?;
        assert_eq!(batch.messages[0].channel, "q");
        assert_eq!(batch.messages[0].policy, None);
        Ok(())
    }

    #[test]
    fn malformed_bodies_are_bind_errors() {
        for body in [
            &b"{"[..],
            b"[1]",
            b"\"x\"",
            br#"{"Timeout":"x"}"#,
            br#"{"Body":"@@"}"#,
        ] {
            assert!(matches!(decode::<Request>(body), Err(JsonError::Bind(_))));
        }
    }
}
