//! Prometheus metrics shared by every role: one recorder per process, names prefixed
//! `llm_router_`, labels bounded.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder on first use and returns the handle that renders
/// `/metrics`. Several brokers in one process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        crate::broker::metrics::describe();
        handle
    })
}

/// Most distinct channel names that get their own label value; the rest share
/// [`OTHER_CHANNELS`], so a client creating channels at will cannot blow up the series count.
pub const MAX_CHANNEL_LABELS: usize = 500;

/// Label value for channels beyond [`MAX_CHANNEL_LABELS`].
pub const OTHER_CHANNELS: &str = "_other";

/// The label value to use for `channel`.
pub fn channel_label(channel: &str) -> String {
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
