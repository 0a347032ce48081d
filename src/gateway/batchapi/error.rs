//! Failures of the Files and Batches endpoints, as OpenAI-shaped errors with the same
//! body as [`crate::gateway::error::ApiError`] so the SDKs raise their typed exceptions.

use crate::kubemq::client::{Error as ClientError, ErrorKind};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<&'static str>,
    },
    #[error("no file '{0}' on this gateway's broker (GET /v1/files lists the uploaded ones)")]
    NoFile(String),
    #[error("no batch '{0}' on this gateway's broker (GET /v1/batches lists them)")]
    NoBatch(String),
    #[error("the request body is larger than the Batch API's cap of {limit} bytes: split the file into smaller batches, or raise the cap with --max-upload")]
    TooLarge { limit: usize },
    #[error("batch '{id}' is {status} and cannot be cancelled")]
    NotCancellable { id: String, status: &'static str },
    #[error("the KubeMQ broker is not reachable: {0}; check that it is running and that --broker points at it")]
    BrokerUnavailable(String),
    #[error("the broker failed the request: {0}")]
    Broker(String),
}

impl From<ClientError> for BatchApiError {
    fn from(e: ClientError) -> Self {
        match e.kind() {
            ErrorKind::Connect | ErrorKind::Unavailable | ErrorKind::Closed => {
                BatchApiError::BrokerUnavailable(e.to_string())
            }
            ErrorKind::TimedOut | ErrorKind::Rejected => BatchApiError::Broker(e.to_string()),
        }
    }
}

impl BatchApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        BatchApiError::BadRequest {
            message: message.into(),
            param,
        }
    }

    /// No wildcard: a new variant must pick its status here.
    pub fn status(&self) -> StatusCode {
        match self {
            BatchApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            BatchApiError::NoFile(_) | BatchApiError::NoBatch(_) => StatusCode::NOT_FOUND,
            BatchApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BatchApiError::NotCancellable { .. } => StatusCode::CONFLICT,
            BatchApiError::BrokerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            BatchApiError::Broker(_) => StatusCode::BAD_GATEWAY,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            BatchApiError::BadRequest { .. } => "bad_request",
            BatchApiError::NoFile(_) => "file_not_found",
            BatchApiError::NoBatch(_) => "batch_not_found",
            BatchApiError::TooLarge { .. } => "file_too_large",
            BatchApiError::NotCancellable { .. } => "batch_not_cancellable",
            BatchApiError::BrokerUnavailable(_) => "broker_unavailable",
            BatchApiError::Broker(_) => "broker_error",
        }
    }

    fn kind(&self) -> &'static str {
        if self.status().is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            BatchApiError::BadRequest { param, .. } => *param,
            BatchApiError::NoFile(_) => Some("file_id"),
            BatchApiError::TooLarge { .. } => Some("file"),
            BatchApiError::NoBatch(_)
            | BatchApiError::NotCancellable { .. }
            | BatchApiError::BrokerUnavailable(_)
            | BatchApiError::Broker(_) => None,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.to_string(),
            "type": self.kind(),
            "param": self.param(),
            "code": self.code(),
        }})
    }
}

impl IntoResponse for BatchApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(
                status = self.status().as_u16(),
                "batch API request failed: {self}"
            );
        }
        (self.status(), axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_and_bad_request_are_openai_shaped() {
        let e = BatchApiError::NoBatch("batch_x".into());
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.body()["error"]["code"], "batch_not_found");
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        let e = BatchApiError::bad_request("purpose must be batch", Some("purpose"));
        assert_eq!(e.body()["error"]["param"], "purpose");
        let e = BatchApiError::from(ClientError::new(ErrorKind::Unavailable, "down"));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.body()["error"]["type"], "server_error");
    }
}
