//! KubeMQ's error catalogue, byte for byte: SDKs and users match on these texts and numbers.
//!
//! How an error reaches the client depends on the RPC family (KUBEMQ.md §1.1): pub/sub and
//! RPC calls fail with gRPC `INTERNAL` and the text; queue calls answer in-band
//! (`IsError`/`Error`) with gRPC OK.

use tonic::Status;

/// One entry of the catalogue. The `Display` form is the exact wire text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KubeMqError {
    #[error("Error 101: invalid clientID value, cannot be empty")]
    ClientIdEmpty,
    #[error("Error 102: invalid channel value, cannot be empty")]
    ChannelEmpty,
    #[error("Error 107: invalid channel value, no wildcards are allowed")]
    ChannelWildcards,
    #[error("Error 108: invalid channel value, no white spaces are allowed")]
    ChannelWhitespace,
    #[error("Error 109: invalid set timeout value, cannot be 0 or negative")]
    TimeoutInvalid,
    #[error("Error 110: invalid message, cannot be empty")]
    MessageEmpty,
    #[error("Error 111: invalid subscription type, cannot be undefined or 0")]
    SubscriptionTypeUndefined,
    #[error(
        "Error 112: invalid subscription type start at sequence value, cannot by 0 or negative"
    )]
    StartAtSequenceInvalid,
    #[error("Error 113: invalid subscription type start at time value, cannot by 0 or negative")]
    StartAtTimeInvalid,
    #[error(
        "Error 114: invalid subscription type start at time delta value, cannot by 0 or negative"
    )]
    StartAtTimeDeltaInvalid,
    #[error("Error 115: invalid request, cannot be empty")]
    RequestEmpty,
    #[error("Error 116: invalid cache ttl value, cannot be 0 or negative")]
    CacheTtlInvalid,
    #[error("Error 117: invalid request id, cannot be empty")]
    RequestIdEmpty,
    #[error("Error 118: event store parameters were set but subscribe type is not event store")]
    EventsStoreParamsOnEvents,
    #[error("Error 119: invalid channel value, cannot end with `.`")]
    ChannelTrailingDot,
    #[error("Error 120: invalid queue name value, cannot be empty, contains wildcards ,white spaces and end with dot")]
    QueueNameInvalid,
    #[error("Error 121: cannot subscribe to a queue")]
    CannotSubscribeToQueue,
    #[error(
        "Error 122: max messages should be between 1 and max message setting in kubemq config  "
    )]
    MaxMessagesInvalid,
    #[error("Error 123: cannot ack the current message")]
    CannotAckCurrent,
    #[error("Error 124: no active message to ack")]
    NoActiveMessageToAck,
    #[error("Error 125: ack sequence cannot be 0 or negative")]
    AckSequenceInvalid,
    #[error("Error 126: no active message to send")]
    NoActiveMessageToSend,
    #[error(
        "Error 127: invalid visibility time, cannot be negative or exceed setting in kubemq config"
    )]
    VisibilityInvalid,
    #[error("Error 128: subscription to queue is already active")]
    SubscriptionAlreadyActive,
    #[error("Error 129: current visibility timer expired")]
    VisibilityExpired,
    #[error("Error 130: error during send message to queue")]
    SendToQueueFailed,
    #[error("Error 131: invalid queue message")]
    InvalidQueueMessage,
    #[error("Error 132: invalid stream queue messages request type")]
    InvalidStreamRequestType,
    #[error("Error 133: invalid expiration seconds, exceed max expiration seconds setting in kubemq config")]
    ExpirationInvalid,
    #[error("Error 134: invalid max received count, cannot be negative or exceed max receive count setting in kubemq config")]
    MaxReceiveCountInvalid,
    #[error("Error 135: invalid delay seconds, exceed max delay seconds setting in kubemq config")]
    DelayInvalid,
    #[error("Error 136: invalid wait timeout, value cannot be negative or exceed max wait timeout seconds setting in kubemq config")]
    WaitTimeoutInvalid,
    #[error("Error 137: no active message to reject")]
    NoActiveMessageToReject,
    #[error("Error 138: no new message in queue, wait time expired")]
    NoNewMessage,
    // The limits below are llm-router's own (the real server has none); they keep the
    // catalogue's style and a number range of their own.
    #[error("Error 150: invalid channel value, longer than {max} bytes; use a shorter name or raise the broker's --max-channel-name-bytes")]
    ChannelTooLong { max: usize },
    #[error("Error 151: invalid message, metadata and tags are larger than {max} bytes; move the data into the body or raise the broker's --max-metadata-bytes")]
    MetadataTooLarge { max: usize },
    #[error("Error 152: invalid set timeout value, longer than the broker's limit of {max_ms} ms; use a shorter timeout or raise the broker's --max-request-timeout")]
    TimeoutTooLong { max_ms: u64 },
    #[error("Error 206: invalid request type")]
    InvalidRequestType,
    #[error("Error 207: invalid subscribe type")]
    InvalidSubscribeType,
    #[error("Error 301: timeout for request message")]
    RequestTimeout,
    #[error("Error 409: server is in shutdown mode")]
    ShuttingDown,
}

/// A send refused by a per-queue limit. Not in v2.4.0's catalogue: there these limits
/// (`Store.MaxMessages`, `Store.MaxQueueSize`) are off by default and, when set, make the
/// STAN store silently discard the oldest messages. Refusing the send instead loses
/// nothing; the numbers continue the queue range after 138 and the texts say what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueFull {
    #[error("Error 139: queue {queue} is full: {held} messages held, limit {limit}; consume from it or raise --max-queue-depth")]
    Depth {
        queue: String,
        held: u64,
        limit: u64,
    },
    #[error("Error 140: queue {queue} is full: {held} body bytes held and this message adds {adding}, limit {limit}; consume from it or raise --max-queue-bytes")]
    Bytes {
        queue: String,
        held: u64,
        adding: u64,
        limit: u64,
    },
}

impl KubeMqError {
    /// The status used by the pub/sub and RPC families: `INTERNAL` with the exact text.
    pub fn status(self) -> Status {
        Status::internal(self.to_string())
    }
}

impl From<KubeMqError> for Status {
    fn from(err: KubeMqError) -> Self {
        err.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_keep_upstream_spacing_and_typos() {
        assert!(KubeMqError::MaxMessagesInvalid
            .to_string()
            .ends_with("config  "));
        assert_eq!(
            KubeMqError::ChannelTrailingDot.to_string(),
            "Error 119: invalid channel value, cannot end with `.`"
        );
        assert!(KubeMqError::StartAtSequenceInvalid
            .to_string()
            .contains("cannot by 0"));
    }
}
