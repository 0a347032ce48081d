//! Membership: every router process announces itself on one events channel, so each can
//! count the live replicas (their share of the endpoints' limits) and the gateway can
//! show them.

use crate::routing::EndpointStatus;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The events channel every router process announces itself on.
pub const MEMBERS_CHANNEL: &str = "llm-router.members";

/// A heartbeat's body. Fields are only ever added, with defaults, so members of
/// different versions read each other's heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: String,
    /// Sender's clock, Unix ms; for people reading the channel. Expiry uses the time a
    /// heartbeat arrived, so clock skew between hosts does not matter.
    pub ts: u64,
    /// The sender's endpoints (circuit, in flight, recent latency, headroom), for the
    /// gateway's status page; a few dozen bytes each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointStatus>,
}

/// How often members announce themselves and how long one counts after it was last heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipOptions {
    pub heartbeat: Duration,
    /// Over three heartbeats, so that one late or lost heartbeat does not change the
    /// count (every change restarts the rate budgets drained).
    pub expiry: Duration,
}

impl Default for MembershipOptions {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            expiry: Duration::from_millis(3500),
        }
    }
}
