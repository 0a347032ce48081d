//! Channel management through the `kubemq.cluster.internal.requests` query that every
//! current SDK sends (create, delete, list), answered in-process (KUBEMQ.md §4.1).
//!
//! Channels exist once created or used; `delete` forgets a channel and purges its data;
//! `list` returns the channels of one type whose name contains `channel_search` (or
//! matches it as a NATS pattern), with live stats, as the JSON array the SDKs parse.

use super::requests::validate_request;
use super::stats::{Kind, Snapshot};
use super::subject;
use crate::broker::ids::now_ns;
use crate::broker::queues::QueueChannelStats;
use crate::broker::{validate, Broker};
use crate::kubemq::{Request, Response};
use serde::Serialize;
use tonic::Status;

/// The query channel the SDKs use for channel management.
pub const INTERNAL_CHANNEL: &str = "kubemq.cluster.internal.requests";

/// A channel type named by the `channel_type` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelType {
    PubSub(Kind),
    Queues,
}

impl ChannelType {
    fn parse(tag: &str) -> Option<Self> {
        Some(match tag {
            "events" => Self::PubSub(Kind::Events),
            "events_store" => Self::PubSub(Kind::EventsStore),
            "commands" => Self::PubSub(Kind::Commands),
            "queries" => Self::PubSub(Kind::Queries),
            "queues" => Self::Queues,
            _ => return None,
        })
    }
}

/// One element of the `list-channels` body. Stats carry exactly the keys the Python SDK
/// requires for the type: `responses` for commands/queries; `waiting`, `expired`,
/// `delayed` for queues.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelJson {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    last_activity: i64,
    is_active: bool,
    incoming: StatsJson,
    outgoing: StatsJson,
}

#[derive(Debug, Default, Serialize)]
struct StatsJson {
    messages: i64,
    volume: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    responses: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expired: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delayed: Option<i64>,
}

/// Answers one channel-management query: `Executed:true` with a JSON body, or
/// `Executed:false` with the reason in `Error`.
pub async fn handle(broker: &Broker, request: Request) -> Result<Response, Status> {
    validate_request(&request, broker.config.limits.max_request_timeout)?;
    let outcome = run(broker, &request).await;
    let (executed, body, error) = match outcome {
        Ok(body) => (true, body, String::new()),
        Err(error) => (false, Vec::new(), error),
    };
    Ok(Response {
        client_id: broker.config.host.clone(),
        request_id: request.request_id,
        body,
        timestamp: now_ns(),
        executed,
        error,
        ..Response::default()
    })
}

fn tag<'a>(request: &'a Request, name: &str) -> &'a str {
    request.tags.get(name).map_or("", String::as_str)
}

async fn run(broker: &Broker, request: &Request) -> Result<Vec<u8>, String> {
    let kind_tag = tag(request, "channel_type");
    let kind =
        ChannelType::parse(kind_tag).ok_or_else(|| format!("invalid channel type '{kind_tag}'"))?;
    let channel = tag(request, "channel");
    match request.metadata.as_str() {
        "create-channel" => create(broker, kind, channel).map(|()| Vec::new()),
        "delete-channel" => delete(broker, kind, channel).await.map(|()| Vec::new()),
        "list-channels" => list(broker, kind, tag(request, "channel_search")),
        other => Err(format!("invalid channel management request '{other}'")),
    }
}

fn check_name(kind: ChannelType, channel: &str) -> Result<(), String> {
    let checked = match kind {
        ChannelType::Queues => validate::queue_channel(channel),
        ChannelType::PubSub(_) => validate::publish_channel(channel),
    };
    checked.map_err(|e| e.to_string())
}

fn create(broker: &Broker, kind: ChannelType, channel: &str) -> Result<(), String> {
    check_name(kind, channel)?;
    match kind {
        ChannelType::Queues => broker.queues.create(channel),
        ChannelType::PubSub(kind) => broker.pubsub.create_channel(kind, channel),
    }
    Ok(())
}

async fn delete(broker: &Broker, kind: ChannelType, channel: &str) -> Result<(), String> {
    check_name(kind, channel)?;
    let deleted = match kind {
        ChannelType::Queues => broker.queues.delete(channel).await,
        ChannelType::PubSub(kind) => broker.pubsub.delete_channel(kind, channel).await,
    };
    deleted.map_err(|e| e.to_string())
}

/// Whether `name` is selected by `search`: empty selects all; a pattern with NATS
/// wildcards selects matching names; anything else selects names containing it.
pub fn selects(search: &str, name: &str) -> bool {
    search.is_empty()
        || name.contains(search)
        || (validate::has_wildcard(search) && subject::matches(search, name))
}

fn list(broker: &Broker, kind: ChannelType, search: &str) -> Result<Vec<u8>, String> {
    let items = match kind {
        ChannelType::Queues => broker
            .queues
            .list(search)
            .into_iter()
            .map(queue_json)
            .collect(),
        ChannelType::PubSub(kind) => broker
            .pubsub
            .list_channels(kind, |name| selects(search, name))
            .into_iter()
            .map(|(name, stats, active)| pubsub_json(kind, name, &stats, active))
            .collect::<Vec<_>>(),
    };
    serde_json::to_vec(&items).map_err(|e| e.to_string())
}

fn pubsub_json(kind: Kind, name: String, s: &Snapshot, active: bool) -> ChannelJson {
    let responses = matches!(kind, Kind::Commands | Kind::Queries).then_some(s.responses);
    ChannelJson {
        name,
        kind: kind.name(),
        last_activity: s.last_activity,
        is_active: active,
        incoming: StatsJson {
            messages: s.in_messages,
            volume: s.in_volume,
            responses,
            ..StatsJson::default()
        },
        outgoing: StatsJson {
            messages: s.out_messages,
            volume: s.out_volume,
            responses,
            ..StatsJson::default()
        },
    }
}

fn queue_json(q: QueueChannelStats) -> ChannelJson {
    let stats = |messages, volume| StatsJson {
        messages,
        volume,
        waiting: Some(q.waiting),
        expired: Some(q.expired),
        delayed: Some(q.delayed),
        ..StatsJson::default()
    };
    ChannelJson {
        incoming: stats(q.incoming_messages, q.incoming_volume),
        outgoing: stats(q.outgoing_messages, q.outgoing_volume),
        name: q.name,
        kind: "queues",
        last_activity: q.last_activity,
        is_active: q.is_active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_is_substring_or_pattern() {
        assert!(selects("", "a.b"));
        assert!(selects("b", "a.b"));
        assert!(selects("a.*", "a.b"));
        assert!(!selects("c", "a.b"));
    }

    #[test]
    fn json_keys_follow_the_type() -> Result<(), serde_json::Error> {
        let s = Snapshot::default();
        let cq = serde_json::to_value(pubsub_json(Kind::Queries, "q".into(), &s, true))?;
        assert_eq!(cq["incoming"]["responses"], 0);
        assert_eq!(cq["type"], "queries");
        assert_eq!(cq["isActive"], true);
        let ev = serde_json::to_value(pubsub_json(Kind::Events, "e".into(), &s, false))?;
        assert!(ev["incoming"].get("responses").is_none());
        assert!(ev.get("lastActivity").is_some());
        Ok(())
    }
}
