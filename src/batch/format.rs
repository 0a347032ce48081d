//! The batch file format: input lines are checked all at once so the person fixing a file
//! sees every problem in one pass; output lines follow OpenAI's Batch output shape so
//! existing tooling can read our results.

use crate::provider::ChatRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The longest line we accept, in bytes (OpenAI's per-request limit is of this order).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The longest `custom_id`, in characters.
pub const MAX_CUSTOM_ID_CHARS: usize = 512;
/// The only endpoint a batch line may call.
pub const CHAT_URL: &str = "/v1/chat/completions";

/// One valid input line, ready to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct JobLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub custom_id: String,
    /// The route this line goes to: `body.model` when it names a known route, else the job's route.
    pub route: String,
    /// The body as given, so nothing the user sent is lost on the way.
    pub body: Value,
}

/// One bad line and why, for the person fixing the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number; 0 when the problem is the whole file.
    pub line: usize,
    /// Set when the line has a usable `custom_id`, so the person can find it by name too.
    pub custom_id: Option<String>,
    pub reason: String,
}

/// The whole file, split into what can be queued and what must be fixed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub lines: Vec<JobLine>,
    pub errors: Vec<LineError>,
}

/// Reads a whole file's text. `route` is the job's route; `is_route(name)` says whether a
/// name is a configured route (for the per-line override).
pub fn parse(text: &str, route: &str, is_route: &dyn Fn(&str) -> bool) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parsed = Parsed::default();
    // custom_id -> the line that used it first; invalid lines count too, since the id must
    // be unique in the file whatever else is wrong with the line.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        match check_line(index + 1, raw, &mut seen) {
            Ok((custom_id, body)) => parsed.lines.push(JobLine {
                line: index + 1,
                route: line_route(&body, route, is_route),
                custom_id,
                body,
            }),
            Err(error) => parsed.errors.push(error),
        }
    }
    if parsed.lines.is_empty() && parsed.errors.is_empty() {
        parsed.errors.push(LineError {
            line: 0,
            custom_id: None,
            reason: "the file has no requests: put one JSON request per line".into(),
        });
    }
    parsed
}

/// Renders the errors for a terminal: one line each, at most `max`, then how many were left out.
pub fn summary(errors: &[LineError], max: usize) -> String {
    let mut out: Vec<String> = errors.iter().take(max).map(render_error).collect();
    if errors.len() > max {
        out.push(format!("… and {} more", errors.len() - max));
    }
    out.join("\n")
}

fn render_error(error: &LineError) -> String {
    let place = match error.line {
        0 => "file".to_string(),
        n => format!("line {n}"),
    };
    match &error.custom_id {
        Some(id) => format!("{place} (custom_id {id:?}): {}", error.reason),
        None => format!("{place}: {}", error.reason),
    }
}

/// A line's route: the body's `model` may name a configured route to override the job's.
fn line_route(body: &Value, route: &str, is_route: &dyn Fn(&str) -> bool) -> String {
    match body.get("model").and_then(Value::as_str) {
        Some(model) if is_route(model) => model.to_string(),
        _ => route.to_string(),
    }
}

/// Checks one non-blank line; on success gives its custom_id and body.
fn check_line(
    line: usize,
    raw: &str,
    seen: &mut HashMap<String, usize>,
) -> Result<(String, Value), LineError> {
    let fail = |custom_id: Option<String>, reason: String| LineError {
        line,
        custom_id,
        reason,
    };
    if raw.len() > MAX_LINE_BYTES {
        let reason = format!(
            "the line is {} bytes; the limit is {MAX_LINE_BYTES} bytes (1 MiB): shorten the request",
            raw.len()
        );
        return Err(fail(None, reason));
    }
    let mut object = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(object)) => object,
        Ok(other) => {
            let reason = format!(
                "the line is {}, not a JSON object with custom_id, method, url and body",
                kind(&other)
            );
            return Err(fail(None, reason));
        }
        Err(e) => {
            let reason = format!("not valid JSON ({e}): each line must be one whole JSON object");
            return Err(fail(None, reason));
        }
    };
    let mut reasons = Vec::new();
    let custom_id = match check_custom_id(object.get("custom_id")) {
        Ok(id) => Some(id),
        Err(reason) => {
            reasons.push(reason);
            None
        }
    };
    if let Some(id) = &custom_id {
        if let Some(first) = seen.get(id) {
            reasons.push(format!(
                "duplicate custom_id: line {first} already uses it; every custom_id must be unique in the file"
            ));
        } else {
            seen.insert(id.clone(), line);
        }
    }
    reasons.extend(check_method(object.get("method")));
    reasons.extend(check_url(object.get("url")));
    reasons.extend(check_body(object.get("body")));
    match (custom_id, object.remove("body")) {
        (Some(id), Some(body)) if reasons.is_empty() => Ok((id, body)),
        (custom_id, _) => Err(fail(custom_id, reasons.join("; "))),
    }
}

fn check_custom_id(value: Option<&Value>) -> Result<String, String> {
    match value {
        None => Err("custom_id is missing: give every line a unique \"custom_id\" string".into()),
        Some(Value::String(id)) if id.is_empty() => {
            Err("custom_id is empty: give every line a unique, non-empty custom_id".into())
        }
        Some(Value::String(id)) if id.chars().count() > MAX_CUSTOM_ID_CHARS => Err(format!(
            "custom_id is {} characters long; the limit is {MAX_CUSTOM_ID_CHARS}",
            id.chars().count()
        )),
        Some(Value::String(id)) => Ok(id.clone()),
        Some(other) => Err(format!(
            "custom_id must be a string, not {}: quote it",
            kind(other)
        )),
    }
}

fn check_method(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(method)) if method == "POST" => None,
        None => Some("method is missing: set \"method\": \"POST\"".into()),
        Some(other) => Some(format!("method is {other}; only \"POST\" is supported")),
    }
}

fn check_url(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(url)) if url == CHAT_URL => None,
        None => Some(format!("url is missing: set \"url\": \"{CHAT_URL}\"")),
        Some(other) => Some(format!(
            "url {other} is not supported; the only supported url is \"{CHAT_URL}\""
        )),
    }
}

fn check_body(value: Option<&Value>) -> Option<String> {
    match value {
        None => Some("body is missing: set it to a chat completions request object".into()),
        Some(Value::Object(body)) => {
            check_messages(body.get("messages")).or_else(|| check_request(body))
        }
        Some(other) => Some(format!(
            "body must be a JSON object (a chat completions request), not {}",
            kind(other)
        )),
    }
}

/// The first problem in `body.messages`; one is enough to point the person at it.
fn check_messages(value: Option<&Value>) -> Option<String> {
    let messages = match value {
        None => {
            return Some(
                "body.messages is missing: give at least one {\"role\", \"content\"} message"
                    .into(),
            )
        }
        Some(Value::Array(messages)) => messages,
        Some(other) => {
            return Some(format!(
                "body.messages must be an array of messages, not {}",
                kind(other)
            ))
        }
    };
    if messages.is_empty() {
        return Some("body.messages is empty: give at least one message".into());
    }
    messages
        .iter()
        .enumerate()
        .find_map(|(i, message)| check_message(i, message))
}

fn check_message(i: usize, message: &Value) -> Option<String> {
    let Value::Object(message) = message else {
        return Some(format!(
            "body.messages[{i}] must be an object with role and content, not {}",
            kind(message)
        ));
    };
    let role = match message.get("role") {
        None => {
            return Some(format!(
                "body.messages[{i}].role is missing: use system, user or assistant"
            ))
        }
        Some(Value::String(role)) if matches!(role.as_str(), "system" | "user" | "assistant") => {
            None
        }
        Some(other) => Some(format!(
            "body.messages[{i}].role is {other}; use system, user or assistant"
        )),
    };
    let content = match message.get("content") {
        None => Some(format!(
            "body.messages[{i}].content is missing: give the message text"
        )),
        Some(Value::String(_)) => None,
        Some(other) => Some(format!(
            "body.messages[{i}].content must be a string, not {} (content parts are not supported)",
            kind(other)
        )),
    };
    role.or(content)
}

/// Whatever else in the body the router's chat request cannot read, naming the field:
/// each top-level field is tried on its own next to the (already checked) messages.
fn check_request(body: &Map<String, Value>) -> Option<String> {
    let whole = ChatRequest::deserialize(&Value::Object(body.clone())).err()?;
    let messages = body.get("messages").cloned().unwrap_or(Value::Null);
    let field = body
        .iter()
        .filter(|(key, _)| *key != "messages")
        .find_map(|(key, value)| {
            let mut probe = Map::new();
            probe.insert("messages".into(), messages.clone());
            probe.insert(key.clone(), value.clone());
            let error = ChatRequest::deserialize(&Value::Object(probe)).err()?;
            Some(format!("body.{key}: {error}"))
        });
    Some(field.unwrap_or_else(|| format!("body is not a valid chat request: {whole}")))
}

/// A JSON value's kind, as a person would name it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One result line, in OpenAI's Batch output shape. Successes go to the output file,
/// failures (HTTP or not) to the error file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputLine {
    /// `batch_req_` and 32 hex digits, new for every line.
    pub id: String,
    pub custom_id: String,
    /// The HTTP answer, when there was one (also for 4xx/5xx).
    pub response: Option<LineResponse>,
    /// Set when the request never got an HTTP answer.
    pub error: Option<LineFailure>,
}

/// The HTTP answer to one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineResponse {
    pub status_code: u16,
    pub request_id: String,
    /// A chat completion, or `{"error": {"message", "type", "code"}}` for a failure.
    pub body: Value,
}

/// Why a line got no HTTP answer at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFailure {
    pub code: String,
    pub message: String,
}

impl OutputLine {
    /// A 200 answer carrying the chat completion `body`.
    pub fn ok(custom_id: impl Into<String>, request_id: impl Into<String>, body: Value) -> Self {
        Self::http_error(custom_id, request_id, 200, body)
    }

    /// An HTTP answer with `status`; named for its use, it takes any status.
    pub fn http_error(
        custom_id: impl Into<String>,
        request_id: impl Into<String>,
        status: u16,
        body: Value,
    ) -> Self {
        Self {
            id: new_id(),
            custom_id: custom_id.into(),
            response: Some(LineResponse {
                status_code: status,
                request_id: request_id.into(),
                body,
            }),
            error: None,
        }
    }

    /// A failure with no HTTP answer (e.g. dead-lettered, or the route is gone).
    pub fn failed(
        custom_id: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            id: new_id(),
            custom_id: custom_id.into(),
            response: None,
            error: Some(LineFailure {
                code: code.into(),
                message: message.into(),
            }),
        }
    }

    /// Whether the line belongs in the error file: no HTTP answer, or one that is not 2xx.
    pub fn is_error(&self) -> bool {
        let ok_answer = matches!(&self.response, Some(r) if (200..300).contains(&r.status_code));
        self.error.is_some() || !ok_answer
    }
}

fn new_id() -> String {
    format!("batch_req_{}", uuid::Uuid::new_v4().simple())
}
