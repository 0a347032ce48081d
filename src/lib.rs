//! llm-router: an LLM router that puts the KubeMQ message broker between applications and
//! LLM providers.
//!
//! # Layout
//! - [`kubemq`]: KubeMQ's gRPC API, generated from `proto/kubemq.proto`.
//! - [`broker`]: the embedded KubeMQ-compatible broker (events, events store, commands,
//!   queries, queues, durable storage, REST, health and metrics).
//! - [`provider`]: OpenAI, Anthropic and the simulated provider behind one contract.
//! - [`sim`]: the simulated provider's HTTP server (`llm-router sim-provider`).
//! - [`config`]: endpoints and routes, layered from defaults, `config/*.toml` and env.
//! - [`routing`]: route table, retry with backoff, failover, circuit breaker, limits.
//! - [`worker`]: takes requests off the broker and answers them through [`routing`].
//! - [`gateway`]: the OpenAI-compatible HTTP front door, sending chat requests as queries.
//! - [`edge`]: connection caps and slow-client deadlines shared by every listener.
//! - [`metrics`]: the Prometheus recorder and label rules.
//! - [`logging`]: text or JSON logs on stderr; prompt text only with `--log-prompts`.
//! - [`batch`]: bulk jobs in OpenAI's Batch format: the file format and the result files.

pub mod batch;
pub mod broker;
pub mod config;
pub mod edge;
pub mod gateway;
pub mod kubemq;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod provider;
pub mod routing;
pub mod secret;
pub mod sim;
pub mod worker;
