//! Router configuration: endpoints and routes, layered from built-in defaults,
//! `config/*.toml` and `LLM_ROUTER__…` environment variables; keys only from the
//! environment or `.env`.

use std::path::Path;

/// Validated router configuration (stub until implemented).
#[derive(Debug, Clone, Default)]
pub struct RouterConfig {}

/// Why the configuration cannot be used; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
}

/// Loads defaults, then `dir/*.toml` (if `dir` is given and exists), then the environment.
pub fn load(_dir: Option<&Path>) -> Result<RouterConfig, ConfigError> {
    Ok(RouterConfig::default())
}
