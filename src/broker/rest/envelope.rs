//! The REST response envelope `{"is_error","message","data"}`, pretty-printed with tabs
//! as the Go server does, and the one place where errors become HTTP statuses.

use super::gojson;
use super::json::{self, JsonError, Wire};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost_reflect::DynamicMessage;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use tonic::{Code, Status};

/// Text of the readiness gate on REST (KUBEMQ.md §1).
pub const NOT_READY: &str = "rest server is not ready to accept requests";

/// Content type of every envelope, as the Go server sends it.
const JSON_UTF8: &str = "application/json; charset=UTF-8";

/// One REST answer: OK with an optional payload, or an error text.
pub struct Envelope {
    status: StatusCode,
    is_error: bool,
    message: String,
    data: Option<DynamicMessage>,
}

impl Envelope {
    /// 200 with `data` set to the proto message.
    pub fn ok<T: Wire>(data: &T) -> Result<Self, RestError> {
        Ok(Self::ok_with(Some(json::to_dynamic(data)?)))
    }

    /// 200 with `data: null`.
    pub fn ok_empty() -> Self {
        Self::ok_with(None)
    }

    fn ok_with(data: Option<DynamicMessage>) -> Self {
        Self {
            status: StatusCode::OK,
            is_error: false,
            message: "OK".to_owned(),
            data,
        }
    }

    /// An error envelope with `data: null`.
    pub fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            is_error: true,
            message: message.into(),
            data: None,
        }
    }
}

/// Serialises the payload with the proto JSON options.
struct Data<'a>(&'a DynamicMessage);

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_with_options(serializer, &json::serialize_options())
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Envelope", 3)?;
        s.serialize_field("is_error", &self.is_error)?;
        s.serialize_field("message", &self.message)?;
        s.serialize_field("data", &self.data.as_ref().map(Data))?;
        s.end()
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        match gojson::to_vec(&self) {
            Ok(body) => (
                self.status,
                [(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))],
                body,
            )
                .into_response(),
            Err(e) => {
                tracing::error!("cannot serialise a REST response: {e}");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// Why a REST call failed, before or inside the broker.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The body is not JSON, or does not bind to the message.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The request did not say it carries JSON.
    #[error("invalid request: Content-Type must be application/json")]
    ContentType,
    /// The body or the decoded message is over the broker's limit.
    #[error("message size {size} exceeds the broker limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The body is over the read limit, before it is even decoded.
    #[error("request body exceeds {body_limit} bytes; messages are limited to {limit} bytes")]
    BodyTooLarge { body_limit: usize, limit: usize },
    /// The body could not be read.
    #[error("cannot read request body: {0}")]
    Body(String),
    /// The broker refused or failed the call.
    #[error("{}", .0.message())]
    Grpc(Box<Status>),
}

impl RestError {
    /// The HTTP status of each failure; one exhaustive match, no wildcard.
    fn status(&self) -> StatusCode {
        match self {
            Self::Json(JsonError::Bind(_)) | Self::ContentType | Self::Body(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Json(JsonError::Descriptor(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TooLarge { .. } | Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Grpc(status) => grpc_http_status(status.code()),
        }
    }
}

/// KubeMQ's REST answers every operation error with 400, except the readiness gate.
fn grpc_http_status(code: Code) -> StatusCode {
    match code {
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::InvalidArgument
        | Code::DeadlineExceeded
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss
        | Code::Unauthenticated => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Grpc(s) if s.code() == Code::Unavailable => NOT_READY.to_owned(),
            _ if status.is_server_error() => {
                tracing::error!("REST call failed: {self}");
                "internal server error".to_owned()
            }
            _ => self.to_string(),
        };
        Envelope::error(status, message).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubemq::Result as EventResult;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn envelope_is_tab_indented_and_omits_zero_fields() -> TestResult {
        let data = EventResult {
            event_id: "e1".to_owned(),
            sent: true,
            error: String::new(),
        };
        let envelope = Envelope::ok(&data)?;
        let text = String::from_utf8(gojson::to_vec(&envelope)?)?;
        let want = "{\n\t\"is_error\": false,\n\t\"message\": \"OK\",\n\t\"data\": {\n\t\t\"EventID\": \"e1\",\n\t\t\"Sent\": true\n\t}\n}\n";
        assert_eq!(text, want);
        Ok(())
    }

    #[test]
    fn errors_carry_null_data() -> TestResult {
        let envelope = Envelope::error(StatusCode::BAD_REQUEST, "boom");
        let text = String::from_utf8(gojson::to_vec(&envelope)?)?;
        assert_eq!(
            text,
            "{\n\t\"is_error\": true,\n\t\"message\": \"boom\",\n\t\"data\": null\n}\n"
        );
        Ok(())
    }

    #[test]
    fn statuses() {
        assert_eq!(
            RestError::Grpc(Box::new(Status::internal("x"))).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            RestError::Grpc(Box::new(Status::unavailable("x"))).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(RestError::ContentType.status(), StatusCode::BAD_REQUEST);
    }
}
