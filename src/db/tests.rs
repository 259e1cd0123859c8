use super::*;
use crate::records::RunStart;
use chrono::TimeZone;

fn row(id: &str, score: f64) -> AnomalyRow {
    let t = Utc.with_ymd_and_hms(2026, 11, 20, 14, 5, 0).unwrap();
    AnomalyRow {
        anomaly_id: id.into(),
        run_id: "r1".into(),
        detected_at: t,
        source: "s".into(),
        batch_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        granularity: "window".into(),
        entity_key: "checkout".into(),
        window_start: t,
        window_end: t + chrono::Duration::minutes(5),
        detector: "zscore".into(),
        score,
        threshold: 5.0,
        severity: "high".into(),
        reason: "ERROR count 41 vs baseline 2±1".into(),
        details: r#"{"top_features":[]}"#.into(),
        model_version: "v1".into(),
        incident_id: None,
        service: "checkout".into(),
        kind: "window|zscore|n_error".into(),
    }
}

#[test]
fn sqlite_file_is_created_and_anomalies_are_replaced_per_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sub").join("new.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let url = format!("sqlite://{}", path.display());
    let db = Database::connect(&url, Path::new("unused"), 1).unwrap();
    assert!(path.exists(), "the SQLite file is created on first use");
    db.migrate().unwrap();
    db.migrate().unwrap(); // idempotent

    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    db.replace_anomalies("s", date, &[row("a", 10.0), row("b", 12.0)])
        .unwrap();
    // A re-run that raises "a" again (new score) and no longer raises "b".
    db.replace_anomalies("s", date, &[row("a", 11.0)]).unwrap();
    let rows = db.anomaly_fingerprint("s").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].3), ("a", 11.0));
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM recent_anomalies")
            .unwrap(),
        1
    );
    db.close();
}

/// A row left `running` by a process that no longer exists is closed as failed; the rows of
/// live processes and of the current run are left alone.
#[test]
fn rows_of_dead_processes_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("runs.db").display());
    let db = Database::connect(&url, Path::new("unused"), 1).unwrap();
    db.migrate().unwrap();
    let start = |run_id: &str| {
        db.start_run(&RunStart {
            run_id,
            stage: "05-detect",
            source: "s",
            batch_dates: "2026-11-20",
            started_at: Utc::now(),
        })
        .unwrap()
    };
    // No process has a pid above the kernel's limit (4,194,304 at most).
    let dead = start("20261120T000000.000Z-4294967295");
    let live = start(&format!("20261120T000000.000Z-{}", std::process::id()));
    let current = start("20261120T000001.000Z-1");
    let closed = db.close_dead_runs("s", "20261120T000001.000Z-1").unwrap();
    assert_eq!(closed, 1);
    let status = |id: i64| {
        db.query_i64(&format!(
            "SELECT COUNT(*) FROM pipeline_runs WHERE id = {id} AND status = 'running'"
        ))
        .unwrap()
    };
    assert_eq!((status(dead), status(live), status(current)), (0, 1, 1));
    db.close();
}

/// Every migration file in the folders is applied: a file added there but not listed in
/// `db/mod.rs` would otherwise never run. Contents are compared, so a renamed or reordered
/// file is caught too.
#[test]
fn every_migration_file_is_listed_in_order() {
    for (dir, listed) in [
        ("migrations/postgres", POSTGRES_MIGRATIONS),
        ("migrations/sqlite", SQLITE_MIGRATIONS),
    ] {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), listed.len(), "{dir}: {files:?}");
        for (i, (path, (version, _, sql))) in files.iter().zip(listed).enumerate() {
            assert_eq!(*version, i as i64 + 1, "{dir}: versions run 1, 2, 3, …");
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(
                name.starts_with(&format!("{:04}_", version)),
                "{dir}: {name} is not migration {version}"
            );
            assert_eq!(
                std::fs::read_to_string(path).unwrap(),
                *sql,
                "{dir}: {name} differs from what db/mod.rs includes"
            );
        }
    }
}

#[test]
fn a_database_of_the_previous_schema_is_migrated_with_its_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::connect("", &tmp.path().join("old.db"), 1).unwrap();
    db.migrate_up_to(3).unwrap();
    // A row as the previous version wrote it: the service only inside details.
    db.execute(
        "INSERT INTO anomalies (anomaly_id, run_id, detected_at, source, batch_date, granularity, \
         entity_key, window_start, window_end, detector, score, threshold, severity, reason, details, \
         model_version) VALUES ('a1', 'r0', '2026-11-20 14:05:00.000', 's', '2026-11-20', 'window', \
         'checkout', '2026-11-20 14:05:00.000', '2026-11-20 14:10:00.000', 'zscore', 9.0, 5.0, 'high', \
         'why', '{\"service\":\"checkout\"}', 'v0')",
    )
    .unwrap();
    db.migrate().unwrap();
    assert_eq!(
        db.query_strings("SELECT service FROM anomalies WHERE anomaly_id = 'a1'")
            .unwrap(),
        vec![vec!["checkout".to_string()]]
    );
    assert_eq!(
        db.query_strings("SELECT service FROM recent_anomalies")
            .unwrap(),
        vec![vec!["checkout".to_string()]]
    );
    let indexes = db
        .query_strings(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'anomalies_%'",
        )
        .unwrap();
    for name in [
        "anomalies_source_window",
        "anomalies_incident",
        "anomalies_service",
    ] {
        assert!(indexes.iter().any(|r| r[0] == name), "{indexes:?}");
    }
    // The severity promise holds for new rows and updates.
    let err = db
        .execute("UPDATE anomalies SET severity = 'apocalyptic' WHERE anomaly_id = 'a1'")
        .unwrap_err();
    assert!(format!("{err:#}").contains("severity must be"), "{err:#}");
    // And new rows carry the column.
    let mut r = row("a2", 12.0);
    r.service = "payments".into();
    db.replace_anomalies("s", NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(), &[r])
        .unwrap();
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM anomalies WHERE service = 'payments'")
            .unwrap(),
        1
    );
}
