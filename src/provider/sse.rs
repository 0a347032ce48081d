//! Server-sent events off a streaming HTTP response: bytes in, `(event, data)` pairs out.
//! Only what OpenAI and Anthropic send is modelled: `event:` and `data:` fields, comments
//! and blank-line dispatch; `id:` and `retry:` are ignored.

use super::ProviderError;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when the server sent none (OpenAI never does).
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// The largest event a provider may send (its data and any line still being read). A
/// chat chunk is a few hundred bytes; this leaves room for a whole tool call's arguments
/// in one event while keeping a misbehaving server from growing memory without end.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Splits a byte stream into events. Bytes are buffered until a line is complete, so a
/// multi-byte character or a line cut across reads is never split. Each byte is scanned
/// once, however the stream is cut into reads.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
    current: SseEvent,
    /// Whether `current` has a data field yet (an event without one is not dispatched).
    has_data: bool,
}

impl SseParser {
    /// Adds bytes and returns the events they complete; an error once an event (or a
    /// line) grows past [`MAX_EVENT_BYTES`].
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, ProviderError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.buffer[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + offset;
            let line = String::from_utf8_lossy(&self.buffer[start..end]).into_owned();
            start = end + 1;
            self.scanned = start;
            if let Some(event) = self.line(line.trim_end_matches('\r')) {
                events.push(event);
            }
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        if self.buffer.len() + self.current.data.len() > MAX_EVENT_BYTES {
            return Err(ProviderError::Decode(format!(
                "the provider sent a stream event over {} MiB",
                MAX_EVENT_BYTES >> 20
            )));
        }
        Ok(events)
    }

    /// An event left without its closing blank line when the stream ended.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buffer);
        let line = String::from_utf8_lossy(&rest).into_owned();
        let pending = self.line(line.trim_end_matches('\r'));
        pending.or_else(|| self.dispatch())
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.current.event),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.current);
        std::mem::take(&mut self.has_data).then_some(event)
    }
}

/// Events off a live response.
#[derive(Debug)]
pub struct SseReader {
    response: reqwest::Response,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
    ended: bool,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            parser: SseParser::default(),
            ready: std::collections::VecDeque::new(),
            ended: false,
        }
    }

    /// The next event; `None` once the server closed the stream cleanly. A broken
    /// connection is a `Connect` error.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ProviderError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => match self.parser.feed(&bytes) {
                    Ok(events) => self.ready.extend(events),
                    Err(e) => {
                        self.ended = true;
                        return Err(e);
                    }
                },
                Ok(None) => {
                    self.ended = true;
                    self.ready.extend(self.parser.finish());
                }
                Err(e) => {
                    self.ended = true;
                    let why = super::http::clean(&e.without_url().to_string(), None);
                    return Err(ProviderError::Connect(format!(
                        "the stream broke off: {why}"
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_split_across_reads_and_lines() {
        let mut p = SseParser::default();
        let mut feed = |b: &[u8]| p.feed(b).unwrap_or_default();
        assert!(feed(b"data: {\"a\"").is_empty());
        assert_eq!(feed(b":1}\n\n"), vec![ev("", "{\"a\":1}")]);
        let got = feed(b": keep-alive\r\nevent: ping\r\ndata: {}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(got, vec![ev("ping", "{}"), ev("", "x\ny")]);
        assert!(feed(b"event: only\n\n").is_empty(), "no data, no event");
    }

    #[test]
    fn an_unterminated_last_event_is_kept() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: [DONE]").unwrap_or_default().is_empty());
        assert_eq!(p.finish(), Some(ev("", "[DONE]")));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn a_line_cut_into_many_reads_is_read_whole() {
        let mut p = SseParser::default();
        let data = "x".repeat(100_000);
        let whole = format!("data: {data}\n\n");
        let mut got = Vec::new();
        for piece in whole.as_bytes().chunks(7) {
            got.extend(p.feed(piece).unwrap_or_default());
        }
        assert_eq!(got, vec![ev("", &data)]);
    }

    #[test]
    fn an_event_over_the_limit_is_an_error() {
        let mut p = SseParser::default();
        let line = format!("data: {}\n", "y".repeat(1 << 20));
        let mut result = Ok(Vec::new());
        for _ in 0..5 {
            result = p.feed(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        let err = result.expect_err("a 5 MiB event");
        assert!(err.to_string().contains("over 4 MiB"), "{err}");
        // Just under the limit still works.
        let mut p = SseParser::default();
        let data = "z".repeat(MAX_EVENT_BYTES - 100);
        let got = p.feed(format!("data: {data}\n\n").as_bytes());
        assert_eq!(got.map(|e| e.len()).ok(), Some(1));
    }
}
