//! Broker settings, with KubeMQ community's defaults and limits.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// When the store makes a commit durable against power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every group commit is fsynced before any operation in it is acknowledged.
    /// Concurrent writers share one fsync, so throughput grows with load.
    Always,
    /// Commits reach redb without fsync and a durable commit runs on this interval.
    /// Faster; a crash (kill -9 included) or power loss can lose what was
    /// acknowledged within the last interval, as with the real server's 60 s sync.
    Interval(Duration),
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "always" {
            return Ok(Self::Always);
        }
        let ms = s
            .strip_prefix("interval:")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .ok_or_else(|| {
                format!("unknown fsync policy '{s}': use 'always' or 'interval:<ms>' (e.g. interval:1000)")
            })?;
        Ok(Self::Interval(Duration::from_millis(ms)))
    }
}

/// Queue limits; names and defaults follow `community:config/queue.go`, except the last
/// two, which are ours.
#[derive(Debug, Clone)]
pub struct QueueLimits {
    pub max_number_of_messages: i32,
    pub max_wait_timeout_seconds: i32,
    pub max_expiration_seconds: i32,
    pub max_delay_seconds: i32,
    pub max_receive_count: i32,
    pub max_visibility_seconds: i32,
    pub default_visibility_seconds: i32,
    pub default_wait_timeout_seconds: i32,
    /// Most messages one queue may hold (ready, delayed, in flight, being stored) before
    /// sends to it are refused; 0 means no limit. Every held message costs an index
    /// entry in memory, so this bounds the broker's memory per queue.
    pub max_queue_depth: u64,
    /// Most body bytes one queue may hold, counted like `max_queue_depth`; 0 means no
    /// limit. Bodies live on disk, so this bounds the store's size per queue.
    pub max_queue_bytes: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_number_of_messages: 1024,
            max_wait_timeout_seconds: 3600,
            max_expiration_seconds: 43200,
            max_delay_seconds: 43200,
            max_receive_count: 1024,
            max_visibility_seconds: 43200,
            default_visibility_seconds: 60,
            default_wait_timeout_seconds: 1,
            max_queue_depth: 10_000_000,
            max_queue_bytes: 10 * 1024 * 1024 * 1024,
        }
    }
}

/// Everything the broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address all listeners bind to; loopback unless the operator opens it up.
    pub bind: IpAddr,
    /// gRPC port (0 picks a free one, for tests).
    pub grpc_port: u16,
    /// REST, health and metrics port (0 picks a free one).
    pub rest_port: u16,
    /// Where the store lives.
    pub data_dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// Largest gRPC message accepted or sent, in bytes (KubeMQ's `GRPC_BODY_LIMIT`).
    pub max_message_bytes: usize,
    /// Name reported by Ping and in the REST `Broker` header.
    pub host: String,
    pub queues: QueueLimits,
    /// How long events-store and queue messages are kept (KubeMQ's `MaxRetention`).
    pub retention: Duration,
    /// Buffer of each subscriber's stream; a subscriber that lets it stay full is dropped
    /// from (events) or misses (requests) messages instead of slowing publishers down.
    pub subscriber_buffer: usize,
    /// The same buffer's cap in bytes of body and metadata, so a subscriber that lets
    /// large messages pile up holds at most this much memory.
    pub subscriber_buffer_bytes: usize,
    pub limits: EdgeLimits,
    /// How long an events, commands or queries channel that appeared by use stays listed
    /// after its last message once nobody subscribes to it by name. Without forgetting,
    /// every per-request channel (a streamed answer's) would stay for the process's life.
    pub forget_idle_channels_after: Duration,
}

/// Caps on what one client can make the broker hold, beyond KubeMQ's own settings. The
/// real server has none of these; each default is far above what a well-behaved client
/// needs and low enough that one client cannot exhaust the host.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Longest channel name. 246 is where the real server starts failing queue sends
    /// ("file name too long"), so a name accepted here works there too.
    pub max_channel_name_bytes: usize,
    /// Largest metadata plus tags (keys and values) of one message.
    pub max_metadata_bytes: usize,
    /// Longest timeout a command or query may ask to wait for its response.
    pub max_request_timeout: Duration,
    /// gRPC connections open at once.
    pub max_grpc_connections: usize,
    /// Concurrent calls (HTTP/2 streams) on one gRPC connection.
    pub max_grpc_streams_per_connection: u32,
    /// REST connections open at once.
    pub max_rest_connections: usize,
}

impl EdgeLimits {
    /// The store keys a channel name with a 16-bit length; a name must fit well inside.
    pub const CHANNEL_NAME_CEILING: usize = 4096;
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_channel_name_bytes: 246,
            max_metadata_bytes: 1024 * 1024,
            max_request_timeout: Duration::from_secs(3600),
            max_grpc_connections: 4096,
            max_grpc_streams_per_connection: 1024,
            max_rest_connections: 1024,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            grpc_port: 50000,
            rest_port: 9090,
            data_dir: default_data_dir(),
            fsync: FsyncPolicy::Always,
            max_message_bytes: 100 * 1024 * 1024,
            host: default_host(),
            queues: QueueLimits::default(),
            retention: Duration::from_secs(24 * 3600),
            subscriber_buffer: 1024,
            subscriber_buffer_bytes: 64 * 1024 * 1024,
            limits: EdgeLimits::default(),
            forget_idle_channels_after: Duration::from_secs(60),
        }
    }
}

/// `<user data dir>/llm-router/broker`, or `./data` when the platform has none.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("llm-router").join("broker"))
        .unwrap_or_else(|| PathBuf::from("./data"))
}

/// The OS host name, shaped as the real server shapes it: dots become `_`, and a name
/// starting with a digit gets a `kubemq-` prefix.
pub fn default_host() -> String {
    let name = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
        .replace('.', "_");
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("kubemq-{name}")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!(
            "interval:250".parse(),
            Ok(FsyncPolicy::Interval(Duration::from_millis(250)))
        );
        assert!("interval:0".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
