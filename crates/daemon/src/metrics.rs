//! Prometheus metrics, written by hand: a few counters, gauges and one histogram, rendered in the text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), f64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The daemon's metrics. Cheap to clone; every clone updates the same values.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "campaignd_api_requests_total",
        "counter",
        "Platform API requests by endpoint and outcome.",
    ),
    (
        "campaignd_api_request_duration_seconds",
        "histogram",
        "Platform API request latency.",
    ),
    (
        "campaignd_orders",
        "gauge",
        "Orders by campaign and upload state.",
    ),
    (
        "campaignd_callbacks_total",
        "counter",
        "Callbacks received, by type and outcome.",
    ),
    (
        "campaignd_reconcile_lag_seconds",
        "gauge",
        "How late the last reconcile ran after it was due.",
    ),
    ("campaignd_campaigns", "gauge", "Campaigns by state."),
    (
        "campaignd_file_errors_total",
        "counter",
        "Campaign files that failed to load or validate.",
    ),
    (
        "campaignd_callback_gaps_total",
        "counter",
        "Facts first learnt by polling that a callback should have brought.",
    ),
    (
        "campaignd_reconcile_errors_total",
        "counter",
        "Reconcile steps that failed, by campaign.",
    ),
    (
        "campaignd_reconcile_last_pass_timestamp_seconds",
        "gauge",
        "Unix time at which the reconciler last completed a pass.",
    ),
    (
        "campaignd_unknown_call_status_total",
        "counter",
        "Calls reported with a callStatus this version does not know (stored without a status), by code.",
    ),
    (
        "campaignd_response_signature_total",
        "counter",
        "Platform responses by what checking their signature found (ok, mismatch, missing).",
    ),
    (
        "campaignd_webhook_connections_refused_total",
        "counter",
        "Connections to a webhook listener closed at once because the most allowed were open.",
    ),
];

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, name: &'static str, labels: Labels, by: f64) {
        *self.lock().counters.entry((name, labels)).or_default() += by;
    }

    fn set(&self, name: &'static str, labels: Labels, value: f64) {
        self.lock().gauges.insert((name, labels), value);
    }

    /// The reconciler completed a pass at Unix time `at`.
    pub fn reconcile_pass(&self, at: f64) {
        self.set(
            "campaignd_reconcile_last_pass_timestamp_seconds",
            vec![],
            at,
        );
    }

    /// Calls reported with `callStatus` codes this version does not know; each code is logged.
    pub fn unknown_call_statuses(&self, codes: &[i64]) {
        for code in codes {
            tracing::warn!(
                call.status = code,
                "a call reported a callStatus this version does not know: stored without a status (neither finished nor final)"
            );
            self.add(
                "campaignd_unknown_call_status_total",
                vec![("code", code.to_string())],
                1.0,
            );
        }
    }

    /// One platform response's signature was checked: `outcome` ok/mismatch/missing.
    pub fn response_signature(&self, outcome: &str) {
        self.add(
            "campaignd_response_signature_total",
            vec![("outcome", outcome.to_owned())],
            1.0,
        );
    }

    /// A connection was refused because `max_connections` were open.
    pub fn connection_refused(&self) {
        self.add("campaignd_webhook_connections_refused_total", vec![], 1.0);
    }

    /// One platform request attempt.
    pub fn api_request(&self, endpoint: &str, outcome: &str, duration_secs: f64) {
        self.add(
            "campaignd_api_requests_total",
            vec![
                ("endpoint", endpoint.to_owned()),
                ("outcome", outcome.to_owned()),
            ],
            1.0,
        );
        let mut inner = self.lock();
        let h = inner
            .histograms
            .entry((
                "campaignd_api_request_duration_seconds",
                vec![("endpoint", endpoint.to_owned())],
            ))
            .or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if duration_secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += duration_secs;
        h.count += 1;
    }

    /// One callback received: `kind` task/order/call/unknown, `outcome` ok/unauthorized/bad_request/unavailable.
    pub fn callback(&self, kind: &str, outcome: &str) {
        self.add(
            "campaignd_callbacks_total",
            vec![("type", kind.to_owned()), ("outcome", outcome.to_owned())],
            1.0,
        );
    }

    pub fn callback_gaps(&self, n: u64) {
        if n > 0 {
            self.add("campaignd_callback_gaps_total", vec![], n as f64);
        }
    }

    pub fn file_error(&self) {
        self.add("campaignd_file_errors_total", vec![], 1.0);
    }

    pub fn reconcile_error(&self, campaign: &str) {
        self.add(
            "campaignd_reconcile_errors_total",
            vec![("campaign", campaign.to_owned())],
            1.0,
        );
    }

    pub fn reconcile_lag(&self, secs: f64) {
        self.set("campaignd_reconcile_lag_seconds", vec![], secs.max(0.0));
    }

    pub fn orders(&self, campaign: &str, state: &str, n: u64) {
        self.set(
            "campaignd_orders",
            vec![
                ("campaign", campaign.to_owned()),
                ("state", state.to_owned()),
            ],
            n as f64,
        );
    }

    /// Replaces the campaigns-by-state gauge.
    pub fn campaigns(&self, by_state: &BTreeMap<String, u64>) {
        let mut inner = self.lock();
        inner
            .gauges
            .retain(|(name, _), _| *name != "campaignd_campaigns");
        for (state, n) in by_state {
            inner.gauges.insert(
                ("campaignd_campaigns", vec![("state", state.clone())]),
                *n as f64,
            );
        }
    }

    /// A counter's current value (for tests and `status`).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let inner = self.lock();
        inner
            .counters
            .iter()
            .filter(|((n, l), _)| {
                *n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            match *kind {
                "counter" => {
                    for ((n, labels), v) in &inner.counters {
                        if n == name {
                            let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
                        }
                    }
                }
                "gauge" => {
                    for ((n, labels), v) in &inner.gauges {
                        if n == name {
                            let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
                        }
                    }
                }
                _ => {
                    for ((n, labels), h) in &inner.histograms {
                        if n != name {
                            continue;
                        }
                        for (i, bound) in BUCKETS.iter().enumerate() {
                            let le = bound.to_string();
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {}",
                                fmt_labels(labels, Some(&le)),
                                h.counts[i]
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            fmt_labels(labels, Some("+Inf")),
                            h.count
                        );
                        let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
                        let _ =
                            writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.count);
                    }
                }
            }
        }
        out
    }
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges_in_text_format() {
        let m = Metrics::new();
        m.api_request("addBatchCall", "ok", 0.03);
        m.api_request("addBatchCall", "ok", 3.0);
        m.callback("order", "unauthorized");
        m.orders("demo", "sent", 12);
        let text = m.render();
        assert!(
            text.contains(
                "campaignd_api_requests_total{endpoint=\"addBatchCall\",outcome=\"ok\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "campaignd_api_request_duration_seconds_bucket{endpoint=\"addBatchCall\",le=\"0.05\"} 1"
        ));
        assert!(
            text.contains(
                "campaignd_api_request_duration_seconds_count{endpoint=\"addBatchCall\"} 2"
            )
        );
        assert!(
            text.contains("campaignd_callbacks_total{type=\"order\",outcome=\"unauthorized\"} 1")
        );
        assert!(text.contains("campaignd_orders{campaign=\"demo\",state=\"sent\"} 12"));
        assert_eq!(
            m.counter("campaignd_callbacks_total", &[("outcome", "unauthorized")]),
            1.0
        );
    }

    #[test]
    fn escapes_label_values() {
        let m = Metrics::new();
        m.reconcile_error("a\"b");
        assert!(m.render().contains("campaign=\"a\\\"b\""));
    }
}
