//! The batch file format: input lines are checked all at once so the person fixing a file
//! sees every problem in one pass; output lines follow OpenAI's Batch output shape so
//! existing tooling can read our results.

use crate::config::models::{ModelNames, ModelRoute};
pub use crate::protocol::batch::{LineFailure, LineResponse, OutputLine};
use crate::provider::{Api, LlmRequest};

use serde_json::{Map, Value};
use std::collections::HashMap;

/// The longest line we accept, in bytes (OpenAI's per-request limit is of this order).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The longest `custom_id`, in characters.
pub const MAX_CUSTOM_ID_CHARS: usize = 512;
/// The endpoints a batch line may call, as in OpenAI's Batch API.
pub const CHAT_URL: &str = "/v1/chat/completions";
pub const EMBEDDINGS_URL: &str = "/v1/embeddings";

/// One valid input line, ready to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct JobLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub custom_id: String,
    /// The API its `url` names.
    pub api: Api,
    /// The route this line goes to: where `body.model` says, else the job's route.
    pub route: String,
    /// The one target model to ask, when `body.model` named one.
    pub pin: Option<String>,
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

/// Picks a line's route (and pinned model) from its body, and may rewrite the body to
/// match; `Err` says why the line cannot be routed.
pub type RouteOf<'a> = dyn FnMut(&mut Value) -> Result<ModelRoute, String> + 'a;

/// How a CLI job reads `body.model`: as everywhere else (see [`ModelNames::resolve`]),
/// with the job's `route` first among the routes serving a model, and a line without a
/// model going to `route`.
pub fn job_routes<'a>(
    names: &'a ModelNames,
    route: &'a str,
) -> impl Fn(Option<&str>) -> Result<ModelRoute, String> + 'a {
    move |model| match model {
        None => Ok(ModelRoute {
            route: route.to_owned(),
            pin: None,
        }),
        Some(model) => names
            .resolve(model, Some(route))
            .map_err(|e| format!("body.model: {e}")),
    }
}

/// Reads a whole file's text; `route_of` says where each line goes from its `body.model`
/// (None when absent, null or empty).
pub fn parse(text: &str, route_of: &dyn Fn(Option<&str>) -> Result<ModelRoute, String>) -> Parsed {
    parse_with(text, &mut |body: &mut Value| route_of(line_model(body)))
}

/// Reads a whole file's text in one pass: each line is parsed once, and `route_of` sees
/// every line body that is a JSON object, before the body is checked.
pub fn parse_with(text: &str, route_of: &mut RouteOf<'_>) -> Parsed {
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
        match check_line(index + 1, raw, &mut seen, route_of) {
            Ok(line) => parsed.lines.push(line),
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

/// A line body's `model` as a route reader takes it: None when absent, null, empty or
/// not a string (the body check reports a wrong type).
fn line_model(body: &Value) -> Option<&str> {
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Some(m.as_str()),
        _ => None,
    }
}

/// Checks one non-blank line.
fn check_line(
    line: usize,
    raw: &str,
    seen: &mut HashMap<String, usize>,
    route_of: &mut RouteOf<'_>,
) -> Result<JobLine, LineError> {
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
    let api = match check_url(object.get("url")) {
        Ok(api) => api,
        Err(reason) => {
            reasons.push(reason);
            Api::Chat
        }
    };
    // A body that is not an object gets no route; the body check says what is wrong.
    let to = match object.get_mut("body") {
        Some(body @ Value::Object(_)) => Some(route_of(body)),
        _ => None,
    };
    reasons.extend(check_body(api, object.get("body")));
    if let Some(Err(reason)) = &to {
        reasons.push(reason.clone());
    }
    match (custom_id, object.remove("body"), to) {
        (Some(custom_id), Some(body), Some(Ok(to))) if reasons.is_empty() => Ok(JobLine {
            line,
            custom_id,
            api,
            route: to.route,
            pin: to.pin,
            body,
        }),
        (custom_id, _, _) => Err(fail(custom_id, reasons.join("; "))),
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

fn check_url(value: Option<&Value>) -> Result<Api, String> {
    match value {
        Some(Value::String(url)) => Api::of_path(url).ok_or_else(|| {
            format!("url \"{url}\" is not supported; use \"{CHAT_URL}\" or \"{EMBEDDINGS_URL}\"")
        }),
        None => Err(format!("url is missing: set \"url\": \"{CHAT_URL}\"")),
        Some(other) => Err(format!(
            "url must be a string, not {}: use \"{CHAT_URL}\" or \"{EMBEDDINGS_URL}\"",
            kind(other)
        )),
    }
}

fn check_body(api: Api, value: Option<&Value>) -> Option<String> {
    let what = match api {
        Api::Chat => "a chat completions request",
        Api::Embeddings => "an embeddings request",
    };
    match value {
        None => Some(format!("body is missing: set it to {what} object")),
        Some(Value::Object(body)) => match api {
            Api::Chat => check_messages(body.get("messages")).or_else(|| check_request(api, body)),
            Api::Embeddings => check_request(api, body),
        },
        Some(other) => Some(format!(
            "body must be a JSON object ({what}), not {}",
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

/// The roles OpenAI's chat API takes.
const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

fn check_message(i: usize, message: &Value) -> Option<String> {
    let Value::Object(message) = message else {
        return Some(format!(
            "body.messages[{i}] must be an object with role and content, not {}",
            kind(message)
        ));
    };
    let roles = ROLES.join(", ");
    let role = match message.get("role") {
        None => return Some(format!("body.messages[{i}].role is missing: use {roles}")),
        Some(Value::String(role)) if ROLES.contains(&role.as_str()) => role.as_str(),
        Some(other) => return Some(format!("body.messages[{i}].role is {other}; use {roles}")),
    };
    match message.get("content") {
        Some(Value::String(_) | Value::Array(_)) => None,
        // An assistant turn that only calls tools has no content.
        None | Some(Value::Null) if role == "assistant" && message.contains_key("tool_calls") => {
            None
        }
        None | Some(Value::Null) => Some(format!(
            "body.messages[{i}].content is missing: give the message text or parts"
        )),
        Some(other) => Some(format!(
            "body.messages[{i}].content must be a string or a list of parts, not {}",
            kind(other)
        )),
    }
}

/// Whatever else in the body the router itself reads and cannot (the provider judges
/// the rest), naming the field.
fn check_request(api: Api, body: &Map<String, Value>) -> Option<String> {
    LlmRequest::new(api, body.clone())
        .err()
        .map(|e| match e.param {
            Some(param) => format!("body.{param}: {}", e.message),
            None => format!("body: {}", e.message),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every line to the route "default", pinned to whatever model it names.
    fn any_model(model: Option<&str>) -> Result<ModelRoute, String> {
        Ok(ModelRoute {
            route: "default".to_owned(),
            pin: model.map(str::to_owned),
        })
    }

    fn parse_text(text: &str) -> Parsed {
        parse(text, &any_model)
    }

    fn good(id: &str) -> String {
        json!({"custom_id": id, "method": "POST", "url": CHAT_URL,
               "body": {"messages": [{"role": "user", "content": "hi"}]}})
        .to_string()
    }

    /// The single error of a one-line file whose line is `line`.
    fn only_error(line: &str) -> LineError {
        let parsed = parse_text(line);
        assert!(parsed.lines.is_empty(), "{parsed:?}");
        assert_eq!(parsed.errors.len(), 1, "{parsed:?}");
        parsed.errors[0].clone()
    }

    /// A one-line file with `field` set to `value` (or removed when `value` is None).
    fn with_field(field: &str, value: Option<Value>) -> String {
        let mut line: Value = serde_json::from_str(&good("a")).expect("json");
        let object = line.as_object_mut().expect("object");
        match value {
            Some(value) => object.insert(field.to_string(), value),
            None => object.remove(field),
        };
        line.to_string()
    }

    fn with_body(body: Value) -> String {
        with_field("body", Some(body))
    }

    fn reason_of(line: &str) -> String {
        only_error(line).reason
    }

    #[test]
    fn a_good_line_keeps_its_body_and_the_job_route() {
        let parsed = parse_text(&good("a"));
        assert!(parsed.errors.is_empty(), "{parsed:?}");
        let line = &parsed.lines[0];
        assert_eq!((line.line, line.custom_id.as_str()), (1, "a"));
        assert_eq!(line.route, "default");
        assert_eq!(
            line.body,
            json!({"messages": [{"role": "user", "content": "hi"}]})
        );
    }

    #[test]
    fn extra_openai_fields_are_kept_and_model_is_optional() {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "s"},
            {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}],
            "max_tokens": 10, "temperature": 0.5, "seed": 7, "logprobs": false});
        let parsed = parse_text(&with_body(body.clone()));
        assert!(parsed.errors.is_empty(), "{parsed:?}");
        assert_eq!(parsed.lines[0].body, body);
        assert_eq!(parsed.lines[0].route, "default");
    }

    #[test]
    fn openai_shapes_of_stop_and_model_are_accepted() {
        for body in [
            json!({"model": null, "messages": [{"role": "user", "content": "x"}], "stop": "\n"}),
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stop": null}),
            json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]}),
        ] {
            let parsed = parse_text(&with_body(body.clone()));
            assert!(parsed.errors.is_empty(), "{body}: {parsed:?}");
            assert_eq!(parsed.lines[0].body, body);
            assert_eq!(
                parsed.lines[0].route, "default",
                "a null model is the job's route"
            );
        }
        let body = json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": "5"});
        let reason = reason_of(&with_body(body));
        assert!(reason.starts_with("body.max_tokens: "), "{reason}");
    }

    fn default_names() -> ModelNames {
        let config = crate::config::load_with_env(None, &HashMap::new());
        ModelNames::new(&config.unwrap_or_else(|e| unreachable!("default config: {e}")))
    }

    fn with_model(id: &str, model: &str) -> String {
        good(id).replace(
            "\"messages\"",
            &format!("\"model\":\"{model}\",\"messages\""),
        )
    }

    #[test]
    fn body_model_is_a_route_a_pin_or_a_served_model_with_the_job_route_first() {
        let names = default_names();
        let text = [
            with_model("a", "claude"),
            with_model("b", "openai/gpt-4.1-mini"),
            with_model("c", "gpt-4o-mini"),
            good("d"),
        ]
        .join("\n");
        let parsed = parse(&text, &job_routes(&names, "sentiment"));
        assert!(parsed.errors.is_empty(), "{parsed:?}");
        let to: Vec<(&str, Option<&str>)> = parsed
            .lines
            .iter()
            .map(|l| (l.route.as_str(), l.pin.as_deref()))
            .collect();
        let want = [
            ("claude", None),
            ("openai", Some("gpt-4.1-mini")),
            ("sentiment", Some("gpt-4o-mini")),
            ("sentiment", None),
        ];
        assert_eq!(to, want);
    }

    #[test]
    fn a_model_no_route_serves_is_a_bad_line() {
        let names = default_names();
        let text = [with_model("a", "gpt-4o"), with_model("b", "openai/nope")].join("\n");
        let parsed = parse(&text, &job_routes(&names, "openai"));
        assert!(parsed.lines.is_empty(), "{parsed:?}");
        let reasons: Vec<&str> = parsed.errors.iter().map(|e| e.reason.as_str()).collect();
        assert!(
            reasons[0].starts_with("body.model: unknown model 'gpt-4o': name a route (claude,"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].starts_with("body.model: route 'openai' has no target model 'nope'"),
            "{reasons:?}"
        );
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = [good("a"), "nope".into(), good("b"), "[1]".into(), good("c")].join("\n");
        let parsed = parse_text(&text);
        let ids: Vec<&str> = parsed.lines.iter().map(|l| l.custom_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn not_json_says_so() {
        let reason = reason_of("{\"custom_id\": ");
        assert!(reason.contains("not valid JSON"), "{reason}");
    }

    #[test]
    fn not_an_object_says_what_it_is() {
        let reason = reason_of("\"just a string\"");
        assert!(reason.contains("a string"), "{reason}");
        assert!(
            reason.contains("custom_id, method, url and body"),
            "{reason}"
        );
    }

    #[test]
    fn custom_id_missing() {
        let error = only_error(&with_field("custom_id", None));
        assert!(error.reason.contains("custom_id is missing"), "{error:?}");
        assert_eq!(error.custom_id, None);
    }

    #[test]
    fn custom_id_not_a_string() {
        let reason = reason_of(&with_field("custom_id", Some(json!(17))));
        assert!(
            reason.contains("custom_id must be a string, not a number"),
            "{reason}"
        );
    }

    #[test]
    fn custom_id_empty() {
        let reason = reason_of(&with_field("custom_id", Some(json!(""))));
        assert!(reason.contains("custom_id is empty"), "{reason}");
    }

    #[test]
    fn custom_id_up_to_512_chars_and_no_longer() {
        let longest = "é".repeat(MAX_CUSTOM_ID_CHARS);
        assert!(parse_text(&good(&longest)).errors.is_empty());
        let reason = reason_of(&good(&"x".repeat(MAX_CUSTOM_ID_CHARS + 1)));
        assert!(
            reason.contains("custom_id is 513 characters long; the limit is 512"),
            "{reason}"
        );
    }

    #[test]
    fn duplicate_custom_id_names_the_first_line() {
        let text = [good("a"), good("b"), good("a")].join("\n");
        let parsed = parse_text(&text);
        assert_eq!(parsed.lines.len(), 2);
        let error = &parsed.errors[0];
        assert_eq!((error.line, error.custom_id.as_deref()), (3, Some("a")));
        assert!(
            error
                .reason
                .contains("duplicate custom_id: line 1 already uses it"),
            "{error:?}"
        );
    }

    #[test]
    fn method_must_be_post() {
        let reason = reason_of(&with_field("method", Some(json!("GET"))));
        assert!(
            reason.contains("method is \"GET\"; only \"POST\" is supported"),
            "{reason}"
        );
        let reason = reason_of(&with_field("method", None));
        assert!(reason.contains("method is missing"), "{reason}");
    }

    #[test]
    fn url_must_be_chat_completions_and_the_reason_names_it() {
        let reason = reason_of(&with_field("url", Some(json!("/v1/images/generations"))));
        assert!(
            reason.contains("url \"/v1/images/generations\" is not supported"),
            "{reason}"
        );
        assert!(reason.contains("\"/v1/chat/completions\""), "{reason}");
        assert!(reason.contains("\"/v1/embeddings\""), "{reason}");
        let reason = reason_of(&with_field("url", None));
        assert!(reason.contains("url is missing"), "{reason}");
    }

    #[test]
    fn body_missing_or_not_an_object() {
        let reason = reason_of(&with_field("body", None));
        assert!(reason.contains("body is missing"), "{reason}");
        let reason = reason_of(&with_body(json!("hello")));
        assert!(reason.contains("body must be a JSON object"), "{reason}");
    }

    #[test]
    fn messages_missing_empty_or_not_an_array() {
        let cases = [
            (json!({"model": "m"}), "body.messages is missing"),
            (json!({"messages": []}), "body.messages is empty"),
            (json!({"messages": "hi"}), "body.messages must be an array"),
        ];
        for (body, want) in cases {
            let reason = reason_of(&with_body(body));
            assert!(reason.contains(want), "{reason} should contain {want}");
        }
    }

    #[test]
    fn tool_conversations_images_and_embeddings_lines_are_accepted() {
        let agent = json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        let parsed = parse_text(&with_body(agent));
        assert!(parsed.errors.is_empty(), "{parsed:?}");
        let line = json!({"custom_id": "e", "method": "POST", "url": EMBEDDINGS_URL,
            "body": {"model": "m", "input": ["a", "b"], "dimensions": 8}});
        let parsed = parse_text(&line.to_string());
        assert!(parsed.errors.is_empty(), "{parsed:?}");
        assert_eq!(parsed.lines[0].api, Api::Embeddings);
        let line = json!({"custom_id": "e", "method": "POST", "url": EMBEDDINGS_URL,
            "body": {"model": "m", "messages": [{"role": "user", "content": "x"}]}});
        assert!(reason_of(&line.to_string()).contains("body.input"));
    }

    #[test]
    fn a_message_needs_a_known_role_and_string_content() {
        let cases = [
            (json!("hi"), "body.messages[1] must be an object"),
            (json!({"content": "x"}), "body.messages[1].role is missing"),
            (
                json!({"role": "robot", "content": "x"}),
                "body.messages[1].role is \"robot\"",
            ),
            (
                json!({"role": "user"}),
                "body.messages[1].content is missing",
            ),
            (
                json!({"role": "user", "content": 5}),
                "body.messages[1].content must be a string or a list of parts",
            ),
        ];
        for (message, want) in cases {
            let body = json!({"messages": [{"role": "user", "content": "ok"}, message]});
            let reason = reason_of(&with_body(body));
            assert!(reason.contains(want), "{reason} should contain {want}");
        }
    }

    #[test]
    fn other_unreadable_body_fields_are_named() {
        let body = json!({"messages": [{"role": "user", "content": "x"}], "seed": 1,
                          "max_completion_tokens": "hot"});
        let reason = reason_of(&with_body(body));
        assert!(
            reason.starts_with("body.max_completion_tokens: "),
            "{reason}"
        );
    }

    #[test]
    fn all_problems_of_one_line_are_listed() {
        let line =
            json!({"custom_id": "a", "method": "GET", "url": "/x", "body": {"messages": []}});
        let error = only_error(&line.to_string());
        assert_eq!(error.custom_id.as_deref(), Some("a"));
        for want in ["method is", "url \"/x\"", "body.messages is empty"] {
            assert!(
                error.reason.contains(want),
                "{} should contain {want}",
                error.reason
            );
        }
    }

    #[test]
    fn a_line_over_1_mib_is_rejected_without_parsing() {
        let padding = "x".repeat(MAX_LINE_BYTES);
        let big = with_body(json!({"messages": [{"role": "user", "content": padding}]}));
        let reason = reason_of(&big);
        assert!(
            reason.contains("the limit is 1048576 bytes (1 MiB)"),
            "{reason}"
        );
    }

    #[test]
    fn blank_lines_are_skipped_and_numbers_still_count_them() {
        let text = format!("\n  \t\n{}\n\n{}\n", good("a"), "oops");
        let parsed = parse_text(&text);
        assert_eq!(parsed.lines[0].line, 3);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 5);
    }

    #[test]
    fn a_file_without_lines_is_one_error_at_line_0() {
        for text in ["", "\n \r\n", "\u{feff}"] {
            let parsed = parse_text(text);
            assert!(parsed.lines.is_empty());
            assert_eq!(parsed.errors.len(), 1, "{text:?}");
            assert_eq!(parsed.errors[0].line, 0);
            assert!(parsed.errors[0].reason.contains("no requests"));
        }
    }

    #[test]
    fn crlf_and_a_bom_are_accepted() {
        let text = format!("\u{feff}{}\r\n{}\r\n", good("a"), good("b"));
        let parsed = parse_text(&text);
        assert!(parsed.errors.is_empty(), "{parsed:?}");
        assert_eq!(parsed.lines.len(), 2);
        assert_eq!(parsed.lines[1].line, 2);
    }

    #[test]
    fn summary_caps_the_list_and_counts_the_rest() {
        let error = |line, custom_id: Option<&str>| LineError {
            line,
            custom_id: custom_id.map(str::to_string),
            reason: "bad".into(),
        };
        let errors = [
            error(0, None),
            error(3, Some("a")),
            error(4, None),
            error(9, None),
        ];
        assert_eq!(
            summary(&errors, 2),
            "file: bad\nline 3 (custom_id \"a\"): bad\n… and 2 more"
        );
        assert_eq!(summary(&errors[2..], 5), "line 4: bad\nline 9: bad");
    }

    #[test]
    fn output_lines_have_openai_batch_shape() {
        let ok = OutputLine::ok("a", "req-1", json!({"id": "chatcmpl-1"}));
        let value = serde_json::to_value(&ok).expect("serialize");
        let id = value["id"].as_str().expect("id");
        let hex = id.strip_prefix("batch_req_").expect("prefix");
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            value,
            json!({"id": id, "custom_id": "a", "error": null, "response":
                {"status_code": 200, "request_id": "req-1", "body": {"id": "chatcmpl-1"}}})
        );
        assert!(!ok.is_error());
        let again = OutputLine::ok("a", "req-1", json!({}));
        assert_ne!(again.id, ok.id);
    }

    #[test]
    fn http_failures_and_failures_without_answer_are_errors() {
        let body =
            json!({"error": {"message": "bad", "type": "invalid_request_error", "code": null}});
        let http = OutputLine::http_error("a", "req-2", 400, body.clone());
        assert!(http.is_error());
        let value = serde_json::to_value(&http).expect("serialize");
        assert_eq!(value["response"]["status_code"], 400);
        assert_eq!(value["response"]["body"], body);
        assert_eq!(value["error"], Value::Null);

        let failed = OutputLine::failed("b", "dead_lettered", "gave up after 5 tries");
        assert!(failed.is_error());
        let value = serde_json::to_value(&failed).expect("serialize");
        assert_eq!(value["response"], Value::Null);
        assert_eq!(
            value["error"],
            json!({"code": "dead_lettered", "message": "gave up after 5 tries"})
        );
        assert!(!OutputLine::http_error("c", "r", 201, json!({})).is_error());
        let back: OutputLine = serde_json::from_value(value).expect("deserialize");
        assert_eq!(back, failed);
    }
}
