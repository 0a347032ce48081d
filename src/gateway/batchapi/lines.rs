//! Checking a batch's input lines: the batch format's rules plus one of our own (every
//! line's `body.model` names a route, or `route/model`), in one pass over the lines.
//!
//! Why one pass, off the async runtime: a file at the limits is 50,000 lines and 200 MiB;
//! parsing it once per check (and merging the problems line by line) pinned a runtime
//! thread for as long as the file was big. [`check_blocking`] runs on the blocking pool.

use super::error::BatchApiError;
use super::record::LineProblem;
use crate::batch::format::{self, JobLine};
use crate::batch::limits::BatchLimits;
use crate::config::models::ModelRoute;
use crate::gateway::routes::RouteTable;
use serde_json::Value;

/// Most line problems kept in a failed batch's `errors.data`.
const MAX_PROBLEMS: usize = 1000;

/// A file whose every line can be queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The job's route: the first line's.
    pub route: String,
    /// Each line with `body.model` set to its route, so workers see a route they serve.
    pub lines: Vec<JobLine>,
}

/// Checks the file on the blocking pool. Err is a refusal of the request (a limit);
/// `Ok(Err)` is a file with bad lines, which makes a failed batch as OpenAI does.
pub async fn check_blocking(
    bytes: Vec<u8>,
    endpoint: String,
    table: RouteTable,
    limits: BatchLimits,
) -> Result<Result<Checked, Vec<LineProblem>>, BatchApiError> {
    let checked = tokio::task::spawn_blocking(move || {
        let Ok(text) = String::from_utf8(bytes) else {
            let message = "the file is not UTF-8 text: save it as UTF-8 JSONL";
            return Ok(Err(vec![problem(None, message.into())]));
        };
        limits.check(&text)?;
        Ok(check(&text, &endpoint, &table))
    })
    .await;
    match checked {
        Ok(result) => result.map_err(|e: crate::batch::limits::LimitError| {
            BatchApiError::bad_request(e.to_string(), Some("input_file_id"))
        }),
        Err(e) => Err(BatchApiError::Broker(format!(
            "checking the input file stopped ({e}); try the request again"
        ))),
    }
}

/// Checks every line; a line's problems are all in one entry, lines in file order.
pub fn check(text: &str, endpoint: &str, table: &RouteTable) -> Result<Checked, Vec<LineProblem>> {
    let mut route_of = |body: &mut Value| route_body(body, table);
    let parsed = format::parse_with(text, &mut route_of);
    let mut problems: Vec<LineProblem> = parsed
        .errors
        .into_iter()
        .map(|e| problem((e.line > 0).then_some(e.line), e.reason))
        .collect();
    for line in parsed.lines.iter().filter(|l| l.api.path() != endpoint) {
        problems.push(problem(
            Some(line.line),
            format!(
                "url \"{}\" does not match the batch's endpoint \"{endpoint}\": one batch calls one endpoint",
                line.api.path()
            ),
        ));
    }
    if problems.is_empty() {
        let route = parsed.lines.first().map(|l| l.route.clone());
        return Ok(Checked {
            route: route.unwrap_or_default(),
            lines: parsed.lines,
        });
    }
    problems.sort_by_key(|p| p.line.unwrap_or(0));
    problems.truncate(MAX_PROBLEMS);
    Err(problems)
}

/// Where `body.model` sends the line, read as the gateway reads it; the model is then
/// spelled as its route or `route/model`, so workers see a name they serve.
fn route_body(body: &mut Value, table: &RouteTable) -> Result<ModelRoute, String> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(format!(
                "body.model is missing: name a route ({}) or route/model",
                table.names()
            ))
        }
    };
    let to = table
        .resolve(&model)
        .map_err(|e| format!("body.model: {e}"))?;
    let route = to.route.name.clone();
    let canonical = match &to.pinned {
        Some(pin) => format!("{route}/{pin}"),
        None => route.clone(),
    };
    if canonical != model {
        body["model"] = Value::String(canonical);
    }
    Ok(ModelRoute {
        route,
        pin: to.pinned.clone(),
    })
}

pub fn problem(line: Option<usize>, message: String) -> LineProblem {
    LineProblem {
        code: "invalid_request".to_owned(),
        message,
        param: None,
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::format::CHAT_URL;
    use serde_json::json;

    fn table() -> RouteTable {
        let config = crate::config::load_with_env(None, &std::collections::HashMap::new());
        RouteTable::new(&config.unwrap_or_else(|e| unreachable!("default config: {e}")))
    }

    fn line(id: &str, model: Option<&str>) -> String {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        if let Some(m) = model {
            body["model"] = json!(m);
        }
        json!({"custom_id": id, "method": "POST", "url": CHAT_URL, "body": body}).to_string()
    }

    #[test]
    fn models_pick_routes_and_pins() {
        let text = [
            line("a", Some("claude")),
            line("b", Some("openai/gpt-4.1-mini")),
        ]
        .join("\n");
        let checked = check(&text, CHAT_URL, &table()).ok();
        let checked = checked.unwrap_or_else(|| unreachable!("both lines are good"));
        assert_eq!(checked.route, "claude");
        let routes: Vec<&str> = checked.lines.iter().map(|l| l.route.as_str()).collect();
        assert_eq!(routes, ["claude", "openai"]);
        let pins: Vec<Option<&str>> = checked.lines.iter().map(|l| l.pin.as_deref()).collect();
        assert_eq!(pins, [None, Some("gpt-4.1-mini")]);
        assert_eq!(checked.lines[1].body["model"], "openai/gpt-4.1-mini");
    }

    #[test]
    fn every_bad_line_is_named_once() {
        let text = [
            line("a", Some("openai")),
            line("b", None),
            "not json".to_owned(),
            line("c", Some("gpt-4o")),
            line("a", Some("openai")),
            line("d", None).replace("\"custom_id\":\"d\",", ""),
        ]
        .join("\n");
        let problems = check(&text, CHAT_URL, &table()).err().unwrap_or_default();
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            [Some(2), Some(3), Some(4), Some(5), Some(6)],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("body.model is missing"));
        assert!(problems[2].message.contains("unknown model 'gpt-4o'"));
        assert!(problems[3].message.contains("duplicate custom_id"));
        // Both of line 6's problems, in one entry.
        assert!(problems[4].message.contains("custom_id is missing"));
        assert!(problems[4].message.contains("body.model is missing"));
    }

    #[tokio::test]
    async fn limits_refuse_the_request_and_a_file_at_them_is_checked() {
        let limits = |max_lines| BatchLimits {
            max_lines,
            ..BatchLimits::openai(crate::gateway::batchapi::LIMIT_FLAGS)
        };
        let text = [line("a", Some("openai")), line("b", Some("claude"))].join("\n");
        let at = check_blocking(
            text.clone().into_bytes(),
            CHAT_URL.into(),
            table(),
            limits(2),
        );
        assert!(matches!(at.await, Ok(Ok(c)) if c.lines.len() == 2));
        let over = check_blocking(text.into_bytes(), CHAT_URL.into(), table(), limits(1)).await;
        let message = over.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(message, "the file has 2 requests; a batch takes at most 1: split it into smaller files, or raise the limit with --batch-max-lines");
    }
}
