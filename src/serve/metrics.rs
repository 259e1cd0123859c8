//! The service's own counters, in Prometheus' text exposition format (`GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::stages::metrics::escape;

/// Upper bounds (seconds) of the request latency histogram's buckets.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    /// (route, status) → requests.
    requests: BTreeMap<(&'static str, u16), u64>,
    /// route → (bucket counts, sum of seconds, count).
    latency: BTreeMap<&'static str, ([u64; BUCKETS.len()], f64, u64)>,
    /// source → lines.
    lines: BTreeMap<String, u64>,
    /// source → lines quarantined.
    quarantined: BTreeMap<String, u64>,
    /// (source, detector) → anomalies.
    anomalies: BTreeMap<(String, String), u64>,
}

impl Metrics {
    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        let mut c = self.inner.lock().expect("metrics lock");
        *c.requests.entry((route, status)).or_default() += 1;
        let (buckets, sum, count) = c.latency.entry(route).or_default();
        for (b, le) in buckets.iter_mut().zip(BUCKETS) {
            if seconds <= le {
                *b += 1;
            }
        }
        *sum += seconds;
        *count += 1;
    }

    pub fn scored(&self, source: &str, lines: usize, quarantined: usize, detectors: &[&str]) {
        let mut c = self.inner.lock().expect("metrics lock");
        *c.lines.entry(source.to_string()).or_default() += lines as u64;
        *c.quarantined.entry(source.to_string()).or_default() += quarantined as u64;
        for d in detectors {
            *c.anomalies
                .entry((source.to_string(), d.to_string()))
                .or_default() += 1;
        }
    }

    pub fn render(&self) -> String {
        let c = self.inner.lock().expect("metrics lock");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP loglake_serve_requests_total HTTP requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE loglake_serve_requests_total counter");
        for ((route, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "loglake_serve_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP loglake_serve_request_seconds Time to answer a request, by route."
        );
        let _ = writeln!(out, "# TYPE loglake_serve_request_seconds histogram");
        for (route, (buckets, sum, count)) in &c.latency {
            for (n, le) in buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "loglake_serve_request_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "loglake_serve_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "loglake_serve_request_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "loglake_serve_request_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        for (name, help, map) in [
            (
                "loglake_serve_lines_scored_total",
                "Lines received for scoring, by source.",
                &c.lines,
            ),
            (
                "loglake_serve_lines_quarantined_total",
                "Lines that could not be parsed, by source.",
                &c.quarantined,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (source, n) in map {
                let _ = writeln!(out, "{name}{{source=\"{}\"}} {n}", escape(source));
            }
        }
        let _ = writeln!(
            out,
            "# HELP loglake_serve_anomalies_total Anomalies found in scored lines, by source and detector."
        );
        let _ = writeln!(out, "# TYPE loglake_serve_anomalies_total counter");
        for ((source, detector), n) in &c.anomalies {
            let _ = writeln!(
                out,
                "loglake_serve_anomalies_total{{source=\"{}\",detector=\"{detector}\"}} {n}",
                escape(source)
            );
        }
        out
    }
}
