//! Gold window features that look back: each window carries what is usual for its service at
//! that hour on the days before, computed from the gold partitions already in the lake.

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use loglake::lake::{Lake, Layer, tables};
use polars::prelude::*;

fn windows(lake: &Lake, date: &str) -> DataFrame {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    lake.scan(Layer::Gold, tables::WINDOW_FEATURES, "shop", &[d])
        .unwrap()
        .unwrap()
        .collect()
        .unwrap()
}

/// (service, hour) → values of `column` in `df`.
fn by_service_hour(df: &DataFrame, column: &str) -> BTreeMap<(String, i64), Vec<f64>> {
    let service = df.column("service").unwrap().str().unwrap().clone();
    let hour = df.column("hour").unwrap().i64().unwrap().clone();
    let values = df.column(column).unwrap().cast(&DataType::Float64).unwrap();
    let values = values.f64().unwrap();
    let mut out: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for i in 0..df.height() {
        if let (Some(s), Some(h), Some(v)) = (service.get(i), hour.get(i), values.get(i)) {
            out.entry((s.to_string(), h)).or_default().push(v);
        }
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[test]
fn windows_carry_the_same_hour_median_of_the_days_before() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-16", 3, 20_000, 5);
    let lake_dir = tmp.path().join("lake");
    common::run_each_day(
        &lake_dir,
        &raw,
        &["2026-11-16", "2026-11-17", "2026-11-18"],
        "03-gold",
    );
    let lake = Lake::new(&lake_dir);

    // The first day has no history: the baseline columns are there, and null.
    let first = windows(&lake, "2026-11-16");
    assert_eq!(
        first.column("events_same_hour").unwrap().null_count(),
        first.height()
    );

    // The third day's baseline is the median over both earlier days' windows of that hour.
    let mut earlier = by_service_hour(&windows(&lake, "2026-11-16"), "n_events");
    for (k, v) in by_service_hour(&windows(&lake, "2026-11-17"), "n_events") {
        earlier.entry(k).or_default().extend(v);
    }
    let third = windows(&lake, "2026-11-18");
    let baseline = by_service_hour(&third, "events_same_hour");
    assert!(!baseline.is_empty());
    for (key, seen) in &baseline {
        let expected = median(&mut earlier[key].clone());
        assert!(
            seen.iter().all(|v| (v - expected).abs() < 1e-9),
            "{key:?}: {seen:?} vs {expected}"
        );
    }
    // A context column, not a feature the detectors score.
    let x = loglake::features::window_forest_features(&third);
    assert!(!x.iter().any(|f| f.ends_with("_same_hour")), "{x:?}");
}

/// Sessions keyed by a parsed field (`--session-key field:trace_id`) rather than a regex:
/// the trace id is a JSON key and never appears in the message. Every trace becomes one
/// session of exactly its lines, lines without the key belong to none, and a trace that
/// loops on a step is flagged with sample lines from that trace alone.
#[test]
fn sessions_can_be_keyed_by_a_parsed_field() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("api.jsonl");
    let mut text = String::new();
    let mut line_no = 0u64;
    let mut broken_lines = std::collections::BTreeSet::new();
    let mut push = |text: &mut String, second: u64, message: &str, trace: Option<&str>| {
        let (h, m, s) = (second / 3600, second / 60 % 60, second % 60);
        let trace = trace
            .map(|t| format!(r#","trace_id":"{t}""#))
            .unwrap_or_default();
        text.push_str(&format!(
            r#"{{"ts":"2026-11-20T{h:02}:{m:02}:{s:02}Z","level":"info","service":"api","message":"{message}"{trace}}}"#
        ));
        text.push('\n');
        line_no += 1;
        line_no
    };
    let traces = 1_200u64;
    for t in 0..traces {
        let id = format!("t{t:05}");
        let at = t * 60;
        push(&mut text, at, "request received", Some(&id));
        push(
            &mut text,
            at + 1,
            &format!("db query took {} ms", 5 + t % 20),
            Some(&id),
        );
        push(&mut text, at + 2, "response sent", Some(&id));
        if t % 25 == 0 {
            push(&mut text, at + 30, "heartbeat", None);
        }
    }
    // One trace loops on its query and never answers.
    let at = 600;
    broken_lines.insert(push(&mut text, at, "request received", Some("stuck")));
    for k in 0..6 {
        broken_lines.insert(push(
            &mut text,
            at + 1 + k,
            "db query took 9 ms",
            Some("stuck"),
        ));
    }
    std::fs::write(&log, text).unwrap();

    let lake_dir = tmp.path().join("lake");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake_dir.to_str().unwrap(), "--source", "api"])
        .args([
            "--date",
            "2026-11-20",
            "run",
            "--input",
            log.to_str().unwrap(),
        ])
        .args(["--format", "json", "--session-key", "field:trace_id"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let lake = Lake::new(&lake_dir);
    let d = [NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()];
    let read = |table: &str| {
        let layer = if table == tables::ANOMALIES {
            Layer::Detections
        } else {
            Layer::Gold
        };
        lake.scan(layer, table, "api", &d)
            .unwrap()
            .unwrap()
            .collect()
            .unwrap()
    };
    let sessions = read(tables::SESSION_FEATURES);
    assert_eq!(sessions.height() as u64, traces + 1);
    let keys = sessions.column("session_key").unwrap().str().unwrap();
    let events = sessions.column("n_events").unwrap().i64().unwrap();
    for (key, n) in keys.iter().zip(events.iter()) {
        let expected = if key == Some("stuck") { 7 } else { 3 };
        assert_eq!(n, Some(expected), "{key:?}");
    }

    let anomalies = read(tables::ANOMALIES);
    let granularity = anomalies.column("granularity").unwrap().str().unwrap();
    let entity = anomalies.column("entity_key").unwrap().str().unwrap();
    let details = anomalies.column("details").unwrap().str().unwrap();
    let mut flagged = std::collections::BTreeSet::new();
    for i in 0..anomalies.height() {
        if granularity.get(i) != Some("session") {
            continue;
        }
        flagged.insert(entity.get(i).unwrap().to_string());
        if entity.get(i) == Some("stuck") {
            let d: serde_json::Value = serde_json::from_str(details.get(i).unwrap()).unwrap();
            let samples = d["samples"].as_array().unwrap();
            assert!(!samples.is_empty(), "{d}");
            for s in samples {
                let n = s["line_no"].as_u64().unwrap();
                assert!(
                    broken_lines.contains(&n),
                    "sample from outside the trace: {s}"
                );
            }
        }
    }
    assert_eq!(
        flagged.into_iter().collect::<Vec<_>>(),
        vec!["stuck".to_string()]
    );
}

/// One partition of a gold table, whole.
fn gold(lake: &std::path::Path, table: &str, date: &str) -> DataFrame {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    Lake::new(lake)
        .scan(Layer::Gold, table, "shop", &[d])
        .unwrap()
        .unwrap()
        .drop(by_name(["date"], true, false))
        .collect()
        .unwrap()
}

/// A day with more keyed events than `[gold] session_bucket_events`, read in windows of rows,
/// is built in session buckets spilled to staging: every feature is what one piece gives,
/// the sessions only in another row order (each bucket is its own part, sorted by key).
#[test]
fn session_buckets_and_row_windows_build_the_same_features() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-16", 1, 60_000, 9);
    let logs = raw.join("logs").join("shop-2026-11-16.log");
    let config = tmp.path().join("small.toml");
    std::fs::write(
        &config,
        "[parse]\nwindow_lines = 16384\n[gold]\nsession_bucket_events = 20000\n",
    )
    .unwrap();
    let (whole, bucketed) = (tmp.path().join("whole"), tmp.path().join("bucketed"));
    let run = ["run", "--to", "03-gold", "--input", logs.to_str().unwrap()];
    common::shop_ok(&whole, "2026-11-16", &run);
    let mut with_config = vec!["--config", config.to_str().unwrap()];
    with_config.extend_from_slice(&run);
    common::shop_ok(&bucketed, "2026-11-16", &with_config);

    for table in [tables::WINDOW_FEATURES, tables::EVENT_FEATURES] {
        let (a, b) = (
            gold(&whole, table, "2026-11-16"),
            gold(&bucketed, table, "2026-11-16"),
        );
        assert!(a.height() > 0);
        assert!(a.equals_missing(&b), "{table} differs");
    }
    let parts = |lake: &std::path::Path, table: &str| {
        let d = NaiveDate::parse_from_str("2026-11-16", "%Y-%m-%d").unwrap();
        Lake::new(lake)
            .part_files(Layer::Gold, table, "shop", d)
            .unwrap()
            .len()
    };
    assert_eq!(parts(&whole, tables::SESSION_FEATURES), 1);
    assert!(parts(&bucketed, tables::SESSION_FEATURES) >= 3);
    for (table, keys) in [
        (tables::SESSION_FEATURES, vec!["session_key"]),
        (
            tables::SESSION_TEMPLATE_COUNTS,
            vec!["session_key", "template_id"],
        ),
    ] {
        let sorted = |df: DataFrame| df.sort(keys.clone(), Default::default()).unwrap();
        let a = sorted(gold(&whole, table, "2026-11-16"));
        let b = sorted(gold(&bucketed, table, "2026-11-16"));
        assert!(a.height() > 1000, "{table}: {} rows", a.height());
        assert!(a.equals_missing(&b), "{table} differs");
    }
    // Nothing spilled is left behind.
    let staging = bucketed.join("_staging");
    assert!(
        !staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none(),
        "staging not cleaned"
    );
}

/// `gold/window_template_counts` is the long form of the windows' counts: one row per
/// service × window × template, summing to each window's events, in one schema whatever the
/// source (the wide table's `tpl_<id>` columns differ by source and by day).
#[test]
fn window_template_counts_are_the_windows_counts_in_long_form() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-16", 2, 20_000, 5);
    let lake_dir = tmp.path().join("lake");
    common::run_each_day(&lake_dir, &raw, &["2026-11-16", "2026-11-17"], "03-gold");
    let lake = Lake::new(&lake_dir);
    let d = NaiveDate::from_ymd_opt(2026, 11, 17).unwrap();
    let counts = lake
        .scan(Layer::Gold, tables::WINDOW_TEMPLATE_COUNTS, "shop", &[d])
        .unwrap()
        .expect("gold/window_template_counts")
        .collect()
        .unwrap();
    let names: Vec<String> = counts
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| n != "source" && n != "date")
        .collect();
    assert_eq!(
        names,
        [
            "service",
            "window_start",
            "window_end",
            "template_id",
            "count"
        ]
    );
    let summed = counts
        .clone()
        .lazy()
        .group_by([col("service"), col("window_start")])
        .agg([col("count").sum().alias("n_events")])
        .sort(["service", "window_start"], Default::default())
        .collect()
        .unwrap();
    let wide = windows(&lake, "2026-11-17")
        .lazy()
        .select([col("service"), col("window_start"), col("n_events")])
        .sort(["service", "window_start"], Default::default())
        .collect()
        .unwrap();
    assert!(wide.height() > 100);
    assert!(summed.equals_missing(&wide), "{summed}\n{wide}");
    // Each template of a window once.
    let distinct = counts
        .clone()
        .lazy()
        .select([col("service"), col("window_start"), col("template_id")])
        .unique(None, UniqueKeepStrategy::Any)
        .collect()
        .unwrap();
    assert_eq!(distinct.height(), counts.height());
}
