//! Prometheus textfile metrics: after every stage, `[run] metrics_textfile` is rewritten with
//! that stage's duration, row counts and outcome, for node_exporter's textfile collector.
//!
//! Why a textfile and not an HTTP endpoint: loglake is a batch job that exits in seconds, and a
//! scrape would miss it. The collector reads the file on each scrape, so the last value of
//! every (source, stage) series stays visible between runs. An alert on
//! `time() - loglake_stage_last_success_timestamp_seconds` catches both a schedule that
//! stopped firing and a stage that runs and fails every day (its last *run* stays fresh).
//!
//! The file holds every source and stage seen so far: each write reads the previous file,
//! replaces this stage's series and writes the whole file to a temporary name before renaming
//! it over the old one, so the collector never reads a half-written file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::{Context, Stage};
use crate::lake::write_atomically;
use crate::stages::RunOutcome;

/// The series this module writes: name, help text.
const METRICS: &[(&str, &str)] = &[
    (
        "loglake_stage_last_run_timestamp_seconds",
        "Unix time the stage last finished.",
    ),
    (
        "loglake_stage_last_success_timestamp_seconds",
        "Unix time the stage last finished without failing (succeeded or had nothing to do).",
    ),
    (
        "loglake_stage_duration_seconds",
        "Wall time of the stage's last run.",
    ),
    (
        "loglake_stage_success",
        "1 if the stage's last run succeeded or had nothing to do, 0 if it failed.",
    ),
    (
        "loglake_stage_skipped",
        "1 if the stage's last run had nothing to do.",
    ),
    ("loglake_stage_rows_in", "Rows the stage's last run read."),
    ("loglake_stage_rows_out", "Rows the stage's last run wrote."),
    (
        "loglake_stage_rows_quarantined",
        "Lines the stage's last run quarantined.",
    ),
    (
        "loglake_anomalies",
        "Anomalies the last 05-detect run wrote for its batch.",
    ),
    (
        "loglake_alerts_undelivered",
        "Alert notices the last 05-detect run could not deliver (retried after the next run).",
    ),
];

/// Update the textfile with this stage's run (no-op when no textfile is configured).
pub fn record(
    ctx: &Context,
    stage: Stage,
    seconds: f64,
    result: &Result<RunOutcome>,
) -> Result<()> {
    let path = &ctx.settings.run.metrics_textfile;
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    let labels = format!(
        "source=\"{}\",stage=\"{}\"",
        escape(&ctx.source),
        stage.name()
    );
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let mut values = vec![
        ("loglake_stage_last_run_timestamp_seconds", now),
        ("loglake_stage_duration_seconds", seconds),
        ("loglake_stage_success", f64::from(u8::from(result.is_ok()))),
    ];
    if let Ok(o) = result {
        values.extend([
            ("loglake_stage_last_success_timestamp_seconds", now),
            (
                "loglake_stage_skipped",
                f64::from(u8::from(o.nothing_to_do)),
            ),
            ("loglake_stage_rows_in", o.rows_in as f64),
            ("loglake_stage_rows_out", o.rows_out as f64),
            ("loglake_stage_rows_quarantined", o.rows_quarantined as f64),
        ]);
    }
    let mut series = read_series(path);
    for (name, value) in values {
        series.insert(format!("{name}{{{labels}}}"), value.to_string());
    }
    if let (Stage::Detect, Ok(o)) = (stage, result) {
        series.insert(
            format!("loglake_anomalies{{source=\"{}\"}}", escape(&ctx.source)),
            o.rows_out.to_string(),
        );
        series.insert(
            format!(
                "loglake_alerts_undelivered{{source=\"{}\"}}",
                escape(&ctx.source)
            ),
            o.alerts_undelivered.to_string(),
        );
    }
    write_atomically(path, &render(&series))
}

/// `name{labels}` → value, from a previous textfile (empty if there is none or it is unreadable).
fn read_series(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(key, _)| METRICS.iter().any(|(name, _)| metric_name(key) == *name))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn metric_name(key: &str) -> &str {
    key.split('{').next().unwrap_or(key)
}

fn render(series: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (name, help) in METRICS {
        let mut lines = series
            .iter()
            .filter(|(k, _)| metric_name(k) == *name)
            .peekable();
        if lines.peek().is_none() {
            continue;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (key, value) in lines {
            out.push_str(&format!("{key} {value}\n"));
        }
    }
    out
}

/// Label values escape backslash, double quote and newline (Prometheus exposition format;
/// `loglake serve`'s `/metrics` writes its labels with it too).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_of_other_stages_survive_a_rewrite_and_the_format_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        let mut s = BTreeMap::new();
        s.insert(
            "loglake_stage_rows_out{source=\"a\",stage=\"01-bronze\"}".to_string(),
            "10".to_string(),
        );
        s.insert(
            "loglake_stage_rows_out{source=\"a\",stage=\"02-silver\"}".to_string(),
            "9".to_string(),
        );
        write_atomically(&path, &render(&s)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches("# TYPE loglake_stage_rows_out gauge").count(),
            1
        );
        assert_eq!(read_series(&path), s);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
