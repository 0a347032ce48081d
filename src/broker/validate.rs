//! Channel-name rules, checked in the order the real server checks them (KUBEMQ.md §1.3).

use super::config::EdgeLimits;
use super::errors::KubeMqError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The size limits of [`EdgeLimits`], process-wide: validation runs deep in every path,
/// and one broker runs per process (tests that start several use the defaults).
static MAX_CHANNEL_NAME: AtomicUsize = AtomicUsize::new(246);
static MAX_METADATA: AtomicUsize = AtomicUsize::new(1024 * 1024);

/// Applies the configured size limits; a channel-name limit above
/// [`EdgeLimits::CHANNEL_NAME_CEILING`] is lowered to it.
pub fn apply(limits: &EdgeLimits) {
    let name = limits
        .max_channel_name_bytes
        .clamp(1, EdgeLimits::CHANNEL_NAME_CEILING);
    MAX_CHANNEL_NAME.store(name, Ordering::Relaxed);
    MAX_METADATA.store(limits.max_metadata_bytes, Ordering::Relaxed);
}

/// The longest channel name accepted.
pub fn max_channel_name() -> usize {
    MAX_CHANNEL_NAME.load(Ordering::Relaxed)
}

fn channel_length(channel: &str) -> Result<(), KubeMqError> {
    let max = max_channel_name();
    if channel.len() > max {
        return Err(KubeMqError::ChannelTooLong { max });
    }
    Ok(())
}

/// Metadata plus every tag key and value must fit [`EdgeLimits::max_metadata_bytes`].
pub fn metadata(metadata: &str, tags: &HashMap<String, String>) -> Result<(), KubeMqError> {
    let max = MAX_METADATA.load(Ordering::Relaxed);
    let mut size = metadata.len();
    for (k, v) in tags {
        size = size.saturating_add(k.len() + v.len());
    }
    if size > max {
        return Err(KubeMqError::MetadataTooLarge { max });
    }
    Ok(())
}

/// Rules for a channel a message is published to (events, events store, commands,
/// queries, and `SendResponse.ReplyChannel`): non-empty, no trailing `.`, no space,
/// no wildcard.
pub fn publish_channel(channel: &str) -> Result<(), KubeMqError> {
    subscribe_channel(channel)?;
    if has_wildcard(channel) {
        return Err(KubeMqError::ChannelWildcards);
    }
    Ok(())
}

/// Rules for a subscription pattern: as for publishing, but NATS wildcards are allowed.
pub fn subscribe_channel(channel: &str) -> Result<(), KubeMqError> {
    if channel.is_empty() {
        return Err(KubeMqError::ChannelEmpty);
    }
    if channel.ends_with('.') {
        return Err(KubeMqError::ChannelTrailingDot);
    }
    if channel.contains(' ') {
        return Err(KubeMqError::ChannelWhitespace);
    }
    channel_length(channel)
}

/// A client id must be non-empty.
pub fn client_id(client_id: &str) -> Result<(), KubeMqError> {
    if client_id.is_empty() {
        return Err(KubeMqError::ClientIdEmpty);
    }
    Ok(())
}

/// Queues fold every channel-name failure of the real server into one error (120); a
/// name over the length limit gets its own error, which says what to do.
pub fn queue_channel(channel: &str) -> Result<(), KubeMqError> {
    publish_channel(channel).map_err(|e| match e {
        KubeMqError::ChannelTooLong { .. } => e,
        _ => KubeMqError::QueueNameInvalid,
    })
}

/// Whether a channel contains a NATS wildcard (`*` or `>`).
pub fn has_wildcard(channel: &str) -> bool {
    channel.contains(['*', '>'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_run_in_upstream_order() {
        assert_eq!(publish_channel(""), Err(KubeMqError::ChannelEmpty));
        assert_eq!(
            publish_channel("a b."),
            Err(KubeMqError::ChannelTrailingDot)
        );
        assert_eq!(publish_channel("a *"), Err(KubeMqError::ChannelWhitespace));
        assert_eq!(publish_channel("a.*"), Err(KubeMqError::ChannelWildcards));
        assert_eq!(publish_channel("a..b"), Ok(()));
        assert_eq!(publish_channel("a\tb"), Ok(()));
        assert_eq!(subscribe_channel("a.>"), Ok(()));
        assert_eq!(queue_channel("q*"), Err(KubeMqError::QueueNameInvalid));
    }

    #[test]
    fn names_and_metadata_are_checked_at_their_limits() {
        let max = max_channel_name();
        assert_eq!(publish_channel(&"a".repeat(max)), Ok(()));
        assert_eq!(
            queue_channel(&"a".repeat(max + 1)),
            Err(KubeMqError::ChannelTooLong { max })
        );
        let tags = HashMap::from([("k".to_owned(), "v".repeat(1024 * 1024 - 2))]);
        assert_eq!(metadata("m", &tags), Ok(()));
        assert_eq!(
            metadata("mm", &tags),
            Err(KubeMqError::MetadataTooLarge { max: 1024 * 1024 })
        );
    }
}
