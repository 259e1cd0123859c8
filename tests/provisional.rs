//! A day judged while it is still being written: verdicts on windows and sessions that have
//! not closed are provisional — written and marked, but in no incident and sent to no alert
//! receiver — and once the day closes its final anomalies are the ones a single run over the
//! whole day finds.

mod common;

use std::io::Write as _;
use std::path::Path;

use loglake::db::Database;

const DAY: &str = "2026-03-02";

/// A lateness no test outlives: the test's past day stays open, as today's would.
const OPEN: (&str, &str) = ("LOGLAKE__GOLD__ALLOWED_LATENESS_MINUTES", "100000000");

fn loglake(lake: &Path, config: &Path, date: &str, args: &[&str], open: bool) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_loglake"));
    cmd.args(["--lake", lake.to_str().unwrap(), "--source", "shop"])
        .args(["--config", config.to_str().unwrap(), "--date", date])
        .args(args)
        .envs(common::generator_source("shop"));
    if open {
        cmd.env(OPEN.0, OPEN.1);
    }
    common::stdout_ok(cmd.output().unwrap())
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn database(lake: &Path) -> Database {
    let db = Database::connect("", &lake.join("loglake.db"), 1).unwrap();
    db.migrate().unwrap();
    db
}

#[test]
fn open_windows_and_sessions_raise_no_incident_and_no_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-03-01", 2, 20_000, 5);
    let (port, got) = common::recorder();
    let config = tmp.path().join("loglake.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nmin_severity = \"low\"\ntimeout_seconds = 2\n\
             [[alerts.receivers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
        ),
    )
    .unwrap();
    let logs = raw.join("logs");
    let first = logs.join("shop-2026-03-01.log");
    let second = logs.join(format!("shop-{DAY}.log"));
    let (micro, whole) = (tmp.path().join("micro"), tmp.path().join("whole"));
    // The models of both lakes come from the day before, run whole (one lake, copied).
    loglake(
        &micro,
        &config,
        "2026-03-01",
        &["run", "--input", first.to_str().unwrap()],
        false,
    );
    copy_folder(&micro, &whole);
    got.lock().unwrap().clear();

    let text = std::fs::read_to_string(&second).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    std::fs::create_dir_all(tmp.path().join("growing")).unwrap();
    let growing = tmp.path().join("growing").join(format!("shop-{DAY}.log"));
    let mut file = std::fs::File::create(&growing).unwrap();
    let mut provisional_seen = 0;
    for step in lines.chunks(lines.len().div_ceil(6)) {
        file.write_all(step.concat().as_bytes()).unwrap();
        file.flush().unwrap();
        let input = ["01-bronze", "--input", growing.to_str().unwrap()];
        loglake(&micro, &config, DAY, &input, true);
        for stage in ["02-silver", "03-gold", "05-detect"] {
            loglake(&micro, &config, DAY, &[stage], true);
        }
        let db = database(&micro);
        provisional_seen += db
            .query_i64("SELECT COUNT(*) FROM anomalies WHERE provisional")
            .unwrap();
        assert_eq!(
            db.query_i64(
                "SELECT COUNT(*) FROM anomalies WHERE provisional AND incident_id IS NOT NULL"
            )
            .unwrap(),
            0,
            "a provisional verdict is in no incident"
        );
        // Every alert sent so far names an incident of final verdicts only.
        for (_, body) in got.lock().unwrap().iter() {
            let id = body["incident"]["incident_id"]
                .as_str()
                .unwrap()
                .to_string();
            let q = format!(
                "SELECT COUNT(*) FROM anomalies WHERE incident_id = '{id}' AND provisional"
            );
            assert_eq!(db.query_i64(&q).unwrap(), 0, "alert for {id}");
        }
        db.close();
    }
    assert!(
        provisional_seen > 0,
        "open windows or sessions were judged (the case this checks)"
    );
    let before_close = got.lock().unwrap().len();

    // The day closes (its end plus the lateness is past by the wall clock): the next run
    // judges what was open, for good.
    for stage in ["02-silver", "03-gold", "05-detect"] {
        loglake(&micro, &config, DAY, &[stage], false);
    }
    let db = database(&micro);
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM anomalies WHERE provisional")
            .unwrap(),
        0
    );
    db.close();
    assert!(
        got.lock().unwrap().len() >= before_close,
        "closing the day may raise the incidents its last windows make"
    );

    // The same day whole — the grown file, at the same path — with the same models (no
    // 04-train).
    let input = ["01-bronze", "--input", growing.to_str().unwrap()];
    loglake(&whole, &config, DAY, &input, false);
    for stage in ["02-silver", "03-gold", "05-detect"] {
        loglake(&whole, &config, DAY, &[stage], false);
    }
    let found = |lake: &Path| common::lake_anomalies(lake.to_str().unwrap(), "shop", &[DAY], &[]);
    let (micro_found, whole_found) = (found(&micro), found(&whole));
    assert!(whole_found.height() > 0);
    assert!(
        micro_found.equals_missing(&whole_found),
        "the day's final anomalies are the whole day's:\n{micro_found}\n{whole_found}"
    );
}
