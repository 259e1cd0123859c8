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
