//! Limits where clients reach a listener, shared by the broker's gRPC and REST ports, the
//! gateway and the metrics ports: a cap on open connections, and for HTTP a deadline for
//! the request head, so neither a flood of sockets nor a slow-loris client can take the
//! slots steady clients need.
//!
//! - [`conn`]: the connection cap and the accept loop that applies it.
//! - [`http`]: serving an axum router over capped connections with head deadlines.

pub mod conn;
pub mod http;

pub use conn::{Capped, ConnCap};
pub use http::{serve, HttpLimits};
