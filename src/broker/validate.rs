//! Channel-name rules, checked in the order the real server checks them (KUBEMQ.md §1.3).

use super::errors::KubeMqError;

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
    Ok(())
}

/// A client id must be non-empty.
pub fn client_id(client_id: &str) -> Result<(), KubeMqError> {
    if client_id.is_empty() {
        return Err(KubeMqError::ClientIdEmpty);
    }
    Ok(())
}

/// Queues fold every channel-name failure into one error (120).
pub fn queue_channel(channel: &str) -> Result<(), KubeMqError> {
    publish_channel(channel).map_err(|_| KubeMqError::QueueNameInvalid)
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
}
