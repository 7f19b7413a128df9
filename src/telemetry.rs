//! Logs (tracing, text or one JSON object a line) and the counters served at
//! `/metrics` in the Prometheus text format.

use crate::config::{LogConfig, LogFormat};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; `RUST_LOG` overrides the level.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Counters by name and labels. A handful of series, so a map under a mutex
/// is enough; no metrics registry crate is needed for the text format.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
}

impl Metrics {
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(",");
        let mut g = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *g.entry((name.to_string(), labels)).or_insert(0) += 1;
    }

    pub fn get(&self, name: &str, labels: &str) -> u64 {
        let g = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        g.get(&(name.to_string(), labels.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), v) in g.iter() {
            if name != last {
                out.push_str(&format!("# TYPE {name} counter\n"));
                last = name;
            }
            if labels.is_empty() {
                out.push_str(&format!("{name} {v}\n"));
            } else {
                out.push_str(&format!("{name}{{{labels}}} {v}\n"));
            }
        }
        out
    }
}
