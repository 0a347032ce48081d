//! The request id: the caller's `x-request-id` when it is a sane token, a new UUID
//! otherwise. It travels to the worker as the query's `x-request-id` tag and comes back
//! on every response, errors included.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header (and query tag) name.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-chosen id kept; a longer one is replaced.
const MAX_LEN: usize = 128;

/// The id of the request being handled, as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The caller's id if it is 1..=128 visible ASCII characters (safe in logs and tags).
fn accept(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let sane =
        !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(u8::is_ascii_graphic);
    sane.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Middleware, outermost: every response carries the id.
pub async fn propagate(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(accept)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).ok();
    req.extensions_mut().insert(RequestId(id));
    let mut response = next.run(req).await;
    if let Some(value) = value {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_only() {
        assert_eq!(
            accept(&HeaderValue::from_static("req-123_abc")).as_deref(),
            Some("req-123_abc")
        );
        assert_eq!(accept(&HeaderValue::from_static("has space")), None);
        assert_eq!(accept(&HeaderValue::from_static("")), None);
        let long = "x".repeat(MAX_LEN + 1);
        assert_eq!(
            accept(&HeaderValue::from_str(&long).unwrap_or(HeaderValue::from_static(""))),
            None
        );
    }
}
