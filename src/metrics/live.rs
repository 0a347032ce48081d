//! Series that end. The Prometheus recorder cannot forget a series, so a label whose
//! values come and go (a batch job's id) would leave one series per value behind for the
//! life of the process. A [`LiveFamily`] keeps such series itself, renders them after the
//! recorder's, and drops a value's series when told it has ended, or, past its cap, the
//! series changed longest ago.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a family is a gauge or a counter, for `# TYPE`.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Gauge,
    Counter,
}

/// One metric name with one label, whose series can be removed.
pub struct LiveFamily {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    label: &'static str,
    cap: usize,
    /// Label value → (value, tick of its last change).
    series: Mutex<BTreeMap<String, (f64, u64)>>,
    tick: Mutex<u64>,
    registered: AtomicBool,
}

static FAMILIES: Mutex<Vec<&'static LiveFamily>> = parking_lot::const_mutex(Vec::new());

impl LiveFamily {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        label: &'static str,
        cap: usize,
    ) -> Self {
        Self {
            name,
            help,
            kind,
            label,
            cap,
            series: parking_lot::const_mutex(BTreeMap::new()),
            tick: parking_lot::const_mutex(0),
            registered: AtomicBool::new(false),
        }
    }

    /// Sets the series of `value` to `to`.
    pub fn set(&'static self, value: &str, to: f64) {
        self.update(value, |v| *v = to);
    }

    /// Adds `by` to the series of `value` (from 0 when new).
    pub fn add(&'static self, value: &str, by: f64) {
        self.update(value, |v| *v += by);
    }

    /// Removes the series of `value`; the next scrape no longer shows it.
    pub fn remove(&self, value: &str) {
        self.series.lock().remove(value);
    }

    /// Series held now.
    pub fn len(&self) -> usize {
        self.series.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn update(&'static self, value: &str, f: impl FnOnce(&mut f64)) {
        if !self.registered.swap(true, Ordering::AcqRel) {
            FAMILIES.lock().push(self);
        }
        let tick = {
            let mut t = self.tick.lock();
            *t += 1;
            *t
        };
        let mut series = self.series.lock();
        if !series.contains_key(value) && series.len() >= self.cap {
            let oldest = series
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                series.remove(&oldest);
            }
        }
        let entry = series.entry(value.to_owned()).or_insert((0.0, tick));
        f(&mut entry.0);
        entry.1 = tick;
    }

    fn render_into(&self, out: &mut String) {
        let series = self.series.lock();
        if series.is_empty() {
            return;
        }
        let kind = match self.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        for (value, (v, _)) in series.iter() {
            let _ = writeln!(
                out,
                "{}{{{}=\"{}\"}} {v}",
                self.name,
                self.label,
                escape(value)
            );
        }
    }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every live family's series, in the text format.
pub fn render() -> String {
    let mut out = String::new();
    for family in FAMILIES.lock().iter() {
        family.render_into(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static F: LiveFamily = LiveFamily::new("t_live", "test", Kind::Counter, "id", 2);

    #[test]
    fn series_go_when_removed_and_past_the_cap() {
        F.add("a", 1.0);
        F.add("a", 2.0);
        F.add("b", 1.0);
        let text = render();
        assert!(text.contains("t_live{id=\"a\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE t_live counter"), "{text}");
        F.add("b", 1.0);
        F.add("c\"", 5.0);
        let text = render();
        assert!(
            !text.contains("id=\"a\""),
            "the least recently changed went: {text}"
        );
        assert!(text.contains("t_live{id=\"c\\\"\"} 5"), "{text}");
        F.remove("b");
        F.remove("c\"");
        assert!(
            !render().contains("t_live"),
            "an empty family renders nothing"
        );
    }
}
