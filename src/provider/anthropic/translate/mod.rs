//! STUB (replaced by the real translation).
#![allow(dead_code, unused_variables, clippy::all)]
use serde_json::{Map, Value};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhonoured {
    Refuse,
    Drop,
}
#[derive(Debug, Clone, Default)]
pub struct ResponseContext;
pub struct ToAnthropic {
    pub body: Map<String, Value>,
    pub context: ResponseContext,
}
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(String);
pub fn request_to_anthropic(
    o: &Map<String, Value>,
    model: &str,
    stream: bool,
    u: Unhonoured,
) -> Result<ToAnthropic, RequestError> {
    Err(RequestError("stub".into()))
}
pub fn response_from_anthropic(a: &Value, cx: &ResponseContext) -> Result<Value, String> {
    Err("stub".into())
}
pub fn unhonoured_parameters(o: &Map<String, Value>) -> Vec<String> {
    vec![]
}
#[derive(Debug)]
pub struct StreamFromAnthropic;
#[derive(Debug)]
pub struct StreamError {
    pub kind: String,
    pub message: String,
}
impl StreamFromAnthropic {
    pub fn new(cx: ResponseContext) -> Self {
        Self
    }
    pub fn event(&mut self, d: &Value) -> Result<Vec<Value>, StreamError> {
        Ok(vec![])
    }
}
