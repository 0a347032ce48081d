//! Every way a gateway request can fail, its HTTP status and its OpenAI-shaped body
//! (`{"error":{"message","type","param","code"}}`), so OpenAI SDKs raise their typed
//! exceptions.

use crate::config::models::ModelError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// A failed request. The texts are what the caller reads; none carries a key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<&'static str>,
    },
    #[error("missing API key: send it as 'Authorization: Bearer <key>'")]
    MissingKey,
    #[error("invalid API key: check the key given to the client against LLM_ROUTER_GATEWAY_KEYS")]
    InvalidKey,
    /// `model` names no route, pin or served model; the same text on every path.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The worker's text: the workers' config has no such route.
    #[error(
        "{0} (the workers' route config differs from the gateway's: give both the same config)"
    )]
    WorkerUnknownRoute(String),
    #[error("request body is larger than {limit} bytes: send a smaller request")]
    BodyTooLarge { limit: usize },
    #[error("too many requests for this API key: retry after {}s", retry_after_secs(*.retry_after))]
    KeyRateLimited { retry_after: Duration },
    #[error("this gateway is answering {max} requests already, the most it takes at once: retry in a second, or raise --max-in-flight")]
    Busy { max: usize },
    /// The worker's text: every target is rate-limited beyond the deadline.
    #[error("{0}")]
    RouteRateLimited(String),
    /// The worker's text: every target failed.
    #[error("{0}")]
    UpstreamFailed(String),
    /// The worker's text: the targets ran out of time.
    #[error("{0}")]
    UpstreamTimedOut(String),
    #[error("no worker answered on channel '{channel}' (route '{route}') within {}s: check that workers are running (llm-router worker --broker …)", .timeout.as_secs_f32())]
    NoWorker {
        route: String,
        channel: String,
        timeout: Duration,
    },
    #[error("the KubeMQ broker is not reachable: {0}; check that it is running and that --broker points at it")]
    BrokerUnavailable(String),
    #[error("the broker refused the request: {0}")]
    BrokerRejected(String),
    #[error("a worker sent an unreadable answer: {0}")]
    BadWorkerReply(String),
    #[error("no such endpoint: this gateway serves /v1/chat/completions, /v1/models, /v1/files and /v1/batches (plus /status, /health, /ready, /metrics)")]
    NotFound,
}

/// Whole seconds to wait, at least 1, for `Retry-After`.
fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

impl ApiError {
    /// The HTTP status. No wildcard: a new variant must pick its status here.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::MissingKey | ApiError::InvalidKey => StatusCode::UNAUTHORIZED,
            ApiError::Model(ModelError::Unknown { .. } | ModelError::NotOnRoute { .. })
            | ApiError::WorkerUnknownRoute(_)
            | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::KeyRateLimited { .. }
            | ApiError::RouteRateLimited(_)
            | ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UpstreamFailed(_)
            | ApiError::BrokerRejected(_)
            | ApiError::BadWorkerReply(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimedOut(_) | ApiError::NoWorker { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ApiError::BrokerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// OpenAI's `type` and a stable `code` for the body.
    fn kind_and_code(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest { .. } => ("invalid_request_error", "bad_request"),
            ApiError::MissingKey | ApiError::InvalidKey => {
                ("authentication_error", "invalid_api_key")
            }
            ApiError::Model(ModelError::Unknown { .. }) | ApiError::WorkerUnknownRoute(_) => {
                ("invalid_request_error", "unknown_route")
            }
            ApiError::Model(ModelError::NotOnRoute { .. }) => {
                ("invalid_request_error", "model_not_found")
            }
            ApiError::NotFound => ("invalid_request_error", "not_found"),
            ApiError::BodyTooLarge { .. } => ("invalid_request_error", "body_too_large"),
            ApiError::KeyRateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            ApiError::RouteRateLimited(_) => ("rate_limit_error", "rate_limited"),
            ApiError::Busy { .. } => ("rate_limit_error", "gateway_busy"),
            ApiError::UpstreamFailed(_) => ("server_error", "upstream_failed"),
            ApiError::UpstreamTimedOut(_) => ("server_error", "upstream_timeout"),
            ApiError::NoWorker { .. } => ("server_error", "no_worker"),
            ApiError::BrokerUnavailable(_) => ("server_error", "broker_unavailable"),
            ApiError::BrokerRejected(_) => ("server_error", "broker_error"),
            ApiError::BadWorkerReply(_) => ("server_error", "bad_worker_reply"),
        }
    }

    /// The request field at fault, when there is one.
    fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::BadRequest { param, .. } => *param,
            ApiError::Model(_) => Some("model"),
            _ => None,
        }
    }

    /// OpenAI's error body.
    pub fn body(&self) -> serde_json::Value {
        let (kind, code) = self.kind_and_code();
        json!({
            "error": {
                "message": self.to_string(),
                "type": kind,
                "param": self.param(),
                "code": code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        let retry_after = match &self {
            ApiError::KeyRateLimited { retry_after } => Some(retry_after_secs(*retry_after)),
            ApiError::Busy { .. } => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            let secs = HeaderValue::from(secs);
            response.headers_mut().insert(header::RETRY_AFTER, secs);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn bodies_are_openai_shaped() {
        let e = ApiError::BadRequest {
            message: "'stream' must be a boolean".into(),
            param: Some("stream"),
        };
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let body = e.body();
        assert_eq!(body["error"]["param"], "stream");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "'stream' must be a boolean");
        assert!(ApiError::MissingKey.body()["error"]["param"].is_null());
    }

    #[test]
    fn key_rate_limit_carries_retry_after() {
        let response = ApiError::KeyRateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(2u64))
        );
    }
}
