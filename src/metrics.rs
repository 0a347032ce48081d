//! Prometheus metrics shared by every role: one recorder per process, names prefixed
//! `llm_router_`, labels bounded.

pub mod live;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets from 0.5 ms (broker overhead) to 60 s (slow completions).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Installs the process-wide recorder on first use and returns the handle that renders
/// `/metrics`. Several brokers in one process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Buckets make `_seconds` series histograms (not summaries), so Prometheus can
        // aggregate them across replicas with histogram_quantile.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        spawn_upkeep(handle.clone());
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        crate::broker::metrics::describe();
        crate::routing::metrics::describe();
        handle
    })
}

/// The `/metrics` text: the recorder's series, then the [`live`] families'.
pub fn render() -> String {
    let mut text = handle().render();
    text.push_str(&live::render());
    text
}

/// Whose series a `/metrics` port serves. `up` runs every role in one process with one
/// recorder; if each port served everything, a Prometheus scraping the broker, worker and
/// gateway jobs would count every series three times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `llm_router_broker_*`, and the gRPC and REST listeners' connection series.
    Broker,
    /// `llm_router_gateway_*`, and the gateway listener's connection series.
    Gateway,
    /// Everything else: routing, providers, batch consumption, members.
    Worker,
}

impl Role {
    fn owns_family(self, name: &str) -> bool {
        let broker = name.starts_with("llm_router_broker_");
        let gateway = name.starts_with("llm_router_gateway_");
        match self {
            Role::Broker => broker,
            Role::Gateway => gateway,
            Role::Worker => !broker && !gateway,
        }
    }

    fn owns_listener(self, listener: &str) -> bool {
        match self {
            Role::Broker => listener == "grpc" || listener == "rest",
            Role::Gateway => listener == "gateway",
            Role::Worker => !matches!(listener, "grpc" | "rest" | "gateway"),
        }
    }

    /// Whether a line of the text format belongs to this role.
    fn owns_line(self, line: &str) -> bool {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        let name = name.split(['{', ' ']).next().unwrap_or_default();
        if name.starts_with(crate::edge::conn::FAMILY_PREFIX) {
            // Shared by every listener: a sample goes to the role of its listener.
            return match line.split_once("listener=\"") {
                Some((_, rest)) => self.owns_listener(rest.split('"').next().unwrap_or_default()),
                None => true,
            };
        }
        self.owns_family(name)
    }
}

/// [`render`], keeping only `role`'s series.
pub fn render_for(role: Role) -> String {
    let mut out = String::new();
    for line in render()
        .lines()
        .filter(|l| l.is_empty() || role.owns_line(l))
    {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until something folds it into the buckets:
/// a scrape does, but a process nobody scrapes (`up` on a laptop, a bench) would grow by
/// every request it serves. A plain thread, because the recorder outlives any runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(e) = started {
        tracing::warn!("cannot start the metrics upkeep thread ({e}); histograms are folded only when /metrics is scraped");
    }
}

/// Most distinct channel names that get their own label value; the rest share
/// [`OTHER_CHANNELS`], so a client creating channels at will cannot blow up the series count.
pub const MAX_CHANNEL_LABELS: usize = 500;

/// Label value for channels beyond [`MAX_CHANNEL_LABELS`].
pub const OTHER_CHANNELS: &str = "_other";

/// The one label value of every streamed answer's channels (`llm-router.stream.<id>`
/// and its `.cancel`): they live for one request each, and a label per request would
/// fill [`MAX_CHANNEL_LABELS`] with series that never move again.
pub const STREAM_CHANNELS: &str = "llm-router.stream.*";

/// The shared label of channels that exist once per request, batch job or uploaded file:
/// one series for all of them instead of one per id that outlives its channel.
fn per_id_family(channel: &str) -> Option<&'static str> {
    if channel.starts_with(crate::protocol::stream::CHANNEL_PREFIX) {
        return Some(STREAM_CHANNELS);
    }
    if channel.starts_with("llm-router.file.") {
        return Some("llm-router.file.*");
    }
    let (job, kind) = channel
        .strip_prefix("llm-router.batch.")?
        .rsplit_once('.')?;
    if !crate::protocol::batch::is_job_id(job) {
        return None;
    }
    match kind {
        "results" => Some("llm-router.batch.*.results"),
        "dlq" => Some("llm-router.batch.*.dlq"),
        "output" => Some("llm-router.batch.*.output"),
        _ => None,
    }
}

/// Whether `channel` exists once per request, batch job or uploaded file.
pub fn is_per_id_channel(channel: &str) -> bool {
    per_id_family(channel).is_some()
}

/// Whether `label` (from [`channel_label`]) is shared by many channels, so a gauge of one
/// channel must move it by differences instead of setting it.
pub fn is_shared_label(label: &str) -> bool {
    label.contains('*') || label == OTHER_CHANNELS
}

/// The label value to use for `channel`.
pub fn channel_label(channel: &str) -> String {
    if let Some(family) = per_id_family(channel) {
        return family.to_owned();
    }
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock();
    if seen.contains(channel) {
        return channel.to_owned();
    }
    if seen.len() >= MAX_CHANNEL_LABELS {
        return OTHER_CHANNELS.to_owned();
    }
    seen.insert(channel.to_owned());
    channel.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_made_per_request_job_or_file_share_one_label() {
        let job = "batch_0123456789abcdef0123456789abcdef";
        assert_eq!(
            channel_label("llm-router.stream.abc.cancel"),
            STREAM_CHANNELS
        );
        assert_eq!(
            channel_label(&format!("llm-router.batch.{job}.results")),
            "llm-router.batch.*.results"
        );
        assert_eq!(
            channel_label(&format!("llm-router.batch.{job}.dlq")),
            "llm-router.batch.*.dlq"
        );
        assert_eq!(channel_label("llm-router.file.file-1"), "llm-router.file.*");
        assert_eq!(
            channel_label("llm-router.batch.openai"),
            "llm-router.batch.openai"
        );
        assert!(is_shared_label("llm-router.batch.*.dlq") && !is_shared_label("q"));
    }

    #[test]
    fn each_role_keeps_its_own_series() {
        let broker = "llm_router_broker_queue_depth{channel=\"q\"} 1";
        let gateway = "# TYPE llm_router_gateway_requests_total counter";
        let worker = "llm_router_requests_total{route=\"r\",outcome=\"ok\"} 2";
        let rest = "llm_router_connections_open{listener=\"rest\"} 1";
        let gw_conn = "llm_router_connections_open{listener=\"gateway\"} 3";
        for (line, owner) in [
            (broker, Role::Broker),
            (gateway, Role::Gateway),
            (worker, Role::Worker),
            (rest, Role::Broker),
            (gw_conn, Role::Gateway),
        ] {
            for role in [Role::Broker, Role::Gateway, Role::Worker] {
                assert_eq!(role.owns_line(line), role == owner, "{role:?} {line}");
            }
        }
        let help = "# HELP llm_router_connections_open Connections open now.";
        assert!([Role::Broker, Role::Gateway, Role::Worker]
            .iter()
            .all(|r| r.owns_line(help)));
    }
}
