//! `POST /v1/batches`: the input file is checked with the batch format's rules plus one of
//! our own (every line's `body.model` names a route, `route/model` or a served model), then queued as a
//! batch job. A file with bad lines gives a `failed` batch whose `errors.data` names every
//! line, as OpenAI does; nothing of it is queued.

use super::error::BatchApiError;
use super::files::{self, FileId};
use super::record::{self, BatchEvent, LineProblem};
use super::{view, BatchApi};
use crate::batch::format::{self, CHAT_URL, EMBEDDINGS_URL};
use crate::batch::job::{self, JobRecord};
use crate::batch::submit::{self, SubmitError, SubmitOptions};
use crate::config::models::ModelRoute;
use crate::gateway::routes::RouteTable;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The only completion window offered (OpenAI's).
pub const COMPLETION_WINDOW: &str = "24h";
/// Provider attempts per line before it is dead-lettered (the CLI's default).
const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Most line problems kept in a failed batch's `errors.data`.
const MAX_PROBLEMS: usize = 1000;

/// The request body.
#[derive(Debug, Deserialize)]
pub struct CreateBatch {
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Creates the batch and returns its object.
pub async fn create(api: &BatchApi, request: CreateBatch) -> Result<Value, BatchApiError> {
    check_request(&request)?;
    let client = api.client()?;
    let file = match files::parse_id(&request.input_file_id) {
        Some(FileId::Upload(id)) => files::find(client, id).await?,
        _ => None,
    }
    .ok_or_else(|| BatchApiError::NoFile(request.input_file_id.clone()))?;
    if file.purpose != "batch" {
        return Err(BatchApiError::bad_request(
            format!(
                "file {} was uploaded with purpose '{}'; upload it with purpose 'batch'",
                file.id, file.purpose
            ),
            Some("input_file_id"),
        ));
    }
    let bytes = files::content(client, &file).await?;
    let checked = match String::from_utf8(bytes) {
        Ok(text) => check_lines(&text, &request.endpoint, &api.table),
        Err(_) => Err(vec![problem(
            None,
            "the file is not UTF-8 text: save it as UTF-8 JSONL".into(),
        )]),
    };
    let (id, job) = match checked {
        Ok((route, text)) => queue(api, &route, &text, &file.id).await?,
        Err(problems) => (job::new_job_id(), Err(problems)),
    };
    let created = BatchEvent::Created {
        batch: id.clone(),
        endpoint: request.endpoint,
        input_file_id: file.id,
        completion_window: request.completion_window,
        created_at: job::unix_seconds(),
        metadata: request.metadata,
    };
    record::publish(client, &created).await?;
    let mut batches = record::Batches::default();
    batches.apply(created);
    match job {
        Ok(job) => {
            api.collectors.ensure(client, api.queues()?, &job);
            let batch = batches.get(&id).cloned().unwrap_or_default();
            Ok(view::object(&batch, Some(&job)))
        }
        Err(errors) => {
            let failed = BatchEvent::Failed {
                batch: id.clone(),
                at: job::unix_seconds(),
                errors,
            };
            record::publish(client, &failed).await?;
            batches.apply(failed);
            let batch = batches.get(&id).cloned().unwrap_or_default();
            Ok(view::object(&batch, None))
        }
    }
}

/// Queues the lines; returns the job id and its record, or the problems the submit found.
async fn queue(
    api: &BatchApi,
    route: &str,
    text: &str,
    input: &str,
) -> Result<(String, Result<JobRecord, Vec<LineProblem>>), BatchApiError> {
    let options = SubmitOptions {
        route: route.to_owned(),
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        skip_invalid: false,
        input: input.to_owned(),
    };
    let names = api.table.model_names();
    match submit::submit(api.client()?, api.queues()?, text, names, &options).await {
        Ok(done) => {
            let record = JobRecord {
                id: done.job.clone(),
                route: route.to_owned(),
                routes: done.routes,
                total: done.total,
                created_at: job::unix_seconds(),
                input: input.to_owned(),
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                ..JobRecord::default()
            };
            Ok((done.job, Ok(record)))
        }
        Err(SubmitError::Broker(e)) => Err(e.into()),
        // The lines were checked already; this is a safety net, reported like the checks.
        Err(e) => Ok((job::new_job_id(), Err(vec![problem(None, e.to_string())]))),
    }
}

/// The fields OpenAI checks at create time (400s).
fn check_request(request: &CreateBatch) -> Result<(), BatchApiError> {
    if request.endpoint != CHAT_URL && request.endpoint != EMBEDDINGS_URL {
        return Err(BatchApiError::bad_request(
            format!(
                "endpoint '{}' is not supported: this gateway runs batches of {CHAT_URL} and {EMBEDDINGS_URL}",
                request.endpoint
            ),
            Some("endpoint"),
        ));
    }
    if request.completion_window != COMPLETION_WINDOW {
        return Err(BatchApiError::bad_request(
            format!(
                "completion_window '{}' is not supported: use '{COMPLETION_WINDOW}'",
                request.completion_window
            ),
            Some("completion_window"),
        ));
    }
    Ok(())
}

fn problem(line: Option<usize>, message: String) -> LineProblem {
    LineProblem {
        code: "invalid_request".to_owned(),
        message,
        param: None,
        line,
    }
}

/// Checks every line; on success gives the job's route (the first line's) and the text
/// with each `body.model` spelled as its route or `route/model`, so the job format's
/// per-line reading sends every line where its model says.
pub fn check_lines(
    text: &str,
    endpoint: &str,
    table: &RouteTable,
) -> Result<(String, String), Vec<LineProblem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problems = Vec::new();
    let mut first_route = None;
    let mut out = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        match route_line(raw, table) {
            Ok(Some((route, line))) => {
                first_route.get_or_insert(route);
                out.push(line);
            }
            Ok(None) => out.push(raw.to_owned()),
            Err(message) => {
                problems.push(problem(Some(index + 1), message));
                out.push(raw.to_owned());
            }
        }
    }
    let text = out.join("\n");
    let route = first_route.unwrap_or_default();
    // Lines whose model names nothing are reported above; here they only need a route.
    let route_of = |model: Option<&str>| {
        let to = model.and_then(|m| table.model_names().resolve(m, None).ok());
        Ok(to.unwrap_or_else(|| ModelRoute {
            route: route.clone(),
            pin: None,
        }))
    };
    let parsed = format::parse(&text, &route_of);
    for line in parsed.lines.iter().filter(|l| l.api.path() != endpoint) {
        problems.push(problem(
            Some(line.line),
            format!(
                "url \"{}\" does not match the batch's endpoint \"{endpoint}\": one batch calls one endpoint",
                line.api.path()
            ),
        ));
    }
    for e in parsed.errors {
        let line = (e.line > 0).then_some(e.line);
        if !problems.iter().any(|p| p.line == line && line.is_some()) {
            problems.push(problem(line, e.reason));
        } else if let Some(p) = problems.iter_mut().find(|p| p.line == line) {
            p.message = format!("{}; {}", e.reason, p.message);
        }
    }
    if problems.is_empty() {
        return Ok((route, text));
    }
    problems.sort_by_key(|p| p.line.unwrap_or(0));
    problems.truncate(MAX_PROBLEMS);
    Err(problems)
}

/// A line's route and the line with `body.model` spelled out; None for a line the format
/// check reports (blank, not JSON, no body); Err when the model names no route.
fn route_line(raw: &str, table: &RouteTable) -> Result<Option<(String, String)>, String> {
    let trimmed = raw.strip_suffix('\r').unwrap_or(raw);
    if trimmed.trim().is_empty() {
        return Ok(None);
    }
    let Ok(Value::Object(mut line)) = serde_json::from_str::<Value>(trimmed) else {
        return Ok(None);
    };
    let Some(Value::Object(body)) = line.get_mut("body") else {
        return Ok(None);
    };
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
    // Spelled out, so the job's own reading (with the first line's route first) agrees.
    let canonical = match &to.pinned {
        Some(pin) => format!("{route}/{pin}"),
        None => route.clone(),
    };
    if canonical == model {
        return Ok(Some((route, raw.to_owned())));
    }
    body.insert("model".to_owned(), Value::String(canonical));
    Ok(Some((route, Value::Object(line).to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn models_pick_routes_and_pins_whatever_the_first_line_says() {
        let text = [
            line("a", Some("sentiment")),
            line("b", Some("openai/gpt-4.1-mini")),
            line("c", Some("gpt-4o-mini")),
        ]
        .join("\n");
        let table = table();
        let (route, rewritten) = check_lines(&text, CHAT_URL, &table).unwrap_or_default();
        assert_eq!(route, "sentiment");
        // The job reads the file with its route first: the spelled-out names keep line c
        // where the gateway would send it.
        let parsed = format::parse(&rewritten, &format::job_routes(table.model_names(), &route));
        let to: Vec<(&str, Option<&str>)> = parsed
            .lines
            .iter()
            .map(|l| (l.route.as_str(), l.pin.as_deref()))
            .collect();
        let want = [
            ("sentiment", None),
            ("openai", Some("gpt-4.1-mini")),
            ("openai", Some("gpt-4o-mini")),
        ];
        assert_eq!(to, want);
    }

    #[test]
    fn every_bad_line_is_named() {
        let text = [
            line("a", Some("openai")),
            line("b", None),
            "not json".to_owned(),
            line("c", Some("gpt-4o")),
            line("a", Some("openai")),
        ]
        .join("\n");
        let problems = check_lines(&text, CHAT_URL, &table())
            .err()
            .unwrap_or_default();
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4), Some(5)], "{problems:?}");
        assert!(problems[0].message.contains("body.model is missing"));
        assert!(problems[2].message.contains("unknown model 'gpt-4o'"));
        assert!(problems[3].message.contains("duplicate custom_id"));
    }

    #[test]
    fn request_fields_are_checked() {
        let request = |endpoint: &str, window: &str| CreateBatch {
            input_file_id: "file-x".into(),
            endpoint: endpoint.into(),
            completion_window: window.into(),
            metadata: None,
        };
        assert!(check_request(&request(CHAT_URL, "24h")).is_ok());
        assert!(check_request(&request(EMBEDDINGS_URL, "24h")).is_ok());
        let e = check_request(&request("/v1/completions", "24h")).err();
        assert!(matches!(
            e,
            Some(BatchApiError::BadRequest {
                param: Some("endpoint"),
                ..
            })
        ));
        let e = check_request(&request(CHAT_URL, "1h")).err();
        assert!(matches!(
            e,
            Some(BatchApiError::BadRequest {
                param: Some("completion_window"),
                ..
            })
        ));
    }
}
