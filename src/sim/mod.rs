//! The simulated provider: an HTTP server speaking OpenAI's and Anthropic's wire formats
//! with injectable latency, errors, 429s, hangs, resets and a requests-per-minute limit.
//!
//! Routes: `POST /v1/chat/completions` (OpenAI), `POST /v1/embeddings` (OpenAI),
//! `POST /v1/messages` (Anthropic), `GET /health`, `GET /stats` (the [`SimStats`]
//! counters as JSON), and the test hook `GET /sim/last-request` (`{"path", "body"}` of
//! the last request on a `/v1/` path, body verbatim; 404 `{"path":null,"body":null}`
//! before any).
//!
//! Each API request goes through: API key check (401) → requests-per-minute limit (429)
//! → body parsing and validation (400, in the route's error shape) → one seeded draw
//! deciding reset / hang / 429 / injected error / success → latency → answer. Unknown
//! request fields are always accepted.
//!
//! Answers are deterministic functions of the request:
//! - plain chat echoes the prompt: `sim: <first 50 chars of the last user message>`, cut
//!   by `max_tokens`/stop sequences, tokens counted as whitespace-separated words;
//! - with tools, the sim calls them (rule in `tools`): arguments valid for the tool's
//!   JSON schema (`schema`), ids `call_…`/`toolu_…` hashed from the conversation;
//! - after tool results it answers `Based on NAME: CONTENT`;
//! - `response_format` json_schema / json_object gives a JSON document valid for it;
//! - OpenAI `n` (1..=8) gives n choices, choice `i > 0` suffixed ` (i+1)`; `logprobs`
//!   adds per-token logprobs;
//! - embeddings are unit vectors seeded by a hash of each input, 256 dimensions unless
//!   `dimensions` (1..=3072) says otherwise, as floats or base64 little-endian `f32`s.
//!
//! With `stream: true` the answer comes as server-sent events in the request's format,
//! one word (or a third of a tool call's arguments) per chunk, `chunk_delay_ms` apart,
//! possibly cut by a mid-stream error.
//!
//! Layout: `faults` (the seeded draw), `limit` (the window), `format` (route → wire
//! format), `openai`/`anthropic`/`embeddings` (wire formats), `prompt` (the parsed chat
//! request), `reply` (the format-neutral answer), `echo` (its text), `tools` (which calls),
//! `schema` (values valid for a JSON schema), `vector` (embeddings), `digest` (the
//! hashes), `server` (the pipeline), `last_request` (the test hook), `reset` (the TCP
//! relay that makes resets possible), `stream` (SSE playback), `stats`.

mod anthropic;
mod digest;
mod echo;
mod embeddings;
mod faults;
mod format;
mod last_request;
mod limit;
mod openai;
mod prompt;
mod reply;
mod reset;
mod schema;
mod server;
mod stats;
mod stream;
mod tools;
mod vector;

#[cfg(test)]
mod http_tests;

pub use stats::SimStats;

use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How the simulated provider behaves. Probabilities are of all chat requests that pass
/// the key check and the rate limit, are mutually exclusive and must add up to at most 1.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Fixed latency before every answer, in milliseconds.
    pub latency_ms: u64,
    /// Extra latency drawn uniformly from `0..=jitter_ms`, in milliseconds.
    pub jitter_ms: u64,
    /// Injected errors: `(status, probability)`, e.g. `[(500, 0.05), (503, 0.1)]`.
    pub error_rates: Vec<(u16, f64)>,
    /// Probability of a 429 carrying `Retry-After: retry_after_secs`.
    pub rate_429: f64,
    /// The `Retry-After` value of injected 429s, in seconds.
    pub retry_after_secs: u64,
    /// Probability of never answering (until shutdown): for client timeouts.
    pub hang_rate: f64,
    /// Probability of resetting the TCP connection (RST) without any response.
    pub reset_rate: f64,
    /// Requests per minute over a sliding 60 s window; beyond it, 429 with `Retry-After`
    /// saying when the window has room again.
    pub rpm_limit: Option<u32>,
    /// When set, requests must carry this key (`Authorization: Bearer` for OpenAI,
    /// `x-api-key` for Anthropic) or get 401. The 401 message quotes the presented key
    /// verbatim, as a careless upstream might, so that clients' redaction gets tested:
    /// never give the sim a real key.
    pub api_key: Option<String>,
    /// Seed of the fault draws: request number `n` always draws the same outcome.
    pub seed: u64,
    /// Pause between the chunks of a streamed answer (`stream: true`), in milliseconds,
    /// so that clients can be seen to receive chunks one by one.
    pub chunk_delay_ms: u64,
    /// Probability that a streamed answer is cut after a few chunks by an error (OpenAI:
    /// `data: {"error": …}`; Anthropic: `event: error`), then closed. Drawn apart from the
    /// other faults, which strike before the first chunk. A last user message containing
    /// [`MID_STREAM_ERROR_MARKER`] is always cut, for tests that go through layers which
    /// cannot set this.
    pub mid_stream_error_rate: f64,
}

/// A prompt containing this is answered with a stream cut by an error.
pub const MID_STREAM_ERROR_MARKER: &str = "[sim:mid-stream-error]";

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
            latency_ms: 0,
            jitter_ms: 0,
            error_rates: Vec::new(),
            rate_429: 0.0,
            retry_after_secs: 1,
            hang_rate: 0.0,
            reset_rate: 0.0,
            rpm_limit: None,
            api_key: None,
            seed: 0,
            chunk_delay_ms: 0,
            mid_stream_error_rate: 0.0,
        }
    }
}

impl SimConfig {
    /// Rejects probabilities outside 0..=1 (or adding up past 1) and non-error statuses.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [self.rate_429, self.hang_rate, self.reset_rate];
        let injected = self.error_rates.iter().map(|(_, p)| *p);
        let all: Vec<f64> = rates.into_iter().chain(injected).collect();
        if all
            .iter()
            .chain([&self.mid_stream_error_rate])
            .any(|p| !(0.0..=1.0).contains(p))
        {
            return Err("every rate must be between 0 and 1".into());
        }
        if all.iter().sum::<f64>() > 1.0 + 1e-9 {
            return Err("the rates add up to more than 1".into());
        }
        match self
            .error_rates
            .iter()
            .find(|(s, _)| !(400..=599).contains(s))
        {
            Some((s, _)) => Err(format!("injected status {s} is not an HTTP error")),
            None => Ok(()),
        }
    }
}

/// A running simulated provider.
pub struct RunningSim {
    pub addr: SocketAddr,
    /// Cancel to stop: hanging requests end, connections close, then `task` completes.
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    stats: Arc<stats::Counters>,
}

impl RunningSim {
    /// What the sim has answered so far.
    pub fn stats(&self) -> SimStats {
        self.stats.snapshot()
    }

    /// `http://ADDR`, the base URL to give a provider client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds and serves until `shutdown` is cancelled.
pub async fn start(config: SimConfig) -> std::io::Result<RunningSim> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let stats = Arc::new(stats::Counters::default());
    let task = server::spawn(listener, config, stats.clone(), shutdown.clone()).await?;
    Ok(RunningSim {
        addr,
        shutdown,
        task,
        stats,
    })
}
