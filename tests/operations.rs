//! Running loglake as a batch job: the lake lock (a second writer fails or waits, a killed
//! writer's lock is recovered), exit codes for "nothing to do" (0 for cron, 99 opt-in for
//! Airflow), `pipeline_runs` status, and the Prometheus textfile.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use loglake::lake::lock::{LakeLock, OnLocked};

const BIN: &str = env!("CARGO_BIN_EXE_loglake");

fn generated(dir: &Path, lines_per_day: u64) -> PathBuf {
    common::generated(dir, "2026-11-19", 1, lines_per_day, 11).join("logs")
}

fn loglake(lake: &Path, args: &[&str]) -> Output {
    common::shop(lake, "2026-11-19", args)
}

/// The standard output of `loglake --lake LAKE ARGS`, which must succeed.
fn on_lake(lake: &Path, args: &[&str]) -> String {
    common::stdout_ok(
        Command::new(BIN)
            .args(["--lake", lake.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap(),
    )
}

fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("loglake: error:"))
        .map(str::to_string)
        .collect()
}

fn sqlite(lake: &Path, sql: &str) -> Vec<Vec<String>> {
    let db = loglake::db::Database::connect("", &lake.join("loglake.db"), 1).unwrap();
    db.query_strings(sql).unwrap()
}

#[test]
fn a_second_writer_fails_with_the_holder_named_or_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    assert!(loglake(&lake, &["00-init"]).status.success());

    let held = LakeLock::acquire(&lake, OnLocked::Fail, Duration::ZERO).unwrap();
    let out = loglake(&lake, &["--on-locked", "fail", "06-report"]);
    // EX_TEMPFAIL: a wrapper retries it rather than reporting a failure.
    assert_eq!(out.status.code(), Some(75));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("is locked by pid")
            && errors[0].contains(&std::process::id().to_string()),
        "{}",
        errors[0]
    );
    // The same through the environment, the way a crontab would set it.
    let out = Command::new(BIN)
        .args(["--lake", lake.to_str().unwrap(), "06-report"])
        .env("LOGLAKE__RUN__ON_LOCKED", "fail")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    // Waiting past the timeout is the same temporary failure.
    let out = Command::new(BIN)
        .args(["--lake", lake.to_str().unwrap(), "06-report"])
        .env("LOGLAKE__RUN__LOCK_TIMEOUT_SECONDS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gave up after 0s waiting"));

    // Waiting (the default): the stage runs once the holder lets go.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        drop(held);
    });
    let t0 = Instant::now();
    let out = loglake(&lake, &["06-report"]);
    release.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t0.elapsed() >= Duration::from_millis(600));
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting for it"));
}

#[test]
fn a_killed_writer_leaves_a_lake_the_next_run_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = generated(tmp.path(), 300_000);
    let lake = tmp.path().join("lake");
    assert!(loglake(&lake, &["00-init"]).status.success());

    let mut child = Command::new(BIN)
        .args(["--lake", lake.to_str().unwrap(), "--source", "shop"])
        .args(["--date", "2026-11-19"])
        .args([
            "run",
            "--format",
            "generator",
            "--from",
            "01-bronze",
            "--input",
            logs.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it holds the lock and is inside 02-silver, the longest stage here (its
    // `running` row exists). Not inside 01-bronze: that stage is over in about as long as the
    // pause below, and a kill between two stages leaves no `running` row to recover.
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let holder = std::fs::read_to_string(lake.join("_lock")).unwrap_or_default();
        let running = holder.contains(&format!("\"pid\":{pid}"))
            && !sqlite(
                &lake,
                "SELECT stage FROM pipeline_runs WHERE status = 'running' AND stage = '02-silver'",
            )
            .is_empty();
        if running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writer never started a stage"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL: no destructor, no cleanup, like an OOM kill
    child.wait().unwrap();

    // The record is still there; the kernel has released the lock itself.
    let record = std::fs::read_to_string(lake.join("_lock")).unwrap();
    assert!(record.contains(&format!("\"pid\":{pid}")), "{record}");

    let out = Command::new(BIN)
        .args(["--lake", lake.to_str().unwrap(), "--source", "shop"])
        .args(["--date", "2026-11-19", "--on-locked", "fail"])
        .args([
            "run",
            "--format",
            "generator",
            "--from",
            "01-bronze",
            "--to",
            "03-gold",
            "--input",
            logs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("did not exit cleanly"), "{stderr}");
    // Nothing left half-written, nothing shown as running forever.
    assert_eq!(std::fs::read_dir(lake.join("_staging")).unwrap().count(), 0);
    assert!(
        sqlite(
            &lake,
            "SELECT id FROM pipeline_runs WHERE status = 'running'"
        )
        .is_empty()
    );
    let failed = sqlite(
        &lake,
        "SELECT error FROM pipeline_runs WHERE status = 'failed'",
    );
    assert!(
        failed.iter().any(|r| r[0].contains(&format!("pid {pid}"))),
        "{failed:?}"
    );
    // A clean exit leaves no holder record behind.
    assert_eq!(std::fs::read_to_string(lake.join("_lock")).unwrap(), "");
    // And the lake the recovered run built is complete: every line reached silver.
    let lines = sqlite(
        &lake,
        "SELECT rows_in, rows_out FROM pipeline_runs WHERE stage = '02-silver' AND status = 'succeeded'",
    );
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0][0], lines[0][1]);
}

#[test]
fn nothing_to_do_exits_zero_by_default_and_the_configured_code_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = generated(tmp.path(), 20_000);
    let lake = tmp.path().join("lake");
    let input = logs.to_str().unwrap();
    let metrics = tmp.path().join("metrics/loglake.prom");
    let with_metrics = |args: &[&str]| {
        Command::new(BIN)
            .args(["--lake", lake.to_str().unwrap(), "--source", "shop"])
            .args(["--date", "2026-11-19"])
            .args(args)
            .envs(common::generator_source("shop"))
            .env("LOGLAKE__RUN__METRICS_TEXTFILE", &metrics)
            .output()
            .unwrap()
    };
    let out = with_metrics(&["run", "--input", input]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Same files again: bronze has nothing to do.
    let out = loglake(&lake, &["01-bronze", "--input", input]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    let out = loglake(
        &lake,
        &["--skip-exit-code", "99", "01-bronze", "--input", input],
    );
    assert_eq!(out.status.code(), Some(99));
    assert!(error_lines(&out).is_empty());

    // A date with no data: silver, gold and detect have nothing to do.
    for stage in ["02-silver", "03-gold", "05-detect"] {
        let out = Command::new(BIN)
            .args(["--lake", lake.to_str().unwrap(), "--source", "shop"])
            .args(["--date", "2026-11-20", stage])
            .env("LOGLAKE__RUN__SKIP_EXIT_CODE", "99")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(99), "{stage}");
    }
    // A model trained on the 19th is fresh enough on the 20th with weekly retraining...
    let train = |date: &str| {
        Command::new(BIN)
            .args(["--lake", lake.to_str().unwrap(), "--source", "shop"])
            .args(["--date", date, "--skip-exit-code", "99", "04-train"])
            .env("LOGLAKE__TRAIN__RETRAIN_EVERY_DAYS", "7")
            .output()
            .unwrap()
    };
    assert_eq!(train("2026-11-20").status.code(), Some(99));
    // ...and stale a week later, when the gold of the 19th is still within the lookback.
    assert_eq!(train("2026-11-26").status.code(), Some(0));

    // A real failure is still 1, whatever the skip code.
    let out = loglake(
        &lake,
        &[
            "--skip-exit-code",
            "99",
            "01-bronze",
            "--input",
            "/no/such/dir",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    let rows = sqlite(
        &lake,
        "SELECT status, count(*) FROM pipeline_runs GROUP BY status ORDER BY status",
    );
    let count = |s: &str| rows.iter().find(|r| r[0] == s).map(|r| r[1].clone());
    assert_eq!(count("skipped").as_deref(), Some("6"), "{rows:?}");
    assert_eq!(count("failed").as_deref(), Some("1"), "{rows:?}");

    // The textfile has every stage of the first run, in the exposition format.
    let text = std::fs::read_to_string(&metrics).unwrap();
    for stage in [
        "01-bronze",
        "02-silver",
        "03-gold",
        "04-train",
        "05-detect",
        "06-report",
    ] {
        assert!(
            text.contains(&format!(
                "loglake_stage_success{{source=\"shop\",stage=\"{stage}\"}} 1"
            )),
            "{stage}: {text}"
        );
    }
    let anomalies: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("loglake_anomalies{source=\"shop\"} "))
        .expect("anomalies series")
        .parse()
        .unwrap();
    assert!(anomalies > 0.0, "{text}");
    assert!(text.contains("# TYPE loglake_stage_duration_seconds gauge"));

    // A stage that runs and fails: its last run moves on, its last success does not, so a
    // staleness alert on the last success fires for a stage that fails every day.
    let value = |text: &str, name: &str| -> f64 {
        let key = format!("{name}{{source=\"shop\",stage=\"01-bronze\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("{name}: {text}"))
            .parse()
            .unwrap()
    };
    let success_before = value(&text, "loglake_stage_last_success_timestamp_seconds");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = with_metrics(&["01-bronze", "--input", "/no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(
        value(&text, "loglake_stage_last_success_timestamp_seconds"),
        success_before
    );
    assert!(value(&text, "loglake_stage_last_run_timestamp_seconds") > success_before);
    assert_eq!(value(&text, "loglake_stage_success"), 0.0);
}

#[test]
fn the_cron_wrapper_logs_per_date_and_prints_only_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = generated(tmp.path(), 20_000);
    let log_dir = tmp.path().join("cron-logs");
    let cron = |date: &str, input: &Path| {
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/loglake-cron.sh"
        ))
        .arg(date)
        .env("LOGLAKE_BIN", BIN)
        .env("LOGLAKE_INPUT", input)
        .env("LOGLAKE_LOG_DIR", &log_dir)
        .env("LOGLAKE__SOURCES__SHOP__FORMAT", "generator")
        .env(
            "LOGLAKE_ARGS",
            format!("--lake {} --source shop", tmp.path().join("lake").display()),
        )
        .output()
        .unwrap()
    };
    let ok = cron("2026-11-19", &logs);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(
        ok.stdout.is_empty() && ok.stderr.is_empty(),
        "a good batch prints nothing"
    );
    let log = std::fs::read_to_string(log_dir.join("loglake-2026-11-19.log")).unwrap();
    assert!(log.contains("05-detect:") && log.contains("=== ") && log.contains("exit 0"));
    assert!(
        tmp.path()
            .join("lake/reports/2026-11-19/index.html")
            .is_file()
    );

    let failed = cron("2026-11-20", &tmp.path().join("missing"));
    assert_eq!(failed.status.code(), Some(1));
    let mail = String::from_utf8_lossy(&failed.stdout);
    assert!(
        mail.contains("loglake batch 2026-11-20 failed (exit 1)"),
        "{mail}"
    );
    assert!(
        mail.contains("loglake: error:") && mail.contains("does not exist"),
        "{mail}"
    );
    assert!(mail.contains("loglake-2026-11-20.log"), "{mail}");

    // Another writer holds the lake through every try: exit 75, tried again, said once.
    let held = LakeLock::acquire(&tmp.path().join("lake"), OnLocked::Fail, Duration::ZERO).unwrap();
    let locked = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/loglake-cron.sh"
    ))
    .arg("2026-11-21")
    .env("LOGLAKE_BIN", BIN)
    .env("LOGLAKE_INPUT", &logs)
    .env("LOGLAKE_LOG_DIR", &log_dir)
    .env("LOGLAKE_LOCKED_RETRIES", "1")
    .env("LOGLAKE_LOCKED_PAUSE", "0")
    .env("LOGLAKE__SOURCES__SHOP__FORMAT", "generator")
    .env(
        "LOGLAKE_ARGS",
        format!(
            "--lake {} --source shop --on-locked fail",
            tmp.path().join("lake").display()
        ),
    )
    .output()
    .unwrap();
    drop(held);
    assert_eq!(locked.status.code(), Some(75));
    let mail = String::from_utf8_lossy(&locked.stdout);
    assert!(
        mail.contains("stayed locked") && mail.contains("2 tries"),
        "{mail}"
    );
    let log = std::fs::read_to_string(log_dir.join("loglake-2026-11-21.log")).unwrap();
    assert_eq!(log.matches("exit 75").count(), 2, "{log}");
}

#[test]
fn an_outage_across_midnight_is_one_incident_across_two_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-18", 2, 20_000, 17);
    // An outage that crosses midnight: checkout logs something it never logs at 23:50, and
    // something else it never logs at 00:10 — each in its own day's batch.
    let burst = |day: &str, line: &str| -> PathBuf {
        let path = tmp.path().join(format!("outage-{day}.log"));
        std::fs::write(&path, format!("{line}\n")).unwrap();
        path
    };
    let lake = tmp.path().join("lake");
    for (day, burst) in [
        (
            "2026-11-18",
            burst(
                "2026-11-18",
                "2026-11-18T23:50:00.000Z ERROR checkout: watchdog detected hard lockup on cpu3",
            ),
        ),
        (
            "2026-11-19",
            burst(
                "2026-11-19",
                "2026-11-19T00:10:00.000Z ERROR checkout: circuit breaker opened for upstream ledger",
            ),
        ),
    ] {
        let logs = raw.join("logs").join(format!("shop-{day}.log"));
        let (logs, burst) = (logs.to_str().unwrap(), burst.to_str().unwrap());
        common::shop_ok(
            &lake,
            day,
            &[
                "run",
                "--to",
                "05-detect",
                "--input",
                logs,
                "--input",
                burst,
            ],
        );
    }
    // One incident holds anomalies of both batches, dated by the batch it began in.
    let spanning = sqlite(
        &lake,
        "SELECT incident_id FROM anomalies WHERE source = 'shop' AND NOT vote GROUP BY incident_id \
         HAVING COUNT(DISTINCT batch_date) = 2",
    );
    assert_eq!(spanning.len(), 1, "{spanning:?}");
    let id = &spanning[0][0];
    let row = sqlite(
        &lake,
        &format!(
            "SELECT batch_date, service, started_at, ended_at, anomalies FROM incidents WHERE incident_id = '{id}'"
        ),
    );
    assert_eq!(row.len(), 1);
    let [batch, service, started, ended, n] = &row[0][..] else {
        panic!("{row:?}")
    };
    assert_eq!(
        (batch.as_str(), service.as_str()),
        ("2026-11-18", "checkout")
    );
    assert!(
        started.starts_with("2026-11-18 23:") && ended.starts_with("2026-11-19 00:"),
        "{started} {ended}"
    );
    let members = sqlite(
        &lake,
        &format!("SELECT COUNT(*) FROM anomalies WHERE incident_id = '{id}'"),
    );
    assert_eq!(&members[0][0], n);
    // No anomaly points at an incident that does not exist.
    let dangling = sqlite(
        &lake,
        "SELECT COUNT(*) FROM anomalies a WHERE NOT vote AND NOT EXISTS \
         (SELECT 1 FROM incidents i WHERE i.incident_id = a.incident_id)",
    );
    assert_eq!(dangling[0][0], "0");
}

#[test]
fn cron_from_home_finds_the_config_and_its_relative_paths() {
    // Cron starts jobs in $HOME: the config comes from $LOGLAKE_CONFIG, and the lake it names
    // relatively lands beside the config file, not in the working directory.
    let tmp = tempfile::tempdir().unwrap();
    let logs = generated(tmp.path(), 5_000);
    let etc = tmp.path().join("etc");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let config = etc.join("loglake.toml");
    std::fs::write(
        &config,
        "[lake]\npath = \"data/lake\"\n[run]\nmetrics_textfile = \"metrics/loglake.prom\"\n[parse]\nformat = \"generator\"\n",
    )
    .unwrap();
    let loglake = |args: &[&str]| {
        Command::new(BIN)
            .current_dir(&home)
            .env("LOGLAKE_CONFIG", &config)
            .env_remove("LOGLAKE__DATABASE__URL")
            .env_remove("DATABASE_URL")
            .args(["--source", "shop", "--date", "2026-11-19"])
            .args(args)
            .output()
            .unwrap()
    };
    common::succeeded(loglake(&[
        "run",
        "--to",
        "02-silver",
        "--input",
        logs.to_str().unwrap(),
    ]));
    assert!(etc.join("data/lake/silver").is_dir());
    assert!(etc.join("data/lake/loglake.db").is_file());
    assert!(etc.join("metrics/loglake.prom").is_file());
    assert!(!home.join("lake").exists() && !home.join("data").exists());

    // A missing $LOGLAKE_CONFIG is an error that names it, not a silent fall-back.
    let out = Command::new(BIN)
        .current_dir(&home)
        .env("LOGLAKE_CONFIG", etc.join("nope.toml"))
        .args(["06-report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOGLAKE_CONFIG"));

    // DATABASE_URL is honoured when LOGLAKE__DATABASE__URL is unset; a path given by a
    // variable stays relative to the working directory.
    common::succeeded(
        Command::new(BIN)
            .current_dir(&home)
            .env("LOGLAKE_CONFIG", &config)
            .env_remove("LOGLAKE__DATABASE__URL")
            .env("DATABASE_URL", "sqlite://elsewhere.db")
            .args(["--source", "shop", "--date", "2026-11-19", "03-gold"])
            .output()
            .unwrap(),
    );
    assert!(home.join("elsewhere.db").is_file());
}

#[test]
fn status_reads_a_multi_day_lake_without_its_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-18", 2, 5_000, 3).join("logs");
    let lake = tmp.path().join("lake");
    for (date, file) in [
        ("2026-11-18", "shop-2026-11-18.log"),
        ("2026-11-19", "shop-2026-11-19.log"),
    ] {
        common::shop_ok(
            &lake,
            date,
            &["run", "--input", raw.join(file).to_str().unwrap()],
        );
    }
    let lines: u64 = ["shop-2026-11-18.log", "shop-2026-11-19.log"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(raw.join(f))
                .unwrap()
                .lines()
                .count() as u64
        })
        .sum();
    // A writer holds the lake: status still answers, and leaves the lock alone.
    let held = LakeLock::acquire(&lake, OnLocked::Fail, Duration::ZERO).unwrap();
    let status = |args: &[&str]| on_lake(&lake, args);
    let json: serde_json::Value =
        serde_json::from_str(&status(&["status", "--output", "json"])).unwrap();
    drop(held);
    let table = |name: &str| {
        json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["source"] == "shop" && t["table"] == name)
            .unwrap_or_else(|| panic!("{name}: {json}"))
            .clone()
    };
    assert_eq!(table("bronze/lines")["partitions"], 2);
    assert_eq!(table("bronze/lines")["rows"], lines);
    assert_eq!(table("bronze/lines")["first_date"], "2026-11-18");
    assert_eq!(table("bronze/lines")["last_date"], "2026-11-19");
    let silver = table("silver/events")["rows"].as_u64().unwrap();
    let quarantined = table("quarantine/unparsed")["rows"].as_u64().unwrap();
    assert_eq!(silver + quarantined, lines);
    let runs = json["last_runs"].as_array().unwrap();
    let report = runs
        .iter()
        .find(|r| r["source"] == "shop" && r["stage"] == "06-report")
        .unwrap();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["batch_dates"], "2026-11-19");
    let models = json["models"].as_array().unwrap();
    assert!(
        models
            .iter()
            .any(|m| m["detector"] == "zscore" && m["granularity"] == "session")
    );
    // One model per detector and granularity: the latest.
    let mut keys: Vec<String> = models
        .iter()
        .map(|m| format!("{}/{}", m["granularity"], m["detector"]))
        .collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n);
    // 06-report --output json: one document on stdout, the same figures.
    let out = common::shop_ok(&lake, "2026-11-19", &["06-report", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["source"], "shop");
    assert_eq!(report["batch"], "2026-11-19");
    let day_lines = std::fs::read_to_string(raw.join("shop-2026-11-19.log"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(report["rows"]["bronze/lines"], day_lines);
    assert!(report["summary"].as_str().unwrap().contains("bronze rows"));
    // The text form names the source and its tables; --source narrows to one.
    let text = status(&["--source", "shop", "status"]);
    assert!(
        text.contains("source shop") && text.contains("silver/events"),
        "{text}"
    );
    assert!(!text.contains("source default"), "{text}");
}

#[test]
fn vacuum_lists_then_removes_what_is_older_than_the_days_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let today = chrono::Utc::now().date_naive();
    let old = today - chrono::Duration::days(40);
    let new = today - chrono::Duration::days(2);
    let lake = tmp.path().join("lake");
    for (k, date) in [old, new].into_iter().enumerate() {
        let date = date.to_string();
        let raw = common::generated(&tmp.path().join(format!("g{k}")), &date, 1, 4_000, 5);
        common::shop_ok(
            &lake,
            &date,
            &[
                "run",
                "--html",
                "--input",
                raw.join("logs").to_str().unwrap(),
            ],
        );
    }
    let vacuum = |args: &[&str]| on_lake(&lake, &[&["vacuum", "--keep-days", "30"], args].concat());
    let partition =
        |date: chrono::NaiveDate| lake.join(format!("silver/events/source=shop/date={date}"));
    let model_dirs = || -> Vec<String> {
        let dir = lake.join("models/shop/session/zscore");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(model_dirs().len(), 2);

    // A dry run lists and deletes nothing.
    let listing = vacuum(&[]);
    assert!(
        listing.contains(&format!("silver/events source=shop date={old}")),
        "{listing}"
    );
    assert!(!listing.contains(&format!("date={new}")), "{listing}");
    assert!(
        listing.contains("model ") && listing.contains(&format!("reports/{old}")),
        "{listing}"
    );
    assert!(listing.contains("dry run, nothing deleted"), "{listing}");
    assert!(partition(old).is_dir());

    let done = vacuum(&["--yes"]);
    assert!(done.contains("removed everything before"), "{done}");
    assert!(!partition(old).exists() && partition(new).is_dir());
    assert!(!lake.join(format!("reports/{old}")).exists());
    assert!(lake.join(format!("reports/{new}")).is_dir());
    // The latest model of each detector stays, with its row; the older one goes with its row.
    let left = model_dirs();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with(&new.format("%Y%m%d").to_string()),
        "{left:?}"
    );
    let rows = sqlite(
        &lake,
        "SELECT model_version FROM models WHERE detector = 'zscore' AND granularity = 'session'",
    );
    assert_eq!(rows, vec![vec![left[0].clone()]]);
    // Nothing is left in staging, and the kept day still detects.
    assert_eq!(std::fs::read_dir(lake.join("_staging")).unwrap().count(), 0);
    common::shop_ok(&lake, &new.to_string(), &["05-detect"]);
    // A second vacuum has nothing to do.
    assert!(vacuum(&["--yes"]).contains("0 partition(s), 0 model version(s), 0 report(s)"));
}
