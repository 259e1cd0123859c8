//! 05-detect scores a batch a chunk at a time (event rows in windows of `[parse]
//! window_lines`, sessions in slices of each gold part): how the batch is cut must not change
//! a single score or anomaly.

mod common;

use std::path::Path;

use chrono::NaiveDate;
use loglake::lake::{Lake, Layer, tables};
use polars::prelude::*;

const DATE: &str = "2026-11-17";

fn table(lake: &Path, layer: Layer, name: &str, sort: &[&str]) -> DataFrame {
    let d = NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    let df = Lake::new(lake)
        .scan(layer, name, "shop", &[d])
        .unwrap()
        .unwrap()
        .drop(by_name(["run_id", "detected_at"], false, false))
        .collect()
        .unwrap();
    df.sort(sort.to_vec(), Default::default()).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn chunk_sizes_do_not_change_what_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-16", 2, 60_000, 11);
    // Gold in several session parts, so sessions are scored part by part too.
    let built = tmp.path().join("built.toml");
    std::fs::write(&built, "[gold]\nsession_bucket_events = 20000\n").unwrap();
    let lake = tmp.path().join("lake");
    for day in ["2026-11-16", DATE] {
        let logs = raw.join("logs").join(format!("shop-{day}.log"));
        common::shop_ok(
            &lake,
            day,
            &[
                "--config",
                built.to_str().unwrap(),
                "run",
                "--to",
                "04-train",
                "--input",
                logs.to_str().unwrap(),
            ],
        );
    }
    let small = tmp.path().join("small");
    copy_dir(&lake, &small);
    // Whole: one event window, one session slice per part. Small: windows of 16,384 rows,
    // slices of 2,048 sessions.
    let small_config = tmp.path().join("small.toml");
    std::fs::write(&small_config, "[parse]\nwindow_lines = 16384\n").unwrap();
    common::shop_ok(&lake, DATE, &["05-detect"]);
    common::shop_ok(
        &small,
        DATE,
        &["--config", small_config.to_str().unwrap(), "05-detect"],
    );

    let scores = |l: &Path| {
        table(
            l,
            Layer::Detections,
            tables::SCORES,
            &["granularity", "entity_key", "window_start", "detector"],
        )
    };
    let (a, b) = (scores(&lake), scores(&small));
    assert!(a.height() > 50_000, "{} scores", a.height());
    assert!(a.equals_missing(&b), "scores differ");
    let anomalies = |l: &Path| table(l, Layer::Detections, tables::ANOMALIES, &["anomaly_id"]);
    let (a, b) = (anomalies(&lake), anomalies(&small));
    assert!(a.height() > 5, "{} anomalies", a.height());
    assert!(a.equals_missing(&b), "anomalies differ");
    let sessions = a
        .column("granularity")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .filter(|g| *g == Some("session"))
        .count();
    assert!(sessions > 0, "no session anomaly to compare");
}
