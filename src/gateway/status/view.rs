//! The document `/status.json` serves, and how the workers' reports of each endpoint
//! merge into one row: the worst circuit, summed in-flight and headroom, the slowest
//! worker's latency.

use crate::config::RouterConfig;
use crate::provider::ProviderKind;
use crate::routing::EndpointStatus;
use serde::Serialize;

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusDoc {
    /// Unix ms when this was put together.
    pub generated_at: u64,
    pub broker: BrokerView,
    pub routes: Vec<RouteView>,
    pub endpoints: Vec<EndpointView>,
    pub workers: Vec<WorkerView>,
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerView {
    pub address: String,
    /// Whether the status page's own connection to the broker is up.
    pub connected: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    pub name: String,
    pub channel: String,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    pub endpoint: String,
    pub model: String,
    /// 1 is tried first; larger numbers are failovers.
    pub priority: u32,
    pub weight: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    pub name: String,
    pub kind: ProviderKind,
    /// `healthy`, `degraded` (some circuit not closed), `down` (every circuit open) or
    /// `unknown` (no live worker reports it).
    pub health: &'static str,
    /// The worst circuit state among the live workers.
    pub circuit: String,
    pub in_flight: u32,
    pub p50_ms: Option<u32>,
    pub p95_ms: Option<u32>,
    pub headroom: Headroom,
    /// Each live worker's own report.
    pub workers: Vec<WorkerEndpoint>,
}

/// Requests left this minute across the live workers' shares, or no limit at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Headroom {
    Unlimited(&'static str),
    Limited { left: u32, per_minute: u32 },
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerEndpoint {
    pub worker: String,
    #[serde(flatten)]
    pub status: EndpointStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    pub id: String,
    /// Milliseconds since its last heartbeat arrived.
    pub last_heard_ms: u64,
    /// Heard within the membership expiry.
    pub live: bool,
}

/// A batch job and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub id: String,
    pub route: String,
    pub input: String,
    /// Unix seconds.
    pub created_at: i64,
    pub lines: u64,
    /// Lines answered or failed for good (collected, or waiting to be collected).
    pub done: u64,
    pub failed: u64,
    /// `in_progress`, `finished` (results wait to be collected), `completed`,
    /// `cancelling` or `cancelled`.
    pub state: &'static str,
}

/// The routes as configured.
pub fn routes(config: &RouterConfig) -> Vec<RouteView> {
    config
        .routes
        .iter()
        .map(|r| RouteView {
            name: r.name.clone(),
            channel: r.channel.clone(),
            targets: r
                .targets
                .iter()
                .map(|t| TargetView {
                    endpoint: t.endpoint.clone(),
                    model: t.model.clone(),
                    priority: t.priority,
                    weight: t.weight,
                })
                .collect(),
        })
        .collect()
}

/// The configured endpoints: name and kind, nothing secret.
pub fn configured(config: &RouterConfig) -> Vec<(String, ProviderKind)> {
    config
        .endpoints
        .iter()
        .map(|e| (e.name.clone(), e.kind))
        .collect()
}

/// One row per configured endpoint, from the live workers' reports (worker id, report).
pub fn endpoints(
    configured: &[(String, ProviderKind)],
    reports: &[(&str, &[EndpointStatus])],
) -> Vec<EndpointView> {
    configured
        .iter()
        .map(|(name, kind)| {
            let workers: Vec<WorkerEndpoint> = reports
                .iter()
                .filter_map(|(worker, statuses)| {
                    let status = statuses.iter().find(|s| &s.name == name)?;
                    Some(WorkerEndpoint {
                        worker: (*worker).to_owned(),
                        status: status.clone(),
                    })
                })
                .collect();
            merge(name, *kind, workers)
        })
        .collect()
}

fn merge(name: &str, kind: ProviderKind, workers: Vec<WorkerEndpoint>) -> EndpointView {
    let states: Vec<&str> = workers.iter().map(|w| w.status.circuit.as_str()).collect();
    let circuit = states
        .iter()
        .copied()
        .max_by_key(|s| severity(s))
        .unwrap_or("unknown");
    let health = match () {
        () if states.is_empty() => "unknown",
        () if states.iter().all(|s| *s == "open") => "down",
        () if states.iter().any(|s| *s != "closed") => "degraded",
        () => "healthy",
    };
    let sum = |f: fn(&EndpointStatus) -> Option<u32>| -> Option<u32> {
        workers
            .iter()
            .filter_map(|w| f(&w.status))
            .reduce(u32::saturating_add)
    };
    let headroom = match (sum(|s| s.left), sum(|s| s.rpm)) {
        (Some(left), Some(per_minute)) => Headroom::Limited { left, per_minute },
        _ => Headroom::Unlimited("unlimited"),
    };
    EndpointView {
        name: name.to_owned(),
        kind,
        health,
        circuit: circuit.to_owned(),
        in_flight: sum(|s| Some(s.in_flight)).unwrap_or(0),
        p50_ms: workers.iter().filter_map(|w| w.status.p50_ms).max(),
        p95_ms: workers.iter().filter_map(|w| w.status.p95_ms).max(),
        headroom,
        workers,
    }
}

fn severity(state: &str) -> u8 {
    match state {
        "closed" => 0,
        "half_open" => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(circuit: &str, in_flight: u32, p95: Option<u32>, rpm: Option<u32>) -> EndpointStatus {
        EndpointStatus {
            name: "e".into(),
            circuit: circuit.into(),
            in_flight,
            p50_ms: p95.map(|p| p / 2),
            p95_ms: p95,
            rpm,
            left: rpm.map(|n| n - 1),
        }
    }

    fn row(reports: Vec<EndpointStatus>) -> EndpointView {
        let workers = reports
            .into_iter()
            .enumerate()
            .map(|(i, status)| WorkerEndpoint {
                worker: format!("w{i}"),
                status,
            })
            .collect();
        merge("e", ProviderKind::Sim, workers)
    }

    #[test]
    fn the_worst_circuit_and_the_slowest_worker_show() {
        let r = row(vec![
            report("closed", 2, Some(40), Some(30)),
            report("open", 1, Some(90), Some(30)),
        ]);
        assert_eq!((r.health, r.circuit.as_str()), ("degraded", "open"));
        assert_eq!((r.in_flight, r.p95_ms, r.p50_ms), (3, Some(90), Some(45)));
        assert_eq!(
            r.headroom,
            Headroom::Limited {
                left: 58,
                per_minute: 60
            }
        );
        let down = row(vec![report("open", 0, None, None)]);
        assert_eq!(
            (down.health, down.headroom),
            ("down", Headroom::Unlimited("unlimited"))
        );
        let nobody = row(Vec::new());
        assert_eq!(
            (nobody.health, nobody.circuit.as_str()),
            ("unknown", "unknown")
        );
        assert_eq!(row(vec![report("closed", 0, None, None)]).health, "healthy");
    }
}
