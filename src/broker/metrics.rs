//! The broker's series. Labels: `pattern` is one of `events`, `events_store`, `commands`,
//! `queries`, `queues`; `channel` goes through [`crate::metrics::channel_label`].

use metrics::{counter, describe_counter, describe_gauge, gauge};

pub const MESSAGES_IN: &str = "llm_router_broker_messages_in_total";
pub const MESSAGES_OUT: &str = "llm_router_broker_messages_out_total";
pub const DROPPED: &str = "llm_router_broker_messages_dropped_total";
pub const QUEUE_DEPTH: &str = "llm_router_broker_queue_depth";
pub const QUEUE_IN_FLIGHT: &str = "llm_router_broker_queue_in_flight";
pub const QUEUE_DELAYED: &str = "llm_router_broker_queue_delayed";
pub const REDELIVERIES: &str = "llm_router_broker_queue_redeliveries_total";
pub const DEAD_LETTERED: &str = "llm_router_broker_queue_dead_lettered_total";
pub const EXPIRED: &str = "llm_router_broker_queue_expired_total";
pub const SUBSCRIBERS: &str = "llm_router_broker_subscribers";

/// Gives every series its help text. Called once when the recorder is installed.
pub fn describe() {
    describe_counter!(
        MESSAGES_IN,
        "Messages accepted by the broker, by pattern and channel."
    );
    describe_counter!(
        MESSAGES_OUT,
        "Messages delivered to subscribers or consumers, by pattern and channel."
    );
    describe_counter!(
        DROPPED,
        "Messages not delivered because a subscriber's buffer stayed full, by pattern."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Messages waiting in a queue (ready, not in flight, not delayed), by channel."
    );
    describe_gauge!(
        QUEUE_IN_FLIGHT,
        "Queue messages delivered and not yet settled, by channel."
    );
    describe_gauge!(
        QUEUE_DELAYED,
        "Queue messages waiting for their delay to pass, by channel."
    );
    describe_counter!(
        REDELIVERIES,
        "Queue messages put back after a failed or abandoned delivery, by channel."
    );
    describe_counter!(DEAD_LETTERED, "Queue messages moved to a dead-letter queue or discarded after MaxReceiveCount, by channel.");
    describe_counter!(
        EXPIRED,
        "Queue messages dropped because they expired, by channel."
    );
    describe_gauge!(SUBSCRIBERS, "Active subscriptions, by pattern.");
}

/// Counts `n` messages accepted on `channel`.
pub fn message_in(pattern: &'static str, channel: &str, n: u64) {
    counter!(MESSAGES_IN, "pattern" => pattern, "channel" => crate::metrics::channel_label(channel))
        .increment(n);
}

/// Counts `n` messages delivered from `channel`.
pub fn message_out(pattern: &'static str, channel: &str, n: u64) {
    counter!(MESSAGES_OUT, "pattern" => pattern, "channel" => crate::metrics::channel_label(channel))
        .increment(n);
}

/// Counts a message dropped for a slow subscriber.
pub fn dropped(pattern: &'static str) {
    counter!(DROPPED, "pattern" => pattern).increment(1);
}

/// Moves the subscriber gauge of `pattern` by `delta`.
pub fn subscribers(pattern: &'static str, delta: f64) {
    gauge!(SUBSCRIBERS, "pattern" => pattern).increment(delta);
}

/// Per-queue counters and gauges.
pub fn queue_counter(name: &'static str, channel: &str, n: u64) {
    counter!(name, "channel" => crate::metrics::channel_label(channel)).increment(n);
}

/// Sets a per-queue gauge.
pub fn queue_gauge(name: &'static str, channel: &str, value: f64) {
    gauge!(name, "channel" => crate::metrics::channel_label(channel)).set(value);
}
