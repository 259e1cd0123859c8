//! End to end: every stage on generated data, against the embedded SQLite default and, when
//! `TEST_DATABASE_URL` is set, a real PostgreSQL server.
//!
//! Asserts what a user relies on: the injected anomalies are found (precision and recall
//! against the generator's labels), every bronze row lands in silver or quarantine, a re-run
//! changes neither the lake nor the anomalies table, and every anomaly explains itself.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use loglake::db::Database;
use loglake::evaluate::{Detection, detections_from, evaluate};
use loglake::generate::read_labels;
use loglake::lake::{Lake, Layer, tables};
use sha2::{Digest, Sha256};

const DATE: &str = "2026-11-21";

use common::loglake;

fn date() -> NaiveDate {
    NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap()
}

/// Generated logs plus one file of lines no parser should accept.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let raw = common::generated(dir, "2026-11-18", 2, 60_000, 2024);
    std::fs::write(
        raw.join("zz-bad.log"),
        b"not a log line at all\n\xff\xfe invalid utf-8\n\n",
    )
    .unwrap();
    (raw.clone(), raw.join("labels.jsonl"))
}

/// Content hash of every lake file except the database (which records each run).
fn lake_snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if !name.starts_with("loglake.db") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(
                    rel,
                    Sha256::digest(std::fs::read(&path).unwrap())
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>(),
                );
            }
        }
    }
    out
}

fn detections(lake: &Lake, source: &str) -> Vec<Detection> {
    let a = lake
        .scan(Layer::Detections, tables::ANOMALIES, source, &[date()])
        .unwrap()
        .unwrap()
        .collect()
        .unwrap();
    detections_from(&a).unwrap()
}

/// Runs the whole pipeline twice and checks everything; `database_url` None = embedded SQLite.
fn pipeline_case(source: &str, database_url: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let (raw, labels) = inputs(tmp.path());
    let lake_dir = tmp.path().join("lake");
    let lake_arg = lake_dir.to_string_lossy().to_string();
    let raw_arg = raw.join("logs").to_string_lossy().to_string();
    let bad_arg = raw.join("zz-bad.log").to_string_lossy().to_string();
    let labels_arg = labels.to_string_lossy().to_string();
    let mut args = vec!["--lake", &lake_arg, "--source", source, "--date", DATE];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let mut run_args = args.clone();
    run_args.extend([
        "run",
        "--input",
        &raw_arg,
        "--input",
        &bad_arg,
        "--format",
        "generator",
        "--session-key",
        r"req=(\S+)",
        "--labels",
        &labels_arg,
    ]);
    loglake(&run_args).expect("pipeline run");

    let lake = Lake::new(&lake_dir);
    let d = [date()];
    // Every bronze row is in silver or in quarantine, and the three bad lines are quarantined.
    let bronze = lake
        .table_rows(Layer::Bronze, tables::LINES, source, &d)
        .unwrap();
    let silver = lake
        .table_rows(Layer::Silver, tables::EVENTS, source, &d)
        .unwrap();
    let quarantined = lake
        .table_rows(Layer::Quarantine, tables::UNPARSED, source, &d)
        .unwrap();
    assert!(bronze > 100_000, "{bronze} bronze rows");
    assert_eq!(bronze, silver + quarantined);
    assert_eq!(quarantined, 3);
    let q = lake
        .scan(Layer::Quarantine, tables::UNPARSED, source, &d)
        .unwrap()
        .unwrap()
        .collect()
        .unwrap();
    let reasons: Vec<String> = q
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|r| r.unwrap().to_string())
        .collect();
    assert!(reasons.iter().any(|r| r == "invalid UTF-8"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "empty line"), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("does not match format")),
        "{reasons:?}"
    );

    // The injected anomalies are found.
    let found = detections(&lake, source);
    let e = evaluate(&found, &read_labels(&labels).unwrap());
    eprintln!(
        "{source}: precision {:.3} recall {:.3} ({:?})",
        e.overall.precision(),
        e.overall.recall(),
        e.per_kind
    );
    assert!(
        e.overall.precision() >= 0.8,
        "precision {:.3}: {:?}",
        e.overall.precision(),
        e.per_detector
    );
    assert!(
        e.overall.recall() >= 0.8,
        "recall {:.3}: {:?}",
        e.overall.recall(),
        e.per_kind
    );
    for (kind, (hit, total)) in &e.per_kind {
        assert!(*hit > 0, "no {kind} found (0 of {total})");
    }
    // The percentile baseline ran on windows, the severity rule and the value ranges on
    // events, and what they flag was injected (the never-seen lines are ERROR lines, routine
    // errors pass; the out-of-range lines report seconds where milliseconds are usual).
    for detector in ["percentile/window", "severity/event", "param_range/event"] {
        let (hit, flagged) = e.per_detector.get(detector).copied().unwrap_or_default();
        assert!(
            flagged > 0 && hit as f64 >= 0.8 * flagged as f64,
            "{detector} matched {hit} of {flagged}: {:?}",
            e.per_detector
        );
    }

    // Every anomaly explains itself, and the database holds exactly the lake's anomalies.
    let a = lake
        .scan(Layer::Detections, tables::ANOMALIES, source, &d)
        .unwrap()
        .unwrap()
        .collect()
        .unwrap();
    for (reason, details) in a
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .zip(a.column("details").unwrap().str().unwrap().iter())
    {
        let (reason, details) = (reason.unwrap(), details.unwrap());
        assert!(reason.len() > 20, "{reason}");
        let details: serde_json::Value = serde_json::from_str(details).unwrap();
        assert!(
            !details["top_features"].as_array().unwrap().is_empty(),
            "{details}"
        );
        assert!(
            !details["samples"].as_array().unwrap().is_empty(),
            "no sample lines for: {reason}"
        );
    }
    // The lake's anomalies name their service, as the database's do.
    let services = a.column("service").unwrap().str().unwrap();
    for (service, details) in services
        .iter()
        .zip(a.column("details").unwrap().str().unwrap().iter())
    {
        let details: serde_json::Value = serde_json::from_str(details.unwrap()).unwrap();
        assert_eq!(Some(service.unwrap()), details["service"].as_str());
    }
    let db =
        Database::connect(database_url.unwrap_or(""), &lake.default_database_path(), 2).unwrap();
    let first = db.anomaly_fingerprint(source).unwrap();
    assert_eq!(first.len(), a.height());
    // One anomaly per verdict of the ensemble: each detector's finding is a vote, its
    // evidence, in the table but counted nowhere.
    let votes = a.column("vote").unwrap().bool().unwrap();
    let verdicts = votes.iter().filter(|v| *v == Some(false)).count();
    let ensemble_rows = a
        .column("detector")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .filter(|d| *d == Some("ensemble"))
        .count();
    assert_eq!(
        verdicts, ensemble_rows,
        "the ensemble's rows are the anomalies"
    );
    assert!(
        verdicts > 0 && verdicts < a.height(),
        "{verdicts} of {}",
        a.height()
    );
    let count = |sql: &str| db.query_i64(&sql.replace("{source}", source)).unwrap();
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM anomalies v WHERE source = '{source}' AND NOT vote AND NOT EXISTS \
             (SELECT 1 FROM anomalies d WHERE d.vote AND d.source = v.source \
              AND d.granularity = v.granularity AND d.entity_key = v.entity_key \
              AND d.window_start = v.window_start)"
        ),
        0,
        "every verdict has the detectors' votes behind it"
    );
    // The SQL users write works here: the view and a plain aggregate.
    let recent = db
        .query_i64(&format!(
            "SELECT COUNT(*) FROM recent_anomalies WHERE source = '{source}'"
        ))
        .unwrap();
    assert_eq!(recent as usize, verdicts);
    let succeeded = db.run_counts(source).unwrap();
    assert_eq!(succeeded, vec![("succeeded".to_string(), 7)]);

    // The views answer the common questions and agree with the tables they summarise.
    assert_eq!(
        count_in(
            &db,
            "SELECT CAST(COALESCE(SUM(anomalies), 0) AS BIGINT) FROM anomalies_per_day WHERE source = '{source}'",
            source
        ),
        verdicts as i64
    );
    assert_eq!(
        count_in(
            &db,
            "SELECT COUNT(DISTINCT detector) FROM anomalies_per_day WHERE source = '{source}' AND service <> ''",
            source
        ),
        count_in(
            &db,
            "SELECT COUNT(DISTINCT detector) FROM anomalies WHERE source = '{source}' AND NOT vote",
            source
        )
    );
    assert_eq!(
        count_in(
            &db,
            "SELECT COUNT(*) FROM open_incidents WHERE source = '{source}'",
            source
        ),
        count_in(
            &db,
            "SELECT COUNT(*) FROM incidents WHERE source = '{source}'",
            source
        )
    );
    let latest = db
        .query_strings(&format!(
            "SELECT stage, status FROM latest_stage_runs WHERE source = '{source}' ORDER BY stage"
        ))
        .unwrap();
    assert_eq!(latest.len(), 7, "{latest:?}");
    assert!(latest.iter().all(|r| r[1] == "succeeded"), "{latest:?}");

    // The ensemble alone finds every injected kind; every anomaly belongs to an incident, and
    // an incident groups several of them.
    let ensemble: Vec<Detection> = found
        .iter()
        .filter(|d| d.detector == "ensemble")
        .cloned()
        .collect();
    let by_ensemble = evaluate(&ensemble, &read_labels(&labels).unwrap());
    for (kind, (hit, total)) in &by_ensemble.per_kind {
        assert!(*hit > 0, "ensemble found no {kind} (0 of {total})");
    }
    assert!(
        by_ensemble.overall.precision() >= 0.8,
        "{:?}",
        by_ensemble.per_detector
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM anomalies WHERE source = '{source}' AND (incident_id IS NULL) <> vote"
        ),
        0,
        "every verdict belongs to an incident, no vote does"
    );
    let incidents = count("SELECT COUNT(*) FROM incidents WHERE source = '{source}'");
    assert!(
        incidents > 0 && (incidents as usize) < verdicts,
        "{incidents} incidents"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM anomalies a WHERE source = '{source}' AND NOT vote AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.incident_id = a.incident_id)"
        ),
        0
    );
    // 06-report --labels wrote ranking quality per detector; the ensemble ranks sessions well.
    assert!(
        count("SELECT COUNT(*) FROM evaluations WHERE source = '{source}' AND roc_auc IS NOT NULL")
            >= 5
    );
    // Every detector of a granularity is judged on all its entities, also those that score
    // only some (the severity rule writes rows only for ERROR-or-worse lines, the value
    // ranges only for values beyond their range); the event ensemble finds every labelled
    // line, which takes both the template and the value detectors.
    assert_eq!(
        count(
            "SELECT COUNT(DISTINCT entities) FROM evaluations WHERE source = '{source}' AND granularity = 'event'"
        ),
        1
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM evaluations WHERE source = '{source}' AND granularity = 'event' AND detector = 'ensemble' AND recall = 1"
        ),
        1
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM evaluations WHERE source = '{source}' AND detector = 'ensemble' AND granularity = 'session' AND roc_auc >= 0.9 AND f1 >= 0.8"
        ),
        1
    );

    // A second run changes nothing: same lake bytes, same anomalies.
    let before = lake_snapshot(&lake_dir);
    loglake(&run_args).expect("second pipeline run");
    let after = lake_snapshot(&lake_dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let changed: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after[*k] != **v)
        .map(|(k, _)| k)
        .collect();
    assert!(changed.is_empty(), "re-run changed {changed:?}");
    assert_eq!(db.anomaly_fingerprint(source).unwrap(), first);
    db.close();
}

fn count_in(db: &Database, sql: &str, source: &str) -> i64 {
    db.query_i64(&sql.replace("{source}", source)).unwrap()
}

#[test]
fn pipeline_on_embedded_sqlite() {
    pipeline_case("shop", None);
}

#[test]
fn pipeline_on_postgres() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: skipping the PostgreSQL pipeline (CI sets it)");
        return;
    };
    // A source of its own, so that reruns of the suite against one server do not collide.
    let source = format!("pg{}", std::process::id());
    pipeline_case(&source, Some(&url));
    analysts_read_but_cannot_write(&url, &source);
    status_reads_postgres(&url, &source);
    dashboard_queries_run(&url, &source);
}

/// Every panel query of the Grafana dashboard runs on the PostgreSQL views with its
/// variables and time range as Grafana fills them in (this run's source, every service, the
/// last ten years), and the ones that should show this run's anomalies and stage runs do;
/// the variables' own queries run too, and the data source variable defaults to the
/// provisioned one.
fn dashboard_queries_run(url: &str, source: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/grafana/dashboards/loglake.json")).unwrap(),
    )
    .unwrap();
    let provisioned = std::fs::read_to_string(format!(
        "{root}/deploy/grafana/provisioning/datasources/loglake.yml"
    ))
    .unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    let default_source = variable("datasource")["current"]["value"].as_str().unwrap();
    assert!(provisioned.contains(&format!("uid: {default_source}")));
    let time_filter = regex::Regex::new(r"\$__timeFilter\(([^)]*)\)").unwrap();
    let fill = |sql: &str| -> String {
        let sql = sql
            .replace("${source:sqlstring}", &format!("'{source}'"))
            .replace("${service:sqlstring}", "SELECT service FROM anomalies");
        time_filter
            .replace_all(
                &sql,
                "$1 BETWEEN now() - interval '3650 days' AND now() + interval '1 day'",
            )
            .into_owned()
    };
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::connect(url, &tmp.path().join("unused.db"), 1).unwrap();
    let count = |what: &str, sql: &str| -> i64 {
        let sql = fill(sql);
        assert!(
            !sql.contains('$'),
            "{what}: a variable or macro left: {sql}"
        );
        // Counted rather than fetched: sqlx's Any driver decodes no TIMESTAMPTZ.
        db.query_i64(&format!("SELECT COUNT(*) FROM ({sql}) AS panel"))
            .unwrap_or_else(|e| panic!("{what}: {e:#}\n{sql}"))
    };
    for name in ["source", "service"] {
        let rows = count(name, variable(name)["query"].as_str().unwrap());
        assert!(rows > 0, "variable {name} lists nothing");
    }
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    let mut with_rows = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().unwrap() {
            let sql = target["rawSql"].as_str().unwrap();
            assert!(
                sql.contains("$__timeFilter") || title == "Last run of each stage",
                "{title}: the time picker does not filter it"
            );
            if count(title, sql) > 0 {
                with_rows.push(title.to_string());
            }
        }
    }
    for title in [
        "Anomalies per day",
        "Stage durations (seconds)",
        "Last run of each stage",
        "Top anomalies",
        "Detectors' votes behind the anomalies",
    ] {
        assert!(
            with_rows.iter().any(|t| t == title),
            "{title} is empty: {with_rows:?}"
        );
    }
}

/// `loglake status`'s queries on PostgreSQL (typed columns, casts) after a whole run.
fn status_reads_postgres(url: &str, source: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::connect(url, &tmp.path().join("unused.db"), 1).unwrap();
    let runs = db.last_runs(Some(source)).unwrap();
    // The last run may be a re-run that found the day's detections up to date: skipped.
    assert!(
        runs.iter().any(|r| r.stage == "05-detect"
            && ["succeeded", "skipped"].contains(&r.status.as_str())
            && r.duration_ms.is_some()),
        "{runs:?}"
    );
    assert!(runs.iter().all(|r| r.source == source));
    let models = db.latest_models(Some(source)).unwrap();
    assert!(models.iter().any(|m| m.detector == "zscore"), "{models:?}");
    let open = db.open_incidents(Some(source)).unwrap();
    assert!(
        open.iter().all(|i| i.open > 0 && i.source == source),
        "{open:?}"
    );
    // vacuum's statements: runs before tomorrow include this one's; no such model to delete.
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
    assert!(db.runs_before(tomorrow).unwrap() > 0);
    assert_eq!(db.delete_models(&["no-such-version".into()]).unwrap(), 0);
}

/// The migrations' `loglake_reader` role: a login in it reads every table and view and can
/// change nothing.
fn analysts_read_but_cannot_write(url: &str, source: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let unused = tmp.path().join("unused.db");
    let writer = Database::connect(url, &unused, 1).unwrap();
    let analyst = format!("loglake_analyst_{}", std::process::id());
    writer
        .execute(&format!(
            "CREATE ROLE {analyst} LOGIN PASSWORD 'analyst-pw' IN ROLE loglake_reader"
        ))
        .unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let reader_url = format!("{scheme}://{analyst}:analyst-pw@{host_and_db}");
    let reader = Database::connect(&reader_url, &unused, 1).unwrap();
    for view in [
        "anomalies",
        "recent_anomalies",
        "anomalies_per_day",
        "open_incidents",
        "incidents",
        "pipeline_runs",
        "latest_stage_runs",
        "evaluations",
        "models",
    ] {
        let n = reader
            .query_i64(&format!("SELECT COUNT(*) FROM {view}"))
            .unwrap_or_else(|e| panic!("the reader cannot read {view}: {e:#}"));
        assert!(n >= 0);
    }
    assert!(
        count_in(
            &reader,
            "SELECT COUNT(*) FROM anomalies WHERE source = '{source}'",
            source
        ) > 0
    );
    let attempts = [
        format!("DELETE FROM anomalies WHERE source = '{source}'"),
        format!("UPDATE incidents SET status = 'closed' WHERE source = '{source}'"),
        "INSERT INTO pipeline_runs (run_id, stage, source, batch_dates, status, started_at) VALUES ('x', 'x', 'x', 'x', 'running', now())".to_string(),
        "TRUNCATE anomalies".to_string(),
        "CREATE TABLE analyst_scratch (x int)".to_string(),
        "DROP VIEW recent_anomalies".to_string(),
    ];
    for sql in &attempts {
        let err = reader
            .execute(sql)
            .expect_err(&format!("the reader could run: {sql}"));
        let msg = format!("{err:#}");
        assert!(
            msg.contains("permission denied") || msg.contains("must be owner"),
            "{sql}: {msg}"
        );
    }
    // Nothing changed.
    assert!(
        count_in(
            &writer,
            "SELECT COUNT(*) FROM anomalies WHERE source = '{source}'",
            source
        ) > 0
    );
    reader.close();
    writer.execute(&format!("DROP ROLE {analyst}")).unwrap();
    writer.close();
}

#[test]
fn failures_exit_non_zero_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake").to_string_lossy().to_string();
    let lake2 = tmp.path().join("lake2").to_string_lossy().to_string();
    let tiny = tmp.path().join("tiny.log");
    std::fs::write(
        &tiny,
        "2026-11-21T10:00:00.000Z INFO api: request served in 12 ms\n\
         2026-11-21T10:00:01.000Z INFO api: request served in 15 ms\n",
    )
    .unwrap();
    let tiny = tiny.to_string_lossy().to_string();
    let bin = env!("CARGO_BIN_EXE_loglake");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--lake", &lake, "02-silver"], "not initialised"),
        (
            vec!["--lake", &lake, "--database-url", "mysql://x", "00-init"],
            "unsupported database URL",
        ),
        (
            vec![
                "--lake",
                &lake,
                "run",
                "--input",
                "Cargo.toml",
                "--format",
                "nosuch",
            ],
            "unknown format",
        ),
        (
            vec!["--lake", &lake, "run", "--input", "/no/such/file"],
            "does not exist",
        ),
    ];
    for (args, expected) in cases {
        let out = std::process::Command::new(bin)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("loglake: error:"))
            .collect();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        assert!(errors[0].contains(expected), "{args:?}: {}", errors[0]);
    }

    // Too little data for any detector is no failure (under cron it would fail every day
    // until history builds up): 04-train names each detector's shortfall, 05-detect has
    // nothing to score with yet, the report runs, and the run exits 0 — or the skip code.
    let tiny_run = |extra: &[&str]| {
        std::process::Command::new(bin)
            .args(["--lake", &lake2, "--source", "tiny"])
            .args(extra)
            .args(["run", "--input", &tiny])
            .output()
            .unwrap()
    };
    let out = tiny_run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for said in [
        "04-train: nothing to do: not enough history yet to train any detector (window z-score: no service has 8 training windows yet;",
        "rare_template: too few events to judge template rarity yet (2 of ",
        "05-detect: nothing to do: no trained model for source \"tiny\" yet",
        "06-report: ",
    ] {
        assert!(stdout.contains(said), "{said}: {stdout}");
    }
}

#[test]
fn postgres_passwords_are_never_printed() {
    let bin = env!("CARGO_BIN_EXE_loglake");
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake").to_string_lossy().to_string();
    // Nothing listens on port 9: the connection fails and the error names the URL.
    let out = std::process::Command::new(bin)
        .args(["--lake", &lake, "00-init"])
        .env(
            "LOGLAKE__DATABASE__URL",
            "postgres://loglake:s3cr3t-pw@127.0.0.1:9/loglake",
        )
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(
        all.contains("postgres://loglake:***@127.0.0.1:9/loglake"),
        "{all}"
    );
    assert!(!all.contains("s3cr3t-pw"), "{all}");
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let bin = env!("CARGO_BIN_EXE_loglake");
    let tmp = tempfile::tempdir().unwrap();
    let from_env = tmp.path().join("env-lake");
    let from_flag = tmp.path().join("flag-lake");
    let status = std::process::Command::new(bin)
        .args(["00-init"])
        .env("LOGLAKE__LAKE__PATH", &from_env)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(from_env.join("bronze").is_dir() && from_env.join("loglake.db").is_file());
    let status = std::process::Command::new(bin)
        .args(["--lake", from_flag.to_str().unwrap(), "00-init"])
        .env("LOGLAKE__LAKE__PATH", tmp.path().join("unused"))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(from_flag.join("bronze").is_dir());
    assert!(!tmp.path().join("unused").exists());
}
