//! The wire format of each API route: where it reads the key, how it parses a body into a
//! [`Job`], answers it and refuses. The pipeline in `server` stays format-blind.

use super::prompt::{Prompt, Rejection};
use super::{anthropic, embeddings, openai, reply};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

#[derive(Debug, Clone, Copy)]
pub(super) enum Format {
    OpenAi,
    Anthropic,
    /// OpenAI's embeddings: OpenAI's key header and error bodies.
    Embeddings,
}

/// A parsed request, ready to answer.
pub(super) enum Job {
    Chat(Prompt),
    Embed(embeddings::Request),
}

impl Job {
    /// Whether the answer is streamed.
    pub fn streams(&self) -> bool {
        matches!(self, Job::Chat(p) if p.stream)
    }

    /// Whether the last user message asks for a stream cut by an error.
    pub fn asks_for_cut(&self) -> bool {
        matches!(self, Job::Chat(p) if p.last_user.contains(super::MID_STREAM_ERROR_MARKER))
    }
}

impl Format {
    /// The route, as the test hook reports it.
    pub fn path(self) -> &'static str {
        match self {
            Format::OpenAi => "/v1/chat/completions",
            Format::Anthropic => "/v1/messages",
            Format::Embeddings => "/v1/embeddings",
        }
    }

    pub fn presented_key(self, headers: &HeaderMap) -> Option<&str> {
        match self {
            Format::OpenAi | Format::Embeddings => openai::presented_key(headers),
            Format::Anthropic => anthropic::presented_key(headers),
        }
    }

    pub fn parse(self, body: &[u8]) -> Result<Job, Rejection> {
        match self {
            Format::OpenAi => openai::parse(body).map(Job::Chat),
            Format::Anthropic => anthropic::parse(body).map(Job::Chat),
            Format::Embeddings => embeddings::parse(body).map(Job::Embed),
        }
    }

    pub fn answer(self, n: u64, job: &Job) -> Response {
        match (self, job) {
            (Format::OpenAi, Job::Chat(p)) => openai::answer(n, p, &reply::build(p)),
            (Format::Anthropic, Job::Chat(p)) => anthropic::answer(n, p, &reply::build(p)),
            (_, Job::Embed(r)) => embeddings::answer(r),
            (Format::Embeddings, Job::Chat(_)) => {
                self.error(StatusCode::INTERNAL_SERVER_ERROR, "mismatched job")
            }
        }
    }

    /// The SSE frames of a streamed chat answer (none for other jobs, which never stream).
    pub fn stream_frames(self, n: u64, job: &Job, cut: bool) -> Vec<String> {
        let Job::Chat(p) = job else {
            return Vec::new();
        };
        let reply = reply::build(p);
        match self {
            Format::OpenAi | Format::Embeddings => openai::stream_frames(n, p, &reply, cut),
            Format::Anthropic => anthropic::stream_frames(n, p, &reply, cut),
        }
    }

    pub fn error(self, status: StatusCode, message: &str) -> Response {
        match self {
            Format::OpenAi | Format::Embeddings => openai::error(status, message),
            Format::Anthropic => anthropic::error(status, message),
        }
    }

    /// A 400 for the request's own fault.
    pub fn invalid(self, r: &Rejection) -> Response {
        match self {
            Format::OpenAi | Format::Embeddings => openai::invalid(r),
            Format::Anthropic => anthropic::error(StatusCode::BAD_REQUEST, &r.message),
        }
    }
}
