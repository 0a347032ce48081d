//! OpenAI chat request to Anthropic Messages request: the top-level parameters. Messages
//! and tools have their own modules.

use super::{
    messages, params, tools, RequestError, ResponseContext, ToAnthropic, Unhonoured,
    DEFAULT_MAX_TOKENS,
};
use serde_json::{json, Map, Value};

/// Anthropic thinking budgets (`budget_tokens`) for OpenAI's `reasoning_effort`;
/// `none` and `minimal` mean no thinking.
pub const THINKING_BUDGETS: [(&str, u64); 3] = [("low", 1024), ("medium", 4096), ("high", 16384)];

/// The OpenAI request's fields that are to be translated: null values and dropped
/// parameters read as absent.
pub(super) struct Fields<'a> {
    openai: &'a Map<String, Value>,
    dropped: Vec<String>,
}

impl<'a> Fields<'a> {
    pub(super) fn get(&self, name: &str) -> Option<&'a Value> {
        let value = self.openai.get(name).filter(|v| !v.is_null())?;
        (!self.dropped.iter().any(|d| d == name)).then_some(value)
    }
}

/// OpenAI chat request body to Anthropic Messages body, for provider `model`; `stream`
/// sets `stream`. Parameters Anthropic cannot honour are refused or dropped as
/// `unhonoured` says (see [`unhonoured_parameters`](super::unhonoured_parameters)).
pub fn request_to_anthropic(
    openai: &Map<String, Value>,
    model: &str,
    stream: bool,
    unhonoured: Unhonoured,
) -> Result<ToAnthropic, RequestError> {
    let mut findings = params::findings(openai);
    if unhonoured == Unhonoured::Refuse && !findings.is_empty() {
        return Err(findings.swap_remove(0).into());
    }
    let fields = Fields {
        openai,
        dropped: findings.into_iter().map(|u| u.parameter).collect(),
    };
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    let (system, messages) = messages::to_anthropic(fields.get("messages"))?;
    if let Some(system) = system {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), messages);
    let json_tool = tools::to_anthropic(&fields, &mut body)?;
    sampling(&fields, &mut body)?;
    limits(&fields, &mut body)?;
    if let Some(user) = fields.get("user") {
        let user = user
            .as_str()
            .ok_or_else(|| RequestError::invalid("user", "must be a string"))?;
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    let context = ResponseContext {
        json_tool,
        model: model.to_owned(),
        created: 0,
    };
    Ok(ToAnthropic { body, context })
}

/// `stop`, `temperature`, `top_p` and `top_k`.
fn sampling(fields: &Fields, body: &mut Map<String, Value>) -> Result<(), RequestError> {
    let stop = match fields.get("stop") {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => list.clone(),
        Some(_) => return Err(RequestError::invalid("stop", "must be a string or strings")),
        None => Vec::new(),
    };
    if !stop.is_empty() {
        body.insert("stop_sequences".into(), stop.into());
    }
    for name in ["temperature", "top_p", "top_k"] {
        if let Some(value) = fields.get(name) {
            if !value.is_number() {
                return Err(RequestError::invalid(name, "must be a number"));
            }
            body.insert(name.into(), value.clone());
        }
    }
    Ok(())
}

/// `max_tokens` (always sent) and the thinking budget, which has to fit below it.
fn limits(fields: &Fields, body: &mut Map<String, Value>) -> Result<(), RequestError> {
    let name = ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find(|name| fields.get(name).is_some());
    let mut max_tokens = match name {
        Some(name) => fields
            .get(name)
            .and_then(Value::as_u64)
            .filter(|&n| n > 0)
            .ok_or_else(|| RequestError::invalid(name, "must be a positive integer"))?,
        None => DEFAULT_MAX_TOKENS,
    };
    let effort = fields.get("reasoning_effort").and_then(Value::as_str);
    let budget = THINKING_BUDGETS
        .iter()
        .find(|(level, _)| Some(*level) == effort)
        .map(|&(_, budget)| budget);
    if let Some(budget) = budget {
        // Anthropic counts thinking inside `max_tokens` and wants room left for the answer.
        if max_tokens <= budget {
            max_tokens += budget;
        }
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    body.insert("max_tokens".into(), max_tokens.into());
    Ok(())
}
