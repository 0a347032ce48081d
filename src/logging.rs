//! Process logging: text or one JSON object per line on stderr, and the one switch that
//! lets prompt text into the logs.
//!
//! Logs carry ids and names (request id, route, endpoint, attempt) as fields, never prompt
//! or answer text and never keys: prompts may hold personal data and logs travel further
//! than the broker's storage. `--log-prompts` is for debugging on one's own machine; code
//! that wants to log a prompt goes through [`prompt`], which checks the switch.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once at startup by `--log-prompts`; read by every request that might log a prompt.
static LOG_PROMPTS: AtomicBool = AtomicBool::new(false);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines (colours when stderr is a terminal).
    Text,
    /// One JSON object per line; an event's fields sit at the top level beside `timestamp`,
    /// `level`, `target` and `message`, the enclosing span's fields (a request's id and
    /// route) under `span`.
    Json,
}

/// Installs the global subscriber on stderr. `RUST_LOG` picks the levels (default `info`).
pub fn init(format: Format, log_prompts: bool) {
    LOG_PROMPTS.store(log_prompts, Ordering::Relaxed);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        Format::Text => builder.init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .init(),
    }
}

/// Whether `--log-prompts` was given.
pub fn prompts_enabled() -> bool {
    LOG_PROMPTS.load(Ordering::Relaxed)
}

/// Logs `text` (a prompt or message content) at debug level with `request_id`, only when
/// `--log-prompts` was given.
pub fn prompt(request_id: &str, route: &str, text: &str) {
    if prompts_enabled() {
        tracing::debug!(request_id, route, prompt = text, "prompt (--log-prompts)");
    }
}

/// Writes a fatal error the way the rest of the log is written, so a JSON log stays
/// one object per line to the end.
pub fn fatal(format: Format, error: &anyhow::Error) {
    match format {
        Format::Json => tracing::error!(error = format!("{error:#}"), "llm-router stopped"),
        Format::Text => {
            use std::io::Write;
            // One clear line for the person at the terminal, whatever RUST_BACKTRACE says.
            let _ = writeln!(std::io::stderr(), "llm-router: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_stay_off_unless_asked() {
        assert!(!prompts_enabled());
        LOG_PROMPTS.store(true, Ordering::Relaxed);
        assert!(prompts_enabled());
        LOG_PROMPTS.store(false, Ordering::Relaxed);
    }
}
