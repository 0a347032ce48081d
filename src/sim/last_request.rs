//! The test hook `GET /sim/last-request`: the path and exact body of the last request
//! received on an API path (`/v1/…`), whatever became of it, so that tests of clients
//! can see what went over the wire. Only the last one is kept (one body, bounded by the
//! server's body limit); before any, the answer is 404 with `{"path":null,"body":null}`.

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

#[derive(Default)]
pub(super) struct LastRequest {
    /// Written by every API request, read by the hook; a mutex since both are brief.
    last: Mutex<Option<(&'static str, Bytes)>>,
}

impl LastRequest {
    /// Replaces the kept request; `Bytes` shares the received buffer, no copy.
    pub fn record(&self, path: &'static str, body: &Bytes) {
        *self.last.lock() = Some((path, body.clone()));
    }

    /// The body goes out verbatim when it is JSON (key order and all), as a JSON string
    /// otherwise.
    pub fn response(&self) -> Response {
        let Some((path, body)) = self.last.lock().clone() else {
            let none = r#"{"path":null,"body":null}"#;
            return json_response(StatusCode::NOT_FOUND, none.to_owned());
        };
        let body = match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
            Ok(_) => String::from_utf8_lossy(&body).into_owned(),
            Err(_) => serde_json::Value::from(String::from_utf8_lossy(&body)).to_string(),
        };
        let path = serde_json::Value::from(path);
        json_response(
            StatusCode::OK,
            format!(r#"{{"path":{path},"body":{body}}}"#),
        )
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text(r: Response) -> (u16, String) {
        let status = r.status().as_u16();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn keeps_the_last_body_verbatim() {
        let hook = LastRequest::default();
        assert_eq!(
            text(hook.response()).await,
            (404, r#"{"path":null,"body":null}"#.into())
        );
        hook.record(
            "/v1/messages",
            &Bytes::from_static(b"{\"z\": 1, \"a\": [2]}"),
        );
        hook.record("/v1/embeddings", &Bytes::from_static(b"{\"z\":1,\"a\":2}"));
        let want = r#"{"path":"/v1/embeddings","body":{"z":1,"a":2}}"#;
        assert_eq!(text(hook.response()).await, (200, want.into()));
        hook.record("/v1/chat/completions", &Bytes::from_static(b"{oops"));
        let (_, got) = text(hook.response()).await;
        assert_eq!(got, r#"{"path":"/v1/chat/completions","body":"{oops"}"#);
    }
}
