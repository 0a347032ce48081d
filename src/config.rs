//! Router configuration: endpoints and routes, layered from built-in defaults,
//! `config/*.toml` and `LLM_ROUTER__…` environment variables; keys only from the
//! environment or `.env`.
//!
//! The raw layer (`Raw*`, what serde reads) is kept apart from the validated
//! [`RouterConfig`] that the rest of the router uses; [`load`] goes from one to the other.
//! [`models`] reads a request's `model` against the routes; [`keys`] decides per endpoint
//! what a missing key means for `up`.

pub mod keys;
pub mod models;

use crate::provider::ProviderKind;
use crate::secret::Secret;
use config::{Environment, File, FileFormat};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The built-in layer: the article's routes plus task routes and a failover pair.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of environment overrides: `LLM_ROUTER__ROUTES__OPENAI__TIMEOUT=20s`.
pub const ENV_PREFIX: &str = "LLM_ROUTER";

/// Separator between key segments in environment overrides.
pub const ENV_SEPARATOR: &str = "__";

// ---------------------------------------------------------------------------------------
// Validated configuration
// ---------------------------------------------------------------------------------------

/// Validated router configuration: every route's targets name a known endpoint, channels
/// are unique, limits and durations are usable. Disabled routes are already left out.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Every endpoint, sorted by name.
    pub endpoints: Vec<EndpointConfig>,
    /// Every enabled route, sorted by name.
    pub routes: Vec<RouteConfig>,
    pub circuit_breaker: CircuitBreakerConfig,
    pub connections: ConnectionsConfig,
}

/// One provider deployment.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// Name of the environment variable that holds the key, if the endpoint needs one.
    pub api_key_env: Option<String>,
    /// The key, read from the environment or `.env` at load time.
    pub api_key: Option<Secret>,
    /// Longest wait for one attempt's whole answer.
    pub timeout: Duration,
    pub limits: LimitsConfig,
    /// Drop request parameters this endpoint's API cannot honour (`n`, `logprobs` on
    /// Anthropic) instead of refusing the request; off by default, so nothing is
    /// dropped without a word.
    pub drop_unsupported_params: bool,
}

/// One route: a channel and the targets that answer it.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// KubeMQ query channel.
    pub channel: String,
    /// In config order; the router groups them by priority.
    pub targets: Vec<TargetConfig>,
    /// Longest time a request may take in all, retries and failover included.
    pub timeout: Duration,
    pub retry: RetryConfig,
}

/// An endpoint and the model to ask there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetConfig {
    pub endpoint: String,
    pub model: String,
    /// Share of the load among targets of the same priority.
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// 1 is tried first; a larger number is a failover for the smaller ones.
    #[serde(default = "defaults::priority")]
    pub priority: u32,
}

/// Per-endpoint budgets; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsConfig {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    pub max_concurrency: Option<u32>,
}

/// Retries of one target, with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetryConfig {
    /// Attempts per target, the first included.
    pub max_attempts: u32,
    /// Ceiling of the first backoff; it doubles per retry up to `max_delay`.
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

/// The circuit breaker every endpoint has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit skips the endpoint before letting one probe through.
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
}

/// The HTTP connections kept open to the endpoints between requests.
///
/// Over HTTP/1.1 every request in flight holds its own connection, about 40 KB of worker
/// memory each, and a burst leaves its connections idle for `idle_timeout`. The cap is
/// not a memory knob for busy endpoints: a worker reuses many more connections than it has
/// requests in flight at any instant, and a cap below that working set closes and reopens
/// them all the time (capped at 32 under 256 requests in flight, one worker's throughput
/// halved). It suits endpoints that drop idle connections early, with a shorter timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConnectionsConfig {
    /// Idle connections kept per endpoint; more are closed as their request finishes.
    pub idle_per_endpoint: usize,
    /// How long an idle connection is kept.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

/// Every default that is not in `config/default.toml`, in one place.
mod defaults {
    use std::time::Duration;

    pub fn weight() -> u32 {
        1
    }
    pub fn priority() -> u32 {
        1
    }
    pub fn enabled() -> bool {
        true
    }
    pub fn route_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn endpoint_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub const MAX_ATTEMPTS: u32 = 3;
    pub const BASE_DELAY: Duration = Duration::from_millis(250);
    pub const MAX_DELAY: Duration = Duration::from_secs(8);
    pub const FAILURE_THRESHOLD: u32 = 5;
    pub const COOL_DOWN: Duration = Duration::from_secs(30);
    pub const IDLE_PER_ENDPOINT: usize = 512;
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: defaults::MAX_ATTEMPTS,
            base_delay: defaults::BASE_DELAY,
            max_delay: defaults::MAX_DELAY,
        }
    }
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            idle_per_endpoint: defaults::IDLE_PER_ENDPOINT,
            idle_timeout: defaults::IDLE_TIMEOUT,
        }
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: defaults::FAILURE_THRESHOLD,
            cool_down: defaults::COOL_DOWN,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why the configuration cannot be used; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Values that parse but do not make sense together; every problem found, `; `-joined.
    #[error("invalid router configuration: {0}")]
    Invalid(String),
    /// A file or environment value that does not parse or has an unknown key.
    #[error("cannot read router configuration: {0}")]
    Load(String),
    /// Endpoints in use whose key variable is not set.
    #[error("{}", missing_keys_text(.0))]
    MissingKeys(Vec<MissingKey>),
}

/// An endpoint that needs a key which is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingKey {
    pub endpoint: String,
    /// The environment variable to set.
    pub variable: String,
}

fn missing_keys_text(missing: &[MissingKey]) -> String {
    let each: Vec<String> = missing
        .iter()
        .map(|m| format!("endpoint '{}' needs {}", m.endpoint, m.variable))
        .collect();
    let pronoun = if missing.len() == 1 { "it" } else { "them" };
    format!(
        "{}; set {pronoun} in the environment or .env, or run with --sim",
        each.join("; ")
    )
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// Loads defaults, then `dir/*.toml` (if `dir` is given and exists), then the environment.
/// Reads `.env` in the current directory, if there is one, without changing the process
/// environment: a variable set in the real environment wins over `.env`.
pub fn load(dir: Option<&Path>) -> Result<RouterConfig, ConfigError> {
    let mut env = dotenv_vars(Path::new(".env"))?;
    // Not `std::env::vars()`, which panics on a variable that is not UTF-8.
    let real = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    env.extend(real);
    load_with_env(dir, &env)
}

/// [`load`] with an explicit environment instead of the process's and `.env`.
pub fn load_with_env(
    dir: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<RouterConfig, ConfigError> {
    let mut builder =
        config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    for file in toml_files(dir)? {
        builder = builder.add_source(File::from(file.as_path()).format(FileFormat::Toml));
    }
    let overrides = Environment::with_prefix(ENV_PREFIX)
        .separator(ENV_SEPARATOR)
        .source(Some(env_overrides(env)));
    let raw: RawConfig = builder
        .add_source(overrides)
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    raw.validate(env)
}

/// The variables of a `.env` file, or none if there is no such file.
fn dotenv_vars(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let unreadable = |e: dotenvy::Error| ConfigError::Load(format!("{}: {e}", path.display()));
    dotenvy::from_path_iter(path)
        .map_err(unreadable)?
        .map(|item| item.map_err(unreadable))
        .collect()
}

/// `dir/*.toml`, sorted by name so the layering order is predictable.
fn toml_files(dir: Option<&Path>) -> Result<Vec<PathBuf>, ConfigError> {
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        return Ok(Vec::new());
    };
    let unreadable = |e: std::io::Error| ConfigError::Load(format!("{}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The `LLM_ROUTER__…` variables with their key segments rewritten to config paths:
/// `_` inside a segment becomes `-` (keys and names are kebab-case) and a numeric segment
/// indexes the list before it, so `…__TARGETS__0__MODEL` is `targets[0].model`.
fn env_overrides(env: &HashMap<String, String>) -> config::Map<String, String> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    env.iter()
        .filter_map(|(key, value)| {
            let rest = key.strip_prefix(&prefix)?;
            let mut path = String::new();
            for segment in rest.split(ENV_SEPARATOR) {
                if !path.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                    path.push_str(&format!("[{segment}]"));
                } else {
                    if !path.is_empty() {
                        path.push_str(ENV_SEPARATOR);
                    }
                    path.push_str(&segment.replace('_', "-"));
                }
            }
            Some((format!("{prefix}{path}"), value.clone()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Raw layer
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(default)]
    endpoints: BTreeMap<String, RawEndpoint>,
    #[serde(default)]
    routes: BTreeMap<String, RawRoute>,
    #[serde(default)]
    circuit_breaker: CircuitBreakerConfig,
    #[serde(default)]
    connections: ConnectionsConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEndpoint {
    kind: ProviderKind,
    base_url: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default = "defaults::endpoint_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    drop_unsupported_params: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRoute {
    channel: String,
    /// A disabled route is validated but not served (and needs no keys).
    #[serde(default = "defaults::enabled")]
    enabled: bool,
    #[serde(default)]
    targets: Vec<TargetConfig>,
    #[serde(default = "defaults::route_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default)]
    retry: RetryConfig,
}

impl RawConfig {
    /// Checks everything, reports every problem at once, and reads the keys from `env`.
    fn validate(self, env: &HashMap<String, String>) -> Result<RouterConfig, ConfigError> {
        let mut problems = Vec::new();
        for (name, endpoint) in &self.endpoints {
            check_name("endpoint", name, &mut problems);
            endpoint.check(name, &mut problems);
        }
        for (name, route) in &self.routes {
            check_name("route", name, &mut problems);
            route.check(name, &self.endpoints, &mut problems);
        }
        check_channels(&self.routes, &mut problems);
        self.circuit_breaker.check(&mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems.join("; ")));
        }
        Ok(self.into_config(env))
    }

    fn into_config(self, env: &HashMap<String, String>) -> RouterConfig {
        let endpoints = self
            .endpoints
            .into_iter()
            .map(|(name, e)| {
                let api_key = e
                    .api_key_env
                    .as_ref()
                    .and_then(|var| env.get(var))
                    .filter(|value| !value.trim().is_empty())
                    .map(|value| Secret::new(value.trim()));
                EndpointConfig {
                    name,
                    kind: e.kind,
                    base_url: e.base_url,
                    api_key_env: e.api_key_env,
                    api_key,
                    timeout: e.timeout,
                    limits: e.limits,
                    drop_unsupported_params: e.drop_unsupported_params,
                }
            })
            .collect();
        let routes = self
            .routes
            .into_iter()
            .filter(|(_, r)| r.enabled)
            .map(|(name, r)| RouteConfig {
                name,
                channel: r.channel,
                targets: r.targets,
                timeout: r.timeout,
                retry: r.retry,
            })
            .collect();
        RouterConfig {
            endpoints,
            routes,
            circuit_breaker: self.circuit_breaker,
            connections: self.connections,
        }
    }
}

/// Names are lowercase kebab-case so that an environment variable can address them.
fn check_name(what: &str, name: &str, problems: &mut Vec<String>) {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !(starts_with_letter && rest_ok) {
        problems.push(format!(
            "{what} name '{name}' must start with a lowercase letter and hold only \
             lowercase letters, digits and '-'"
        ));
    }
}

impl RawEndpoint {
    fn check(&self, name: &str, problems: &mut Vec<String>) {
        let mut problem = |text: String| problems.push(format!("endpoint '{name}': {text}"));
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => problem(format!(
                "base-url '{}' is not an http:// or https:// URL",
                self.base_url
            )),
        }
        if let Some(var) = &self.api_key_env {
            let valid =
                !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                problem(format!(
                    "api-key-env '{var}' is not an environment variable name (letters, digits, '_')"
                ));
            }
        }
        if self.timeout.is_zero() {
            problem("timeout must be longer than 0s".to_owned());
        }
        let limits = [
            ("requests-per-minute", self.limits.requests_per_minute),
            ("tokens-per-minute", self.limits.tokens_per_minute),
            ("max-concurrency", self.limits.max_concurrency),
        ];
        for (key, value) in limits {
            if value == Some(0) {
                problem(format!(
                    "limits.{key} must be at least 1 (leave it out for no limit)"
                ));
            }
        }
    }
}

impl RawRoute {
    fn check(
        &self,
        name: &str,
        endpoints: &BTreeMap<String, RawEndpoint>,
        problems: &mut Vec<String>,
    ) {
        let mut problem = |text: String| problems.push(format!("route '{name}': {text}"));
        if self.channel.trim().is_empty() {
            problem("channel is empty".to_owned());
        }
        if self.targets.is_empty() {
            problem("has no targets; add at least one { endpoint, model }".to_owned());
        }
        for (i, target) in self.targets.iter().enumerate() {
            if let Some(text) = target_problem(target, endpoints) {
                problem(format!("target {} ({}): {text}", i + 1, target.endpoint));
            }
            let earlier = &self.targets[..i];
            if earlier
                .iter()
                .any(|t| t.endpoint == target.endpoint && t.model == target.model)
            {
                problem(format!(
                    "target {} repeats endpoint '{}' with model '{}'",
                    i + 1,
                    target.endpoint,
                    target.model
                ));
            }
        }
        if self.timeout.is_zero() {
            problem("timeout must be longer than 0s".to_owned());
        }
        if let Some(text) = self.retry.problem() {
            problem(text);
        }
    }
}

fn target_problem(
    target: &TargetConfig,
    endpoints: &BTreeMap<String, RawEndpoint>,
) -> Option<String> {
    if !endpoints.contains_key(&target.endpoint) {
        let known: Vec<&str> = endpoints.keys().map(String::as_str).collect();
        return Some(format!(
            "unknown endpoint '{}' (known: {})",
            target.endpoint,
            known.join(", ")
        ));
    }
    if target.model.trim().is_empty() {
        return Some("model is empty".to_owned());
    }
    if target.weight == 0 {
        return Some("weight must be at least 1".to_owned());
    }
    None
}

impl RetryConfig {
    fn problem(&self) -> Option<String> {
        if self.max_attempts == 0 {
            return Some("retry.max-attempts must be at least 1 (1 means no retry)".to_owned());
        }
        if self.base_delay > self.max_delay {
            return Some(format!(
                "retry.base-delay ({}) is longer than retry.max-delay ({})",
                humantime_serde::re::humantime::format_duration(self.base_delay),
                humantime_serde::re::humantime::format_duration(self.max_delay)
            ));
        }
        None
    }
}

impl CircuitBreakerConfig {
    fn check(&self, problems: &mut Vec<String>) {
        if self.failure_threshold == 0 {
            problems.push("circuit-breaker.failure-threshold must be at least 1".to_owned());
        }
        if self.cool_down.is_zero() {
            problems.push("circuit-breaker.cool-down must be longer than 0s".to_owned());
        }
    }
}

/// Two enabled routes on one channel would race for the same requests.
fn check_channels(routes: &BTreeMap<String, RawRoute>, problems: &mut Vec<String>) {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, route) in routes.iter().filter(|(_, r)| r.enabled) {
        if let Some(first) = owner.insert(&route.channel, name) {
            problems.push(format!(
                "routes '{first}' and '{name}' both use channel '{}'; give each its own",
                route.channel
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Runtime adjustments
// ---------------------------------------------------------------------------------------

impl RouterConfig {
    /// Points every endpoint at the simulated provider at `base_url`; no key is needed.
    pub fn with_sim(mut self, base_url: &str) -> Self {
        for endpoint in &mut self.endpoints {
            endpoint.kind = ProviderKind::Sim;
            endpoint.base_url = base_url.to_owned();
            endpoint.api_key = None;
        }
        self
    }

    /// Endpoints used by a route whose key variable is unset, in name order.
    pub fn missing_keys(&self) -> Vec<MissingKey> {
        self.endpoints
            .iter()
            .filter(|e| e.kind != ProviderKind::Sim && e.api_key.is_none())
            .filter(|e| self.routes.iter().any(|r| r.uses(&e.name)))
            .filter_map(|e| {
                Some(MissingKey {
                    endpoint: e.name.clone(),
                    variable: e.api_key_env.clone()?,
                })
            })
            .collect()
    }

    /// Fails, naming the variables, when an endpoint in use has no key.
    pub fn check_keys(&self) -> Result<(), ConfigError> {
        let missing = self.missing_keys();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::MissingKeys(missing))
        }
    }

    /// The endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointConfig> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

impl RouteConfig {
    /// Whether a target of this route is on `endpoint`.
    pub fn uses(&self, endpoint: &str) -> bool {
        self.targets.iter().any(|t| t.endpoint == endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let mut f = std::fs::File::create(dir.path().join(name)).unwrap();
            f.write_all(text.as_bytes()).unwrap();
        }
        dir
    }

    fn load_files(files: &[(&str, &str)]) -> Result<RouterConfig, ConfigError> {
        let dir = dir_with(files);
        load_with_env(Some(dir.path()), &HashMap::new())
    }

    fn invalid(files: &[(&str, &str)]) -> String {
        match load_files(files) {
            Err(e @ (ConfigError::Invalid(_) | ConfigError::Load(_))) => e.to_string(),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    fn route<'a>(config: &'a RouterConfig, name: &str) -> &'a RouteConfig {
        config.routes.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn default_config_reproduces_the_article() {
        let config = load_with_env(None, &HashMap::new()).unwrap();
        let openai = route(&config, "openai");
        assert_eq!(openai.channel, "openai_requests");
        assert_eq!(openai.targets[0].endpoint, "openai");
        assert_eq!(openai.targets[0].model, "gpt-4o-mini");
        assert_eq!(openai.targets[1].priority, 2, "failover pair");
        let claude = route(&config, "claude");
        assert_eq!(claude.channel, "claude_requests");
        assert_eq!(claude.targets[0].endpoint, "anthropic");
        assert_eq!(route(&config, "summarize").channel, "summarize_requests");
        assert_eq!(route(&config, "sentiment").channel, "sentiment_requests");
        let anthropic = config.endpoint("anthropic").unwrap();
        assert_eq!(anthropic.kind, ProviderKind::Anthropic);
        assert_eq!(anthropic.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
        assert_eq!(openai.retry, RetryConfig::default());
        assert_eq!(config.circuit_breaker, CircuitBreakerConfig::default());
    }

    #[test]
    fn file_overrides_default_and_env_overrides_file() {
        let dir = dir_with(&[(
            "router.toml",
            "[routes.openai]\ntimeout = \"5s\"\nretry = { max-attempts = 5 }\n\
             [endpoints.openai.limits]\nrequests-per-minute = 60\n",
        )]);
        let from_file = load_with_env(Some(dir.path()), &HashMap::new()).unwrap();
        let openai = route(&from_file, "openai");
        assert_eq!(openai.timeout, Duration::from_secs(5));
        assert_eq!(openai.retry.max_attempts, 5);
        assert_eq!(openai.retry.base_delay, RetryConfig::default().base_delay);
        assert_eq!(
            openai.channel, "openai_requests",
            "untouched keys keep the default"
        );
        let limits = from_file.endpoint("openai").unwrap().limits;
        assert_eq!(limits.requests_per_minute, Some(60));

        let vars = env(&[
            ("LLM_ROUTER__ROUTES__OPENAI__TIMEOUT", "7s"),
            (
                "LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__BASE_URL",
                "http://127.0.0.1:9",
            ),
            ("LLM_ROUTER__ROUTES__OPENAI__TARGETS__0__MODEL", "gpt-4o"),
            ("LLM_ROUTER__CIRCUIT_BREAKER__COOL_DOWN", "3s"),
            ("LLM_ROUTER__ROUTES__SUMMARIZE__ENABLED", "false"),
            ("UNRELATED", "x"),
        ]);
        let from_env = load_with_env(Some(dir.path()), &vars).unwrap();
        let openai = route(&from_env, "openai");
        assert_eq!(openai.timeout, Duration::from_secs(7));
        assert_eq!(openai.retry.max_attempts, 5, "file layer still applies");
        assert_eq!(openai.targets[0].model, "gpt-4o");
        assert_eq!(openai.targets[1].model, "gpt-4.1-mini");
        let backup = from_env.endpoint("openai-backup").unwrap();
        assert_eq!(backup.base_url, "http://127.0.0.1:9");
        assert_eq!(from_env.circuit_breaker.cool_down, Duration::from_secs(3));
        assert!(from_env.routes.iter().all(|r| r.name != "summarize"));
    }

    #[test]
    fn files_apply_in_name_order() {
        let config = load_files(&[
            ("20-late.toml", "[routes.claude]\ntimeout = \"2s\"\n"),
            ("10-early.toml", "[routes.claude]\ntimeout = \"1s\"\n"),
            ("notes.txt", "not toml"),
        ])
        .unwrap();
        assert_eq!(route(&config, "claude").timeout, Duration::from_secs(2));
    }

    #[test]
    fn missing_dir_is_only_the_defaults() {
        let config = load_with_env(Some(Path::new("/nonexistent/llm-router")), &HashMap::new());
        assert_eq!(config.unwrap().routes.len(), 4);
    }

    #[test]
    fn keys_come_from_the_environment_and_missing_ones_are_named() {
        let config = load_with_env(None, &env(&[("OPENAI_API_KEY", "sk-test")])).unwrap();
        let key = config.endpoint("openai").unwrap().api_key.as_ref().unwrap();
        assert_eq!(key.expose(), "sk-test");
        assert_eq!(
            config.check_keys().unwrap_err().to_string(),
            "endpoint 'anthropic' needs ANTHROPIC_API_KEY; set it in the environment or .env, \
             or run with --sim"
        );

        let none = load_with_env(None, &HashMap::new()).unwrap();
        assert_eq!(
            none.check_keys().unwrap_err().to_string(),
            "endpoint 'anthropic' needs ANTHROPIC_API_KEY; endpoint 'openai' needs OPENAI_API_KEY; \
             endpoint 'openai-backup' needs OPENAI_API_KEY; set them in the environment or .env, \
             or run with --sim"
        );
        let both = env(&[("OPENAI_API_KEY", "a"), ("ANTHROPIC_API_KEY", "b")]);
        load_with_env(None, &both).unwrap().check_keys().unwrap();
    }

    #[test]
    fn a_disabled_route_needs_no_key() {
        let vars = env(&[
            ("OPENAI_API_KEY", "sk"),
            ("LLM_ROUTER__ROUTES__CLAUDE__ENABLED", "false"),
            ("LLM_ROUTER__ROUTES__SUMMARIZE__ENABLED", "false"),
        ]);
        load_with_env(None, &vars).unwrap().check_keys().unwrap();
    }

    #[test]
    fn sim_needs_no_key() {
        let config = load_with_env(None, &HashMap::new())
            .unwrap()
            .with_sim("http://127.0.0.1:8089");
        config.check_keys().unwrap();
        assert!(config
            .endpoints
            .iter()
            .all(|e| e.kind == ProviderKind::Sim && e.base_url == "http://127.0.0.1:8089"));
    }

    #[test]
    fn dotenv_file_is_read_without_touching_the_environment() {
        let dir = dir_with(&[(".env", "OPENAI_API_KEY=from-dotenv\n# comment\nX=\"y z\"\n")]);
        let vars = dotenv_vars(&dir.path().join(".env")).unwrap();
        assert_eq!(vars["OPENAI_API_KEY"], "from-dotenv");
        assert_eq!(vars["X"], "y z");
        assert!(dotenv_vars(&dir.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn unknown_endpoint_is_named_with_the_known_ones() {
        let text = invalid(&[(
            "a.toml",
            "[routes.x]\nchannel = \"x\"\ntargets = [{ endpoint = \"nope\", model = \"m\" }]\n",
        )]);
        assert!(
            text.contains(
                "route 'x': target 1 (nope): unknown endpoint 'nope' \
                 (known: anthropic, openai, openai-backup)"
            ),
            "{text}"
        );
    }

    #[test]
    fn duplicate_channel_names_both_routes() {
        let text = invalid(&[(
            "a.toml",
            "[routes.copy]\nchannel = \"openai_requests\"\n\
             targets = [{ endpoint = \"openai\", model = \"m\" }]\n",
        )]);
        assert!(
            text.contains("routes 'copy' and 'openai' both use channel 'openai_requests'")
                || text.contains("routes 'openai' and 'copy' both use channel 'openai_requests'"),
            "{text}"
        );
    }

    #[test]
    fn empty_targets_and_bad_values_are_all_reported() {
        let text = invalid(&[(
            "a.toml",
            "[routes.empty]\nchannel = \"e\"\ntimeout = \"0s\"\n\
             retry = { max-attempts = 0 }\n\
             [routes.slow]\nchannel = \"s\"\nretry = { base-delay = \"10s\", max-delay = \"1s\" }\n\
             targets = [{ endpoint = \"openai\", model = \"m\", weight = 0 },\n\
                        { endpoint = \"openai\", model = \"m\" }]\n\
             [endpoints.bad]\nkind = \"openai\"\nbase-url = \"ftp://x\"\napi-key-env = \"A-B\"\n\
             limits = { requests-per-minute = 0 }\n\
             [circuit-breaker]\nfailure-threshold = 0\n",
        )]);
        for expected in [
            "route 'empty': has no targets",
            "route 'empty': timeout must be longer than 0s",
            "route 'empty': retry.max-attempts must be at least 1",
            "route 'slow': retry.base-delay (10s) is longer than retry.max-delay (1s)",
            "route 'slow': target 1 (openai): weight must be at least 1",
            "route 'slow': target 2 repeats endpoint 'openai' with model 'm'",
            "endpoint 'bad': base-url 'ftp://x' is not an http:// or https:// URL",
            "endpoint 'bad': api-key-env 'A-B' is not an environment variable name",
            "endpoint 'bad': limits.requests-per-minute must be at least 1",
            "circuit-breaker.failure-threshold must be at least 1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }
    }

    #[test]
    fn names_must_be_addressable_from_the_environment() {
        let text = invalid(&[(
            "a.toml",
            "[endpoints.Open_AI]\nkind = \"openai\"\nbase-url = \"http://127.0.0.1:1\"\n",
        )]);
        assert!(
            text.contains(
                "endpoint name 'Open_AI' must start with a lowercase letter and hold only \
                 lowercase letters, digits and '-'"
            ),
            "{text}"
        );
    }

    #[test]
    fn bad_duration_names_the_key() {
        let text = invalid(&[("a.toml", "[routes.openai]\ntimeout = \"soon\"\n")]);
        assert!(
            text.starts_with("cannot read router configuration:"),
            "{text}"
        );
        assert!(text.contains("routes.openai.timeout"), "{text}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let text = invalid(&[("a.toml", "[routes.openai]\ntimout = \"5s\"\n")]);
        assert!(text.contains("timout"), "{text}");
        let vars = env(&[("LLM_ROUTER__ROUTES__OPENAI__NOPE", "1")]);
        let text = load_with_env(None, &vars).unwrap_err().to_string();
        assert!(text.contains("nope"), "{text}");
    }

    #[test]
    fn unknown_kind_is_refused() {
        let text = invalid(&[("a.toml", "[endpoints.openai]\nkind = \"gemini\"\n")]);
        assert!(text.contains("gemini"), "{text}");
    }

    /// `config/example.toml` is all comments (so a config dir may hold it); its `# key` lines,
    /// uncommented, must be a valid configuration.
    #[test]
    fn example_toml_is_valid_when_uncommented() {
        let example = include_str!("../config/example.toml");
        let active: String = example
            .lines()
            .filter(|l| !l.trim().is_empty())
            .inspect(|l| assert!(l.starts_with('#'), "active line in example.toml: {l}"))
            .filter(|l| !l.starts_with("##"))
            .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
            .collect();
        let config = load_files(&[("example.toml", &active)]).unwrap();
        let as_shipped = load_files(&[("example.toml", example)]).unwrap();
        assert_eq!(
            as_shipped.routes.len(),
            4,
            "all comments: only the defaults"
        );
        assert!(config.routes.iter().any(|r| r.name == "openai"));
    }
}
