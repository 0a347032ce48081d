//! llm-router: an LLM router that puts the KubeMQ message broker between applications and
//! LLM providers.
//!
//! # Layout
//! - [`kubemq`]: KubeMQ's gRPC API, generated from `proto/kubemq.proto`.
//! - [`broker`]: the embedded KubeMQ-compatible broker (events, events store, commands,
//!   queries, queues, durable storage, REST, health and metrics).

pub mod broker;
pub mod kubemq;
pub mod metrics;
