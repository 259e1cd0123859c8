use super::*;
use crate::records::{AnomalyRow, Incident, RunStart};
use chrono::TimeZone;

fn row(id: &str, score: f64) -> AnomalyRow {
    let t = Utc.with_ymd_and_hms(2026, 11, 20, 14, 5, 0).unwrap();
    AnomalyRow {
        provisional: false,
        vote: false,
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
    db.replace_detections("s", date, &[row("a", 10.0), row("b", 12.0)], &[])
        .unwrap();
    // A re-run that raises "a" again (new score) and no longer raises "b".
    db.replace_detections("s", date, &[row("a", 11.0)], &[])
        .unwrap();
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
    db.replace_detections(
        "s",
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
        &[r],
        &[],
    )
    .unwrap();
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM anomalies WHERE service = 'payments'")
            .unwrap(),
        1
    );
}

fn incident(id: &str, batch_date: NaiveDate) -> Incident {
    let t = Utc.with_ymd_and_hms(2026, 11, 20, 14, 5, 0).unwrap();
    Incident {
        incident_id: id.into(),
        source: "s".into(),
        batch_date,
        service: "checkout".into(),
        started_at: t,
        ended_at: t + chrono::Duration::minutes(5),
        anomalies: 1,
        entities: 1,
        repeats: 0,
        detectors: "zscore".into(),
        severity: "high".into(),
        max_score_ratio: 2.0,
        title: "why".into(),
    }
}

/// `rows` written as a schema before 10 (no `provisional` column) let 05-detect write them.
fn insert_before_provisional(db: &Database, rows: &[AnomalyRow]) {
    let d = db.dialect;
    for r in rows {
        let incident = r
            .incident_id
            .as_ref()
            .map_or("NULL".to_string(), |i| format!("'{i}'"));
        db.execute(&format!(
            "INSERT INTO anomalies (anomaly_id, run_id, detected_at, source, batch_date, \
             granularity, entity_key, window_start, window_end, detector, score, threshold, \
             severity, reason, details, model_version, incident_id, service) VALUES ('{}', \
             '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', {}, {}, '{}', '{}', '{}', '{}', \
             {incident}, '{}')",
            r.anomaly_id,
            r.run_id,
            format_ts(d, r.detected_at),
            r.source,
            r.batch_date,
            r.granularity,
            r.entity_key,
            format_ts(d, r.window_start),
            format_ts(d, r.window_end),
            r.detector,
            r.score,
            r.threshold,
            r.severity,
            r.reason,
            r.details,
            r.model_version,
            r.service
        ))
        .unwrap();
    }
}

fn with_incident(id: &str, incident: &str, batch_date: NaiveDate) -> AnomalyRow {
    AnomalyRow {
        incident_id: Some(incident.into()),
        batch_date,
        ..row(id, 10.0)
    }
}

/// Schema 4 had no foreign key: a link to a removed incident is cleared by the migration, the
/// others kept, and from then on the database holds the promise itself. On SQLite, and on
/// PostgreSQL in a database of its own when `TEST_DATABASE_URL` names a server (CI's).
#[test]
fn anomalies_reference_incidents_from_migration_5_on() {
    on_sqlite_and_postgres("migration5", migration_5_case);
}

/// Run `case` on a fresh SQLite file, then on PostgreSQL in a database of its own (dropped
/// after) when `TEST_DATABASE_URL` names a server, as CI's does. One case at a time on the
/// server: the migrations create a role, which is shared by the server's databases, and two
/// creating it at once collide.
fn on_sqlite_and_postgres(name: &str, case: fn(Database)) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let tmp = tempfile::tempdir().unwrap();
    case(Database::connect("", &tmp.path().join("own.db"), 1).unwrap());
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: {name} checked on SQLite only (CI sets it)");
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Database::connect(&url, Path::new("unused"), 1).unwrap();
    let name = format!("loglake_{name}_{}", std::process::id());
    server
        .execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    server.execute(&format!("CREATE DATABASE {name}")).unwrap();
    let mut own = url::Url::parse(&url).unwrap();
    own.set_path(&name);
    case(Database::connect(own.as_str(), Path::new("unused"), 1).unwrap());
    server.execute(&format!("DROP DATABASE {name}")).unwrap();
}

/// A verdict on a window keeps the window's start (what, with the service, names it) after
/// a re-run removes the anomaly: 04-train finds the window among its training rows by it.
/// Verdicts recorded before schema 8 get it from their anomaly.
#[test]
fn a_verdict_keeps_its_windows_start() {
    on_sqlite_and_postgres("verdict_window", verdict_window_case);
}

fn verdict_window_case(db: Database) {
    db.migrate_up_to(7).unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    insert_before_provisional(&db, &[row("a", 10.0), row("b", 9.0)]);
    db.execute(
        "INSERT INTO feedback (subject, subject_id, source, verdict, detector, granularity, \
         entity_key, kind, by_whom, at) VALUES ('anomaly', 'a', 's', 'normal', 'zscore', \
         'window', 'checkout', 'window|zscore|n_error', 'ana', '2026-11-21 08:00:00')",
    )
    .unwrap();
    db.migrate().unwrap();
    let verdict = crate::db::feedback::Verdict {
        by: "bo".into(),
        note: None,
    };
    db.mark_anomaly("b", "normal", &verdict).unwrap();
    db.replace_detections("s", day, &[], &[]).unwrap();
    let start = Utc
        .with_ymd_and_hms(2026, 11, 20, 14, 5, 0)
        .unwrap()
        .timestamp_millis();
    let verdicts = db.normal_verdicts("s").unwrap();
    let got: Vec<(&str, &str, Option<i64>)> = verdicts
        .iter()
        .map(|v| (v.anomaly_id.as_str(), v.by.as_str(), v.window_start))
        .collect();
    assert_eq!(
        got,
        vec![("a", "ana", Some(start)), ("b", "bo", Some(start))]
    );
    db.close();
}

fn migration_5_case(db: Database) {
    db.migrate_up_to(4).unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    // As schema 4 let them be written: nothing checked a2's link.
    let rows = [
        with_incident("a1", "i1", day),
        with_incident("a2", "gone", day),
    ];
    db.replace_detections("s", day, &[], &[incident("i1", day)])
        .unwrap();
    insert_before_provisional(&db, &rows);
    db.migrate().unwrap();
    let links = "SELECT anomaly_id, coalesce(incident_id, '-') FROM anomalies ORDER BY 1";
    assert_eq!(
        db.query_strings(links).unwrap(),
        vec![
            vec!["a1".to_string(), "i1".into()],
            vec!["a2".into(), "-".into()]
        ]
    );
    // The table keeps its views and its severity rule.
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM recent_anomalies")
            .unwrap(),
        2
    );
    let err = db
        .execute("UPDATE anomalies SET severity = 'apocalyptic' WHERE anomaly_id = 'a1'")
        .unwrap_err();
    assert!(format!("{err:#}").contains("severity"), "{err:#}");
    // An anomaly cannot name an incident that is not there...
    let err = db
        .replace_detections("s", day, &[with_incident("a3", "nowhere", day)], &[])
        .unwrap_err();
    let text = format!("{err:#}").to_lowercase();
    assert!(text.contains("foreign key"), "{text}");
    // ...and the failed write changed nothing (one transaction).
    assert_eq!(db.query_strings(links).unwrap().len(), 2);
    db.close();
}

/// 05-detect's write: a batch's incidents and anomalies replace the earlier run's together;
/// an incident a re-run no longer forms takes its links from other batches' anomalies with it.
#[test]
fn detections_replace_anomalies_and_incidents_together() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::connect("", &tmp.path().join("d.db"), 1).unwrap();
    db.migrate().unwrap();
    let (d1, d2) = (
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
    );
    db.replace_detections(
        "s",
        d1,
        &[with_incident("a1", "i1", d1)],
        &[incident("i1", d1)],
    )
    .unwrap();
    // The next day continues incident i1.
    db.replace_detections(
        "s",
        d2,
        &[with_incident("b1", "i1", d2)],
        &[incident("i1", d1)],
    )
    .unwrap();
    // A re-run of the first day forms another incident instead.
    db.replace_detections(
        "s",
        d1,
        &[with_incident("a1", "i2", d1)],
        &[incident("i2", d1)],
    )
    .unwrap();
    assert_eq!(
        db.query_strings("SELECT anomaly_id, coalesce(incident_id, '-') FROM anomalies ORDER BY 1")
            .unwrap(),
        vec![
            vec!["a1".to_string(), "i2".into()],
            vec!["b1".into(), "-".into()]
        ]
    );
    assert_eq!(
        db.query_strings("SELECT incident_id FROM incidents")
            .unwrap(),
        vec![vec!["i2".to_string()]]
    );
}

/// Writing more anomalies than one statement holds: every row arrives, in statements built
/// while the one before runs, and a re-run with fewer rows (a last, shorter statement)
/// replaces them.
#[test]
fn many_anomalies_are_written_in_several_statements() {
    on_sqlite_and_postgres("many_anomalies", many_anomalies_case);
}

fn many_anomalies_case(db: Database) {
    db.migrate().unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let rows = |n: usize, base: f64| -> Vec<AnomalyRow> {
        (0..n)
            .map(|i| row(&format!("a{i:04}"), base + i as f64))
            .collect()
    };
    let written = |db: &Database| -> Vec<(String, f64)> {
        db.anomaly_fingerprint("s")
            .unwrap()
            .into_iter()
            .map(|r| (r.0, r.3))
            .collect()
    };
    db.replace_detections("s", date, &rows(601, 0.0), &[])
        .unwrap();
    let first = written(&db);
    assert_eq!(first.len(), 601);
    assert!(
        first
            .iter()
            .enumerate()
            .all(|(i, (id, score))| *id == format!("a{i:04}") && *score == i as f64)
    );
    db.replace_detections("s", date, &rows(257, 1000.0), &[])
        .unwrap();
    let again = written(&db);
    assert_eq!(again.len(), 257);
    assert_eq!(again[256], ("a0256".to_string(), 1256.0));
    db.close();
}

/// 05-detect's write leaves SQLite's log to a checkpoint of its own: once it has run, the
/// database file itself holds the rows (the log alone held them before), and the connection
/// checkpoints automatically again.
#[test]
fn the_log_is_copied_into_the_database_file_after_a_detections_write() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wal.db");
    let db = Database::connect("", &path, 1).unwrap();
    db.migrate().unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let evidence = format!(r#"{{"top_features":["{}"]}}"#, "x".repeat(2000));
    let rows: Vec<AnomalyRow> = (0..600)
        .map(|i| AnomalyRow {
            provisional: false,
            vote: false,
            details: evidence.clone(),
            ..row(&format!("a{i:04}"), 1.0)
        })
        .collect();
    db.replace_detections("s", date, &rows, &[]).unwrap();
    db.wait_for_checkpoint();
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(
        after >= before + 600 * 2000,
        "the database file grew from {before} to {after} bytes only"
    );
    assert_eq!(
        db.query_i64("PRAGMA wal_autocheckpoint").unwrap(),
        i64::from(super::wal::AUTOCHECKPOINT_PAGES)
    );
    db.close();
}
