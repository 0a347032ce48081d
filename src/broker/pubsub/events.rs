//! Plain events: fire-and-forget fan-out to the subscribers connected right now.

use super::registry::{Registration, SubStream};
use super::stats::Kind;
use super::PubSub;
use crate::broker::errors::KubeMqError;
use crate::broker::{metrics, validate};
use crate::kubemq::{Event, EventReceive, Subscribe};

/// The checks of SendEvent, for both plain and stored events: 101, 102/119/108/107, 110.
pub fn validate_event(event: &Event) -> Result<(), KubeMqError> {
    validate::client_id(&event.client_id)?;
    validate::publish_channel(&event.channel)?;
    if event.metadata.is_empty() && event.body.is_empty() {
        return Err(KubeMqError::MessageEmpty);
    }
    validate::metadata(&event.metadata, &event.tags)
}

/// Subscription checks shared by events and events store: 101, then 102/119/108.
pub fn validate_subscriber(sub: &Subscribe) -> Result<(), KubeMqError> {
    validate::client_id(&sub.client_id)?;
    validate::subscribe_channel(&sub.channel)
}

impl PubSub {
    /// Publishes a validated plain event to every matching subscriber; success does not
    /// depend on anyone listening.
    pub(super) fn publish_event(&self, event: Event) {
        let counters = self.book.channel(Kind::Events, &event.channel);
        let size = event.body.len() + event.metadata.len();
        counters.incoming(size);
        metrics::message_in(Kind::Events.name(), &event.channel, 1);
        let targets = self.events.route(&event.channel);
        if targets.is_empty() {
            return;
        }
        let msg = EventReceive {
            event_id: event.event_id,
            channel: event.channel,
            metadata: event.metadata,
            body: event.body,
            timestamp: 0,
            sequence: 0,
            tags: event.tags,
        };
        let channel = msg.channel.clone();
        let delivery = self.events.deliver(targets, msg);
        counters.outgoing(delivery.delivered, size);
        metrics::message_out(Kind::Events.name(), &channel, delivery.delivered as u64);
    }

    /// SubscribeToEvents for plain events: 118 if events-store parameters are set.
    pub(super) fn subscribe_plain(
        &self,
        sub: &Subscribe,
    ) -> Result<SubStream<EventReceive, Registration<EventReceive>>, KubeMqError> {
        validate_subscriber(sub)?;
        if sub.events_store_type_data != 0 {
            return Err(KubeMqError::EventsStoreParamsOnEvents);
        }
        if !validate::has_wildcard(&sub.channel) {
            self.book.channel(Kind::Events, &sub.channel).touch();
        }
        Ok(self
            .events
            .subscribe(&sub.channel, &sub.group, self.buffer, self.shutdown.clone()))
    }
}
