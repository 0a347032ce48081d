//! `POST /v1/chat/completions` and `POST /v1/embeddings`: the OpenAI request becomes a
//! JSON-mode query on the route's channel (tagged with its API), as the caller wrote it
//! except `model`, and the worker's answer (or failure) becomes the HTTP response; a chat
//! with `stream: true` is relayed chunk by chunk (see [`super::stream`]).

use super::app::AppState;
use super::error::ApiError;
use super::metrics::{RouteLabel, UNKNOWN_ROUTE};
use super::request_id::RequestId;
use super::routes::Resolved;
use super::stream::{self, StreamCall};
use crate::kubemq::{request::RequestType, Request};
use crate::protocol::tags::{API_TAG, JSON_CONTENT_TYPE, PIN_MODEL_TAG};
use crate::protocol::FailureCode;
use crate::provider::{Api, LlmRequest};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Headers that may shorten the query's timeout, in seconds: ours, and the read timeout
/// the OpenAI Python SDK sends with every request.
const TIMEOUT_HEADERS: [&str; 2] = ["x-request-timeout", "x-stainless-read-timeout"];

/// `POST /v1/chat/completions`.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(&state, Api::Chat, &id, &headers, body).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(&state, Api::Embeddings, &id, &headers, body).await
}

/// Answers, and labels the response with its route for the metrics.
async fn handle(
    state: &AppState,
    api: Api,
    id: &RequestId,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let mut label = None;
    let result = complete(state, api, id, headers, body, &mut label, started).await;
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            let status = e.status();
            if status.is_server_error() {
                tracing::warn!(request_id = %id.0, api = api.name(), status = status.as_u16(), "request failed: {e}");
            } else {
                tracing::debug!(request_id = %id.0, api = api.name(), status = status.as_u16(), "request refused: {e}");
            }
            e.into_response()
        }
    };
    if let Some(label) = label {
        response.extensions_mut().insert(RouteLabel(label));
    }
    response
}

async fn complete(
    state: &AppState,
    api: Api,
    id: &RequestId,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    label: &mut Option<String>,
    started: Instant,
) -> Result<Response, ApiError> {
    let mut chat = parse(body, api, state.max_body)?;
    let streamed = api == Api::Chat && chat.get("stream").and_then(Value::as_bool) == Some(true);
    let model = model(&chat)?;
    *label = Some(UNKNOWN_ROUTE.to_owned());
    let resolved = state.table.resolve(&model)?;
    *label = Some(resolved.route.name.clone());
    match &resolved.pinned {
        Some(pinned) => chat.insert("model".to_owned(), Value::String(pinned.clone())),
        None => chat.remove("model"),
    };
    let timeout = timeout(resolved.route.timeout, headers);
    let mut request = query(&resolved, &Value::Object(chat), timeout, id)?;
    if api != Api::Chat {
        request
            .tags
            .insert(API_TAG.to_owned(), api.name().to_owned());
    }
    let route = &resolved.route.name;
    if !streamed {
        return reply(state.broker.query(request, route).await?);
    }
    let client = state.broker.client()?;
    let opened = stream::subscribe(&state.streams, client, &mut request).await?;
    let broker = state.broker.clone();
    let owned_route = route.clone();
    let call = StreamCall {
        client,
        route,
        started,
        query: Box::pin(async move { broker.query(request, &owned_route).await }),
    };
    stream::respond(call, opened).await
}

/// The body as a JSON object, checked as a request of `api` (the fields the router reads).
fn parse(
    body: Result<Bytes, BytesRejection>,
    api: Api,
    limit: usize,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge { limit }
        } else {
            bad_request(
                format!("cannot read the request body: {}", rejection.body_text()),
                None,
            )
        }
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad_request(format!("request body is not valid JSON: {e}"), None))?;
    let Value::Object(body) = value else {
        return Err(bad_request(
            format!(
                "request body must be a JSON object (an OpenAI {} request)",
                api.name()
            ),
            None,
        ));
    };
    LlmRequest::new(api, body)
        .map(LlmRequest::into_body)
        .map_err(|e| bad_request(e.message, e.param))
}

fn bad_request(message: String, param: Option<&'static str>) -> ApiError {
    ApiError::BadRequest { message, param }
}

/// `model`, which names the route.
fn model(chat: &Map<String, Value>) -> Result<String, ApiError> {
    match chat.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        _ => Err(bad_request(
            "missing `model`: name a route (see GET /v1/models), route/model, or a model a route serves".into(),
            Some("model"),
        )),
    }
}

/// The route's timeout, or less when the caller asked for less.
fn timeout(route: Duration, headers: &HeaderMap) -> Duration {
    TIMEOUT_HEADERS
        .iter()
        .filter_map(|name| {
            headers
                .get(*name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter_map(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|t| !t.is_zero())
        .fold(route, Duration::min)
}

/// The JSON-mode query carrying `chat`.
fn query(
    resolved: &Resolved<'_>,
    chat: &Value,
    timeout: Duration,
    id: &RequestId,
) -> Result<Request, ApiError> {
    let body = serde_json::to_vec(chat)
        .map_err(|e| bad_request(format!("cannot re-encode the request: {e}"), None))?;
    let mut tags = HashMap::from([
        ("content-type".to_owned(), JSON_CONTENT_TYPE.to_owned()),
        ("x-request-id".to_owned(), id.0.clone()),
    ]);
    if let Some(model) = &resolved.pinned {
        tags.insert(PIN_MODEL_TAG.to_owned(), model.clone());
    }
    Ok(Request {
        request_id: uuid::Uuid::new_v4().to_string(),
        request_type_data: RequestType::Query as i32,
        channel: resolved.route.channel.clone(),
        body,
        timeout: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
        tags,
        ..Request::default()
    })
}

/// The worker's answer as HTTP: its chat completion as is, or its failure mapped by code.
fn reply(answer: crate::kubemq::Response) -> Result<Response, ApiError> {
    if answer.executed {
        let json = [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)];
        return Ok((StatusCode::OK, json, answer.body).into_response());
    }
    Err(failure_of(&answer))
}

/// What the worker said went wrong (`{"error":{"message","code"}}`).
pub(super) fn failure_of(answer: &crate::kubemq::Response) -> ApiError {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let error = &body["error"];
    let message = match error["message"].as_str() {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ if !answer.error.is_empty() => answer.error.clone(),
        _ => "the worker gave no reason".to_owned(),
    };
    match error["code"].as_str().and_then(FailureCode::parse) {
        Some(FailureCode::BadRequest) => bad_request(message, None),
        Some(FailureCode::UnknownRoute | FailureCode::UnknownModel) => {
            ApiError::WorkerUnknownRoute(message)
        }
        Some(FailureCode::RateLimited) => ApiError::RouteRateLimited(message),
        Some(FailureCode::UpstreamTimeout) => ApiError::UpstreamTimedOut(message),
        Some(FailureCode::UpstreamFailed | FailureCode::MidStreamError) => {
            ApiError::UpstreamFailed(message)
        }
        _ => ApiError::BadWorkerReply(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: Value) -> crate::kubemq::Response {
        crate::kubemq::Response {
            body: body.to_string().into_bytes(),
            ..crate::kubemq::Response::default()
        }
    }

    fn worker_error(code: &str, message: &str) -> ApiError {
        failure_of(&answer(serde_json::json!({
            "error": {"message": message, "type": "llm_router_error", "code": code}
        })))
    }

    #[test]
    fn worker_codes_map_to_statuses() {
        let status = |code, message| worker_error(code, message).status().as_u16();
        assert_eq!(status("bad_request", "bad"), 400);
        assert_eq!(status("unknown_route", "unknown route 'x'"), 404);
        assert_eq!(status("rate_limited", "limited"), 429);
        assert_eq!(
            status("upstream_failed", "all targets failed: sim HTTP 500"),
            502
        );
        assert_eq!(
            status(
                "upstream_timeout",
                "all targets failed: sim timed out after 2s"
            ),
            504
        );
        assert_eq!(
            status("upstream_failed", "a text saying timed out is not a code"),
            502
        );
        assert_eq!(status("something_new", "?"), 502);
        let e = worker_error("upstream_failed", "all targets failed: sim HTTP 500");
        assert!(e.to_string().contains("sim HTTP 500"));
    }

    #[test]
    fn unreadable_failure_uses_the_error_field() {
        let mut a = answer(Value::Null);
        a.body = b"not json".to_vec();
        a.error = "boom".into();
        assert_eq!(
            failure_of(&a).to_string(),
            "a worker sent an unreadable answer: boom"
        );
    }

    #[test]
    fn timeout_headers_only_shorten() {
        let route = Duration::from_secs(60);
        let mut h = HeaderMap::new();
        assert_eq!(timeout(route, &h), route);
        h.insert(
            "x-stainless-read-timeout",
            "600"
                .parse()
                .unwrap_or(header::HeaderValue::from_static("0")),
        );
        assert_eq!(timeout(route, &h), route);
        h.insert(
            "x-request-timeout",
            "2.5"
                .parse()
                .unwrap_or(header::HeaderValue::from_static("0")),
        );
        assert_eq!(timeout(route, &h), Duration::from_millis(2500));
        h.insert(
            "x-request-timeout",
            "-1".parse()
                .unwrap_or(header::HeaderValue::from_static("0")),
        );
        assert_eq!(timeout(route, &h), route);
    }

    #[test]
    fn bodies_are_checked_before_routing() {
        let parse_str =
            |s: &'static str| parse(Ok(Bytes::from_static(s.as_bytes())), Api::Chat, 10);
        let embed_str =
            |s: &'static str| parse(Ok(Bytes::from_static(s.as_bytes())), Api::Embeddings, 10);
        assert!(embed_str(r#"{"model":"r","input":["a","b"],"dimensions":8}"#).is_ok());
        assert!(matches!(
            embed_str(r#"{"model":"r","input":[]}"#),
            Err(ApiError::BadRequest {
                param: Some("input"),
                ..
            })
        ));
        assert!(matches!(
            parse_str("{"),
            Err(ApiError::BadRequest { param: None, .. })
        ));
        assert!(matches!(parse_str("[]"), Err(ApiError::BadRequest { .. })));
        assert!(matches!(
            parse_str(r#"{"model":"openai"}"#),
            Err(ApiError::BadRequest {
                param: Some("messages"),
                ..
            })
        ));
        assert!(parse_str(r#"{"messages":[{"role":"user","content":"x"}],"stream":true}"#).is_ok());
        assert!(
            parse_str(r#"{"messages":[{"role":"user","content":"x"}],"stream":false}"#).is_ok()
        );
    }
}
