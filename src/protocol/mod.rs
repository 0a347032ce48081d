//! The wire contract between the router's roles. Gateway, worker and batch all speak to
//! each other through the broker; what they say (channel names, tags, the stream
//! protocol, member heartbeats, failure codes) is defined here once, and each role
//! depends on this module instead of on another role.
//!
//! - [`tags`]: query and message tags, JSON mode, the API a body is for.
//! - [`stream`]: streamed answers as numbered events on a per-request channel.
//! - [`members`]: the heartbeat every router process publishes.
//! - [`failure`]: the stable codes a failed request is reported with.
//! - [`batch`]: the batch channels, queues and line tags.

pub mod batch;
pub mod failure;
pub mod members;
pub mod stream;
pub mod tags;

pub use failure::FailureCode;
