//! KubeMQ's gRPC API: types, client and server generated from `proto/kubemq.proto`.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod generated {
    tonic::include_proto!("kubemq");
}

pub use generated::*;

pub mod client;
pub mod queues;

/// The encoded descriptor set of `proto/kubemq.proto`, for JSON mapping by field name.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kubemq_descriptor.bin"));
