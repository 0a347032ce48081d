//! Tags on queries and queue messages, and how a body's format is chosen.

use crate::provider::Api;
use std::collections::HashMap;

/// The content type that selects JSON mode.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// The tag that carries the content type.
pub const CONTENT_TYPE_TAG: &str = "content-type";
/// Query tag: only the route's targets with this model may answer (`route/model`).
pub const PIN_MODEL_TAG: &str = "llm-router-pin-model";
/// Query tag: the caller's request id, for the logs.
pub const REQUEST_ID_TAG: &str = "x-request-id";
/// Query and batch-line tag: which OpenAI API a JSON-mode body is for (`chat`, the
/// default, or `embeddings`).
pub const API_TAG: &str = "llm-router-api";

/// A tag's value, the name compared without regard to case; empty counts as absent.
pub fn tag<'a>(tags: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// The API named by `tags`: chat when none is; Err(name) for a name this version does
/// not know.
pub fn api(tags: &HashMap<String, String>) -> Result<Api, String> {
    match tag(tags, API_TAG) {
        None => Ok(Api::Chat),
        Some(name) => Api::of_name(name).ok_or_else(|| name.to_owned()),
    }
}
