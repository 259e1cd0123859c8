//! The detectors that are off by default, switched on: each trains on both granularities it
//! supports, saves a model, and its findings carry their score, threshold and reason.

mod common;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use loglake::db::Database;
use loglake::lake::{Lake, Layer, tables};

const DATE: &str = "2026-11-21";

fn date() -> NaiveDate {
    NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap()
}

/// Generated days up to [`DATE`], run to 05-detect with `[detectors.<detector>]` enabled and
/// its other settings as given: the lake and what the run printed.
fn run_with(dir: &Path, detector: &str, settings: &[(&str, &str)]) -> (PathBuf, String) {
    let raw = common::generated(dir, "2026-11-18", 1, 30_000, 3);
    let lake_dir = dir.join("lake");
    let section = format!("LOGLAKE__DETECTORS__{}__", detector.to_uppercase());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_loglake"));
    command
        .args([
            "--lake",
            lake_dir.to_str().unwrap(),
            "--source",
            "shop",
            "--date",
            DATE,
        ])
        .args([
            "run",
            "--to",
            "05-detect",
            "--input",
            raw.join("logs").to_str().unwrap(),
        ])
        .args(["--format", "generator", "--session-key", r"req=(\S+)"])
        .env(format!("{section}ENABLED"), "true");
    for (key, value) in settings {
        command.env(format!("{section}{key}"), value);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (lake_dir, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Of `detector`'s session anomalies: how many there are, how many sessions the day has, and
/// how many break `explained` (an SQL condition on a row: its reason's form, its score).
fn session_findings(lake_dir: &Path, detector: &str, explained: &str) -> (i64, i64, i64) {
    let lake = Lake::new(lake_dir);
    let db = Database::connect("", &lake.default_database_path(), 1).unwrap();
    let sessions = lake
        .table_rows(Layer::Gold, tables::SESSION_FEATURES, "shop", &[date()])
        .unwrap() as i64;
    let of = format!("FROM anomalies WHERE detector = '{detector}' AND granularity = 'session'");
    let flagged = db.query_i64(&format!("SELECT COUNT(*) {of}")).unwrap();
    let unexplained = db
        .query_i64(&format!("SELECT COUNT(*) {of} AND NOT ({explained})"))
        .unwrap();
    db.close();
    (flagged, sessions, unexplained)
}

/// `detector` flagged some sessions, at most `max_percent` % of the day's, and every finding
/// meets `explained` (an SQL condition on its row).
fn some_explained_findings(lake_dir: &Path, detector: &str, explained: &str, max_percent: i64) {
    let (flagged, sessions, unexplained) = session_findings(lake_dir, detector, explained);
    assert!(
        flagged > 0 && flagged * 100 <= sessions * max_percent,
        "{detector}: {flagged} of {sessions}"
    );
    assert_eq!(unexplained, 0, "{detector}");
}

/// One model saved per granularity under `models/shop/<granularity>/<detector>`.
fn assert_one_model_each(lake_dir: &Path, detector: &str) {
    for granularity in ["session", "window"] {
        let dir = lake_dir
            .join("models/shop")
            .join(granularity)
            .join(detector);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn isolation_forest_trains_scores_and_explains_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake_dir, stdout) = run_with(
        tmp.path(),
        "isolation_forest",
        &[
            ("GRANULARITIES", "session,window"),
            ("CONTAMINATION", "0.01"),
        ],
    );
    assert!(stdout.contains("session/isolation_forest"), "{stdout}");
    assert!(stdout.contains("window/isolation_forest"), "{stdout}");

    let lake = Lake::new(&lake_dir);
    assert_one_model_each(&lake_dir, "isolation_forest");
    // With contamination 0.01 the forest flags about 1 % of the rows it was trained on, each
    // with its score, the threshold and the most unusual features.
    let db = Database::connect("", &lake.default_database_path(), 1).unwrap();
    let sessions = db
        .query_i64("SELECT COUNT(*) FROM anomalies WHERE detector = 'isolation_forest' AND granularity = 'session'")
        .unwrap();
    let total = lake
        .table_rows(Layer::Gold, tables::SESSION_FEATURES, "shop", &[date()])
        .unwrap() as i64;
    assert!(
        sessions > 0 && (sessions - total / 100).abs() <= total / 200 + 2,
        "{sessions} of {total}"
    );
    let unexplained = db
        .query_i64(
            "SELECT COUNT(*) FROM anomalies WHERE detector = 'isolation_forest' \
             AND (reason NOT LIKE 'isolation score % > %' OR score <= threshold)",
        )
        .unwrap();
    assert_eq!(unexplained, 0);
    db.close();
}

#[test]
fn local_outlier_factor_trains_scores_and_explains_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake_dir, stdout) = run_with(tmp.path(), "lof", &[("GRANULARITIES", "session,window")]);
    assert!(
        stdout.contains("session/lof") && stdout.contains("window/lof"),
        "{stdout}"
    );
    assert_one_model_each(&lake_dir, "lof");
    // Every entity is scored; the threshold is at least the 97th percentile of the training
    // rows' own factors, so at most about 3 % of the sessions it was trained on are flagged
    // (the day scored is the day trained on), and each finding says why.
    some_explained_findings(
        &lake_dir,
        "lof",
        "reason LIKE 'its neighbourhood is %× sparser than its 20 nearest training rows%' \
         AND score >= threshold AND threshold >= 1.5",
        4,
    );
}

#[test]
fn dbscan_trains_scores_and_explains_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake_dir, stdout) = run_with(tmp.path(), "dbscan", &[]);
    assert!(stdout.contains("session/dbscan"), "{stdout}");
    let dir = lake_dir.join("models/shop/session/dbscan");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "{}",
        dir.display()
    );
    // The generator's sessions follow a few workflows with varying counts: almost all of
    // them fall in a dense cluster; what is flagged is noise or a rare cluster, and says so.
    some_explained_findings(
        &lake_dir,
        "dbscan",
        "(reason LIKE 'its template counts are in no dense cluster%' \
          OR reason LIKE 'its template counts fall in a rare dense cluster%') \
         AND score >= threshold",
        1,
    );
}

#[test]
fn autoencoder_trains_scores_and_explains_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake_dir, stdout) = run_with(
        tmp.path(),
        "autoencoder",
        &[("GRANULARITIES", "session,window")],
    );
    assert!(
        stdout.contains("session/autoencoder") && stdout.contains("window/autoencoder"),
        "{stdout}"
    );
    assert_one_model_each(&lake_dir, "autoencoder");
    // The threshold is at least the 97th percentile of the training rows' own errors, so at
    // most about 3 % of the sessions trained on are flagged (the day scored is the day
    // trained on), and each finding names the feature the network rebuilt worst.
    some_explained_findings(
        &lake_dir,
        "autoencoder",
        "reason LIKE 'rebuilt with error % (threshold %) in session %; most unusual: %where the network expected about %' \
         AND score >= threshold AND threshold >= 0.01",
        4,
    );
}

#[test]
fn one_class_svm_trains_scores_and_explains_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake_dir, stdout) = run_with(
        tmp.path(),
        "one_class_svm",
        &[("GRANULARITIES", "session,window")],
    );
    assert!(
        stdout.contains("session/one_class_svm") && stdout.contains("window/one_class_svm"),
        "{stdout}"
    );
    assert_one_model_each(&lake_dir, "one_class_svm");
    // nu = 0.05 leaves about 5 % of the rows it trained on outside its region (the day
    // scored is the day trained on), and each finding says where it lies.
    some_explained_findings(
        &lake_dir,
        "one_class_svm",
        "reason LIKE 'outside the region the one-class SVM drew around the training rows (ρ / Σαk = %, the boundary is 1; % support vectors) in session %' \
         AND score >= threshold AND threshold > 1",
        8,
    );
}

/// Built with `--features lstm` only (candle is too heavy for the default build; `.ci/run`
/// builds and runs this).
#[cfg(feature = "lstm")]
#[test]
fn next_event_lstm_trains_scores_and_explains_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake_dir, stdout) = run_with(tmp.path(), "lstm", &[]);
    assert!(stdout.contains("session/lstm"), "{stdout}");
    let dir = lake_dir.join("models/shop/session/lstm");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "{}",
        dir.display()
    );
    // The generator's broken sessions stop early or skip a step; the LSTM flags some
    // sessions, few of all, each with the step, the event seen and the events expected.
    some_explained_findings(
        &lake_dir,
        "lstm",
        "reason LIKE 'step % of session %: % was not among the 7 events expected after the \
         10 before it; most expected: %' AND score >= threshold",
        5,
    );
}

/// Built with `--features lstm` only, like the next-event LSTM.
#[cfg(feature = "lstm")]
#[test]
fn lstm_autoencoder_trains_scores_and_explains_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake_dir, stdout) = run_with(tmp.path(), "lstm_autoencoder", &[]);
    assert!(stdout.contains("session/lstm_autoencoder"), "{stdout}");
    let dir = lake_dir.join("models/shop/session/lstm_autoencoder");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "{}",
        dir.display()
    );
    // The threshold is at least the 97th percentile of the training sessions' own errors
    // (the day scored is the day trained on): a few sessions are flagged, each with the chunk,
    // its error and the event the network rebuilt in place of the one seen.
    some_explained_findings(
        &lake_dir,
        "lstm_autoencoder",
        "reason LIKE 'events %–% of session % rebuilt with % nats per event (threshold %); \
         worst at step %: % where the network rebuilt %' AND score >= threshold \
         AND threshold >= 0.5",
        4,
    );
}
