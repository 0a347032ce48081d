//! Which OpenAI request parameters Anthropic cannot honour, judged before anything is
//! translated and in one fixed order, so a refusal names the same parameter every time.

use super::{Unsupported, ANTHROPIC};
use serde_json::{Map, Value};

/// Parameters judged by value, in the order they are reported.
const JUDGED: &[&str] = &[
    "n",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "temperature",
    "response_format",
    "reasoning_effort",
];

/// Parameters that are always mapped, or harmless to leave out (`store`, `metadata`,
/// `service_tier` and `stream_options` only concern OpenAI's side).
const ACCEPTED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "store",
    "metadata",
    "service_tier",
    "parallel_tool_calls",
    "tools",
    "tool_choice",
    "stop",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "user",
];

/// Every parameter of `openai` that Anthropic cannot honour, in the order a refusal
/// would name them: [`JUDGED`] first, then unknown fields alphabetically.
pub fn unhonoured_parameters(openai: &Map<String, Value>) -> Vec<String> {
    findings(openai).into_iter().map(|u| u.parameter).collect()
}

/// [`unhonoured_parameters`] with the reason for each.
pub(super) fn findings(openai: &Map<String, Value>) -> Vec<Unsupported> {
    let judged = JUDGED.iter().filter_map(|&name| {
        let value = openai.get(name)?;
        let detail = judge(name, value, openai)?;
        Some(Unsupported::new(name, value, ANTHROPIC, detail))
    });
    let mut unknown: Vec<(&String, &Value)> = openai
        .iter()
        .filter(|(k, _)| !JUDGED.contains(&k.as_str()) && !ACCEPTED.contains(&k.as_str()))
        .collect();
    unknown.sort_by_key(|(k, _)| *k);
    let unknown = unknown.into_iter().map(|(name, value)| {
        let detail = "llm-router does not know this parameter, so it cannot pass it on; \
                      remove it, or let the router drop unhonoured parameters";
        Unsupported::new(name, value, ANTHROPIC, detail)
    });
    judged.chain(unknown).collect()
}

/// Why `value` of `name` cannot be honoured, or `None` when it can (null and the
/// OpenAI defaults always can).
fn judge(name: &str, value: &Value, openai: &Map<String, Value>) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let refused = |detail: &str| Some(detail.to_owned());
    match name {
        "n" if value.as_u64() != Some(1) => refused(
            "Anthropic returns one choice per request; send `n` = 1 and repeat the request \
             for more",
        ),
        "logprobs" if value != &Value::Bool(false) => {
            refused("Anthropic does not return log probabilities; leave `logprobs` out")
        }
        "top_logprobs" if value.as_u64() != Some(0) => {
            refused("Anthropic does not return log probabilities; leave `top_logprobs` out")
        }
        "presence_penalty" | "frequency_penalty" if value.as_f64() != Some(0.0) => {
            refused("Anthropic has no repetition penalties; send 0 or leave it out")
        }
        "logit_bias" if !value.as_object().is_some_and(Map::is_empty) => {
            refused("Anthropic cannot bias tokens; leave `logit_bias` out")
        }
        "seed" => refused("Anthropic sampling cannot be seeded; leave `seed` out"),
        "audio" => refused("Anthropic does not produce audio; leave `audio` out"),
        "modalities" if wants_audio(value) => {
            refused("Anthropic does not produce audio; ask for the `text` modality only")
        }
        "prediction" => refused("Anthropic has no predicted outputs; leave `prediction` out"),
        "web_search_options" => refused(
            "OpenAI web search is not mapped to Anthropic's server tools; leave it out or \
             route to an OpenAI endpoint",
        ),
        "temperature" if value.as_f64().is_some_and(|t| t > 1.0) => refused(
            "Anthropic accepts a temperature from 0 to 1 (OpenAI's range is 0 to 2); \
             send at most 1",
        ),
        "response_format" => judge_response_format(value, openai),
        "reasoning_effort" => judge_reasoning(value, openai),
        _ => None,
    }
}

fn wants_audio(modalities: &Value) -> bool {
    modalities
        .as_array()
        .is_some_and(|m| m.iter().any(|x| x == "audio"))
}

/// The `type` of a `response_format` that asks for JSON, if it does.
pub(super) fn json_format(response_format: &Value) -> Option<&str> {
    super::str_at(response_format, "type").filter(|t| *t == "json_object" || *t == "json_schema")
}

fn judge_response_format(value: &Value, openai: &Map<String, Value>) -> Option<String> {
    let kind = super::str_at(value, "type");
    if !matches!(kind, Some("text" | "json_object" | "json_schema")) {
        return Some(
            "Anthropic endpoints take a `response_format` of type `text`, `json_object` or \
             `json_schema`"
                .to_owned(),
        );
    }
    let has_tools = openai
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    (json_format(value).is_some() && has_tools).then(|| {
        "a JSON response is made by forcing one tool, which leaves the caller's own `tools` \
         unusable; send either `response_format` or `tools`"
            .to_owned()
    })
}

fn judge_reasoning(value: &Value, openai: &Map<String, Value>) -> Option<String> {
    match value.as_str() {
        Some("none" | "minimal") => None,
        Some("low" | "medium" | "high") => thinking_conflict(openai).map(|what| {
            format!(
                "Anthropic extended thinking cannot be combined with {what}; leave out \
                 `reasoning_effort` or {what}"
            )
        }),
        _ => Some(
            "Anthropic thinking budgets exist for `low`, `medium` and `high` (and `none` or \
             `minimal` for no thinking)"
                .to_owned(),
        ),
    }
}

/// What in the request Anthropic refuses next to extended thinking, if anything.
fn thinking_conflict(openai: &Map<String, Value>) -> Option<&'static str> {
    let present = |name: &str| openai.get(name).filter(|v| !v.is_null());
    let forced = present("tool_choice").is_some_and(|c| c == "required" || c.is_object())
        || present("response_format").is_some_and(|f| json_format(f).is_some());
    if forced {
        return Some("a forced tool (`tool_choice` or a JSON `response_format`)");
    }
    if present("temperature").is_some_and(|t| t.as_f64() != Some(1.0)) {
        return Some("a `temperature` other than 1");
    }
    if present("top_k").is_some() {
        return Some("`top_k`");
    }
    if present("top_p").is_some_and(|p| p.as_f64().is_some_and(|p| p < 0.95)) {
        return Some("a `top_p` below 0.95");
    }
    None
}
