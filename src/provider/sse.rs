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

/// Splits a byte stream into events. Bytes are buffered until a line is complete, so a
/// multi-byte character or a line cut across reads is never split.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    /// Whether `current` has a data field yet (an event without one is not dispatched).
    has_data: bool,
}

impl SseParser {
    /// Adds bytes and returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(event) = self.line(line) {
                events.push(event);
            }
        }
        events
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
                Ok(Some(bytes)) => self.ready.extend(self.parser.feed(&bytes)),
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
        assert!(p.feed(b"data: {\"a\"").is_empty());
        assert_eq!(p.feed(b":1}\n\n"), vec![ev("", "{\"a\":1}")]);
        let got = p.feed(b": keep-alive\r\nevent: ping\r\ndata: {}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(got, vec![ev("ping", "{}"), ev("", "x\ny")]);
        assert!(p.feed(b"event: only\n\n").is_empty(), "no data, no event");
    }

    #[test]
    fn an_unterminated_last_event_is_kept() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: [DONE]").is_empty());
        assert_eq!(p.finish(), Some(ev("", "[DONE]")));
        assert_eq!(p.finish(), None);
    }
}
