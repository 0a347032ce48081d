//! The looser shapes OpenAI accepts in a chat request, read into [`super::ChatRequest`]'s
//! plain types: files and SDKs written for OpenAI send `"stop": "\n"`, `"stop": null` and
//! `"model": null`, and refusing them would refuse work OpenAI takes.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// `model`: a string, or null for "the route decides" (empty).
pub fn model<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// `stop`: a list of strings, one string (a one-element list) or null (empty).
pub fn stop<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    deserializer.deserialize_any(StopVisitor)
}

struct StopVisitor;

impl<'de> Visitor<'de> for StopVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a list of strings or null")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(vec![value.to_owned()])
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(vec![value])
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
        inner.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut stops = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4));
        while let Some(stop) = seq.next_element::<String>()? {
            stops.push(stop);
        }
        Ok(stops)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ChatRequest;
    use serde_json::json;

    fn read(fields: serde_json::Value) -> Result<ChatRequest, serde_json::Error> {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
            body.extend(fields.clone());
        }
        serde_json::from_value(body)
    }

    #[test]
    fn stop_may_be_one_string_a_list_null_or_absent() {
        for (fields, want) in [
            (json!({"stop": "\n"}), vec!["\n"]),
            (json!({"stop": ["a", "b"]}), vec!["a", "b"]),
            (json!({"stop": []}), vec![]),
            (json!({"stop": null}), vec![]),
            (json!({}), vec![]),
        ] {
            let req = read(fields.clone()).unwrap_or_else(|e| panic!("{fields}: {e}"));
            assert_eq!(req.stop, want, "{fields}");
        }
        let from_text: ChatRequest =
            serde_json::from_str(r#"{"messages":[],"stop":"END"}"#).expect("a string stop");
        assert_eq!(from_text.stop, ["END"]);
    }

    #[test]
    fn model_may_be_null_or_absent() {
        for fields in [json!({"model": null}), json!({})] {
            let req = read(fields.clone()).unwrap_or_else(|e| panic!("{fields}: {e}"));
            assert_eq!(req.model, "", "{fields}");
        }
        assert_eq!(
            read(json!({"model": "gpt-4o"})).expect("model").model,
            "gpt-4o"
        );
    }

    #[test]
    fn other_shapes_are_still_refused_with_what_is_expected() {
        let error = read(json!({"stop": 5})).expect_err("a number is no stop");
        assert!(
            error
                .to_string()
                .contains("a string, a list of strings or null"),
            "{error}"
        );
        assert!(read(json!({"stop": [1]})).is_err());
        assert!(read(json!({"model": 3})).is_err());
    }

    #[test]
    fn an_empty_stop_is_left_out_when_sent_on() {
        let req = read(json!({"stop": null, "model": null})).expect("request");
        let sent = serde_json::to_value(&req).expect("serialize");
        assert!(sent.get("stop").is_none(), "{sent}");
        let req = read(json!({"stop": "\n"})).expect("request");
        assert_eq!(
            serde_json::to_value(&req).expect("serialize")["stop"],
            json!(["\n"])
        );
    }
}
