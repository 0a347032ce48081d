//! Streamed answers: SSE frames sent `chunk_delay_ms` apart over a chunked body. A body
//! dropped before its last frame means the client went away, and is counted as such.

use super::stats::Counters;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How many text chunks go out before a cut: a few, and at least one.
pub(super) fn cut_after(pieces: usize) -> usize {
    (pieces / 2).clamp(1, 3).min(pieces.max(1))
}

/// `text` in pieces of about a third (at char boundaries): at least two when it has two
/// chars, so that clients are seen to join tool arguments sent in parts.
pub(super) fn fragments(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(3).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The frames still to send, and who to tell when the client leaves early.
struct Playback {
    frames: VecDeque<String>,
    delay: Duration,
    /// No pause before the first frame: it goes out with the response head.
    started: bool,
    /// Set once the last frame is handed over; a drop before that is a cancel.
    finished: bool,
    stats: Arc<Counters>,
    shutdown: CancellationToken,
}

impl Drop for Playback {
    fn drop(&mut self) {
        if !self.finished {
            Counters::bump(&self.stats.streams_cancelled);
        }
    }
}

impl Playback {
    async fn next(mut self) -> Option<(Result<String, Infallible>, Self)> {
        if self.started && !self.delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(self.delay) => {}
                () = self.shutdown.cancelled() => {
                    self.finished = true;
                    return None;
                }
            }
        }
        self.started = true;
        let frame = self.frames.pop_front()?;
        self.finished = self.frames.is_empty();
        Some((Ok(frame), self))
    }
}

/// The streaming response playing `frames`.
pub(super) fn respond(
    frames: Vec<String>,
    delay: Duration,
    stats: Arc<Counters>,
    shutdown: CancellationToken,
) -> Response {
    Counters::bump(&stats.streams);
    let playback = Playback {
        finished: frames.is_empty(),
        frames: frames.into(),
        delay,
        started: false,
        stats,
        shutdown,
    };
    let body = Body::from_stream(futures::stream::unfold(playback, Playback::next));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::{cut_after, fragments};

    #[test]
    fn fragments_join_to_the_text() {
        assert_eq!(fragments("{\"a\":1}"), ["{\"a", "\":1", "}"]);
        assert_eq!(fragments("{}"), ["{", "}"]);
        assert_eq!(fragments("héllo wörld").concat(), "héllo wörld");
        assert!(fragments("{\"city\":\"Paris\"}").len() >= 2);
    }

    #[test]
    fn cuts_leave_a_few_chunks() {
        assert_eq!(cut_after(1), 1);
        assert_eq!(cut_after(4), 2);
        assert_eq!(cut_after(20), 3);
    }
}
