//! The HTTP leg shared by every provider: one attempt under one deadline, transport and
//! status errors classified, `Retry-After` read, error texts shortened and scrubbed of keys.

use super::ProviderError;
use crate::secret::Secret;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The one HTTP client every endpoint shares, with its connection pool sized by `connections`.
/// Nagle off: a request is one small write, and waiting to coalesce it only adds latency.
pub fn client(connections: &crate::config::ConnectionsConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections.idle_per_endpoint)
        .pool_idle_timeout(connections.idle_timeout)
        .build()
}

/// Longest provider error message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 200;

/// `{base}{path}`, without doubling a `/v1` the user already put at the end of the base URL
/// (`https://api.openai.com/v1` and `https://api.openai.com` both work).
pub(crate) fn endpoint_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    match path.strip_prefix("/v1") {
        Some(rest) if base.ends_with("/v1") => format!("{base}{rest}"),
        _ => format!("{base}{path}"),
    }
}

/// A header value holding a key, marked sensitive so that `Debug` never prints it.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, ProviderError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| ProviderError::Status {
        status: 401,
        retry_after: None,
        message: "the API key is not a valid HTTP header value (not sent)".into(),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Sends `request` and reads the whole body within `timeout`; 2xx gives the body.
pub(crate) async fn execute(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    key: Option<&Secret>,
) -> Result<bytes::Bytes, ProviderError> {
    match tokio::time::timeout(timeout, send(request, timeout, key)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProviderError::Timeout(timeout)),
    }
}

async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    key: Option<&Secret>,
) -> Result<bytes::Bytes, ProviderError> {
    let transport = |e| transport(e, timeout, key);
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let body = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        return Ok(body);
    }
    Err(ProviderError::Status {
        status: status.as_u16(),
        retry_after,
        message: error_message(&body, key),
    })
}

/// Sends a streaming `request` and waits within `timeout` for its response head; a 2xx
/// gives the response to read events from, anything else its error (body read in full).
pub(crate) async fn open(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    key: Option<&Secret>,
) -> Result<reqwest::Response, ProviderError> {
    let opening = async {
        let transport = |e| transport(e, timeout, key);
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let body = response.bytes().await.map_err(transport)?;
        Err(ProviderError::Status {
            status: status.as_u16(),
            retry_after,
            message: error_message(&body, key),
        })
    };
    match tokio::time::timeout(timeout, opening).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProviderError::Timeout(timeout)),
    }
}

/// Decodes a 2xx body into the provider's wire type.
pub(crate) fn decode<T: DeserializeOwned>(
    body: &[u8],
    key: Option<&Secret>,
) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| ProviderError::Decode(clean(&e.to_string(), key)))
}

/// Transport failures: refused, reset, closed mid-body. All are the endpoint's trouble, so
/// they are `Connect` (retryable) except a timeout set on the shared client itself.
fn transport(err: reqwest::Error, timeout: Duration, key: Option<&Secret>) -> ProviderError {
    if err.is_timeout() {
        return ProviderError::Timeout(timeout);
    }
    let err = err.without_url();
    ProviderError::Connect(clean(&chain(&err), key))
}

/// An error and its sources, `a: b: c`, skipping a source its parent already quotes.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = cause.source();
    }
    text
}

/// The provider's own message (`error.message` in OpenAI's and Anthropic's error bodies),
/// or the start of the raw body.
fn error_message(body: &[u8], key: Option<&Secret>) -> String {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.pointer("/message"))
        })
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let message = clean(message.trim(), key);
    if message.is_empty() {
        "(no message)".into()
    } else {
        message
    }
}

/// Removes the key (before cutting, so no fragment survives) and shortens.
pub(crate) fn clean(text: &str, key: Option<&Secret>) -> String {
    let scrubbed = match key.map(Secret::expose) {
        Some(k) if !k.is_empty() => text.replace(k, "*****"),
        _ => text.to_owned(),
    };
    shorten(&scrubbed)
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// When to try again: OpenAI's `retry-after-ms`, else `Retry-After` as seconds or HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(parse_seconds) {
        return Some(ms / 1000);
    }
    text("retry-after").and_then(|v| parse_retry_after(v, now))
}

/// `Retry-After`'s value: delay-seconds or an HTTP date (a past date means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(d) = parse_seconds(value) {
        return Some(d);
    }
    let at = UNIX_EPOCH + Duration::from_secs(parse_http_date(value)?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Non-negative decimal seconds (integers per the RFC; fractions tolerated).
fn parse_seconds(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (0.0..1e9)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

/// Seconds since the epoch of an HTTP date in any of RFC 9110's three forms:
/// `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`, `Sun Nov  6 08:49:37 1994`.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let cleaned = value.replace([',', '-'], " ");
    let parts: Vec<&str> = cleaned.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        [_, day, month, year, time, "GMT"] => (*day, *month, *year, *time),
        [_, month, day, time, year] => (*day, *month, *year, *time),
        _ => return None,
    };
    let year = full_year(year.parse().ok()?);
    let month = month_number(month)?;
    let day: u32 = day.parse().ok()?;
    let secs = time_of_day(time)?;
    if !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days).ok().map(|d| d * 86_400 + secs)
}

/// RFC 850's two-digit years: 70–99 are 19xx, the rest 20xx.
fn full_year(year: i64) -> i64 {
    match year {
        0..=69 => 2000 + year,
        70..=99 => 1900 + year,
        _ => year,
    }
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    u32::try_from(index + 1).ok()
}

fn time_of_day(time: &str) -> Option<u64> {
    let mut fields = time.split(':').map(|f| f.parse::<u64>().ok());
    let (h, m, s) = (fields.next()??, fields.next()??, fields.next()??);
    (fields.next().is_none() && h < 24 && m < 60 && s <= 60).then_some(h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_in_all_three_forms() {
        let t = 784_111_777;
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }

    #[test]
    fn retry_after_seconds_date_and_past_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        let p = |v| parse_retry_after(v, now);
        assert_eq!(p("120"), Some(Duration::from_secs(120)));
        assert_eq!(p(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(p("-3"), None);
        assert_eq!(
            p("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(p("Sun, 06 Nov 1994 08:49:00 GMT"), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_ms_wins() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("20"));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn messages_lose_the_key_then_get_short() {
        let key = Secret::new("sk-secret-key-1234");
        let long = format!("bad key sk-secret-key-1234 {}", "x".repeat(500));
        let cleaned = clean(&long, Some(&key));
        assert!(!cleaned.contains("sk-secret"));
        assert!(cleaned.starts_with("bad key ***** x"));
        assert_eq!(cleaned.chars().count(), MAX_MESSAGE_CHARS + 1);
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-secret-key-1234."}}"#;
        assert_eq!(
            error_message(body, Some(&key)),
            "Incorrect API key provided: *****."
        );
        assert_eq!(error_message(b"  ", None), "(no message)");
    }

    #[test]
    fn urls_keep_one_v1() {
        let u = |b| endpoint_url(b, "/v1/messages");
        assert_eq!(
            u("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            u("https://api.anthropic.com/"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(u("http://h:1/v1/"), "http://h:1/v1/messages");
    }
}
