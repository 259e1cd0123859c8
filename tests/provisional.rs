//! A day judged while it is still being written: verdicts on windows and sessions that have
//! not closed are provisional — written and marked, but in no incident and sent to no alert
//! receiver — and once the day closes its final anomalies are the ones a single run over the
//! whole day finds.

mod common;

use std::io::Write as _;
use std::path::Path;

use loglake::db::Database;
use polars::prelude::DataFrame;

const DAY: &str = "2026-03-02";

/// A lateness no test outlives: the test's past day stays open, as today's would.
const OPEN: (&str, &str) = ("LOGLAKE__GOLD__ALLOWED_LATENESS_MINUTES", "100000000");

/// A source as the commands see it: its name and the environment that configures it.
struct Source {
    name: &'static str,
    env: Vec<(String, String)>,
}

impl Source {
    fn shop() -> Self {
        let env = common::generator_source("shop").map(|(k, v)| (k, v.to_string()));
        Self {
            name: "shop",
            env: env.to_vec(),
        }
    }
}

fn loglake(lake: &Path, config: &Path, source: &Source, date: &str, args: &[&str], open: bool) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_loglake"));
    cmd.args(["--lake", lake.to_str().unwrap(), "--source", source.name])
        .args(["--config", config.to_str().unwrap(), "--date", date])
        .args(args)
        .envs(source.env.iter().map(|(k, v)| (k, v)));
    if open {
        cmd.env(OPEN.0, OPEN.1);
    }
    common::stdout_ok(cmd.output().unwrap());
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

/// Models trained on `first` (the day before, run whole) in one lake, copied into another;
/// then `DAY`'s `lines` into the first lake as `steps` micro-batches of a growing file, the
/// day open (`after_each` looks at the lake after each), then once more as the day has
/// closed; and into the second lake whole, from the grown file at the same path, with the
/// same models. Returns both lakes' anomalies of `DAY` and the provisional verdicts seen.
fn micro_and_whole(
    dir: &Path,
    config: &Path,
    source: &Source,
    first: &Path,
    lines: &[&str],
    steps: usize,
    after_each: &mut dyn FnMut(&Database),
) -> (DataFrame, DataFrame, i64) {
    micro_and_whole_on(
        dir,
        config,
        source,
        (first, DAY, true),
        lines,
        steps,
        after_each,
    )
}

/// [`micro_and_whole`] for batch date `day`; with `open`, the micro-batches run as if the
/// day and every window stayed open until the round that closes it.
fn micro_and_whole_on(
    dir: &Path,
    config: &Path,
    source: &Source,
    (first, day, open): (&Path, &str, bool),
    lines: &[&str],
    steps: usize,
    after_each: &mut dyn FnMut(&Database),
) -> (DataFrame, DataFrame, i64) {
    let (micro, whole) = (dir.join("micro"), dir.join("whole"));
    let input = ["run", "--input", first.to_str().unwrap()];
    loglake(&micro, config, source, "2026-03-01", &input, false);
    copy_folder(&micro, &whole);

    std::fs::create_dir_all(dir.join("growing")).unwrap();
    let growing = dir
        .join("growing")
        .join(format!("{}-{day}.log", source.name));
    let mut file = std::fs::File::create(&growing).unwrap();
    let mut provisional_seen = 0;
    let stages = ["02-silver", "03-gold", "05-detect"];
    for step in lines.chunks(lines.len().div_ceil(steps)) {
        file.write_all(step.concat().as_bytes()).unwrap();
        file.flush().unwrap();
        let input = ["01-bronze", "--input", growing.to_str().unwrap()];
        loglake(&micro, config, source, day, &input, open);
        for stage in stages {
            loglake(&micro, config, source, day, &[stage], open);
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
        after_each(&db);
        db.close();
    }
    // The day closes (its end plus the lateness is past by the wall clock): the next run
    // judges what was open, for good.
    for stage in stages {
        loglake(&micro, config, source, day, &[stage], false);
    }
    if open {
        let db = database(&micro);
        assert_eq!(
            db.query_i64("SELECT COUNT(*) FROM anomalies WHERE provisional")
                .unwrap(),
            0
        );
        db.close();
    }

    let input = ["01-bronze", "--input", growing.to_str().unwrap()];
    loglake(&whole, config, source, day, &input, false);
    for stage in stages {
        loglake(&whole, config, source, day, &[stage], false);
    }
    // Each micro-batch scored only the events no run had scored for good and the session
    // parts gold changed, and carried the earlier ones' scores over: in the end every entity
    // has its scores once, as the day run whole gives them.
    let (micro_scores, whole_scores) = (
        event_scores(&micro, source, day),
        event_scores(&whole, source, day),
    );
    assert!(whole_scores.height() > 0);
    assert!(
        micro_scores.equals_missing(&whole_scores),
        "scores differ: {}",
        common::first_difference(&micro_scores, &whole_scores)
    );
    let found =
        |lake: &Path| common::lake_anomalies(lake.to_str().unwrap(), source.name, &[day], &[]);
    (found(&micro), found(&whole), provisional_seen)
}

/// Every detector's score of every entity of `day`, sorted.
fn event_scores(lake: &Path, source: &Source, day: &str) -> DataFrame {
    use loglake::lake::{Lake, Layer, tables};
    let date = day.parse().unwrap();
    let scores = Lake::new(lake)
        .scan_partition(Layer::Detections, tables::SCORES, source.name, date)
        .unwrap()
        .expect("scores were written")
        .collect()
        .unwrap();
    common::sorted_by_every_column(scores)
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
    let text = std::fs::read_to_string(logs.join(format!("shop-{DAY}.log"))).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let first = logs.join("shop-2026-03-01.log");
    let mut alerts_checked = 0;
    // Every alert sent so far names an incident of final verdicts only.
    let mut no_provisional_alert = |db: &Database| {
        let bodies: Vec<serde_json::Value> =
            got.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
        for body in bodies {
            let id = body["incident"]["incident_id"]
                .as_str()
                .unwrap()
                .to_string();
            let q = format!(
                "SELECT COUNT(*) FROM anomalies WHERE incident_id = '{id}' AND provisional"
            );
            assert_eq!(db.query_i64(&q).unwrap(), 0, "alert for {id}");
            alerts_checked += 1;
        }
    };
    let (micro, whole, provisional) = micro_and_whole(
        tmp.path(),
        &config,
        &Source::shop(),
        &first,
        &lines,
        6,
        &mut no_provisional_alert,
    );
    assert!(
        provisional > 0,
        "open windows or sessions were judged (the case this checks)"
    );
    assert!(alerts_checked > 0, "alerts were sent during the day");
    assert!(whole.height() > 0);
    assert!(
        micro.equals_missing(&whole),
        "the day's final anomalies are the whole day's:\n{micro}\n{whole}"
    );
}

/// The HDFS dev sessions (`../shared/data`): the first half trains, the second half is the
/// day judged, as micro-batches and whole.
#[test]
fn hdfs_sessions_in_micro_batches_end_as_the_whole_day() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data.join("hdfs-sessions-dev/HDFS.log")).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (before, day) = lines.split_at(lines.len() / 2);
    let first = tmp.path().join("hdfs-2026-03-01.log");
    std::fs::write(&first, before.concat()).unwrap();
    let config = tmp.path().join("loglake.toml");
    std::fs::write(&config, "").unwrap();
    let hdfs = Source {
        name: "hdfs",
        env: vec![
            ("LOGLAKE__SOURCES__HDFS__FORMAT".into(), "hdfs".into()),
            (
                "LOGLAKE__SOURCES__HDFS__SESSION_KEY".into(),
                r"blk_-?\d+".into(),
            ),
        ],
    };
    let (micro, whole, _) =
        micro_and_whole(tmp.path(), &config, &hdfs, &first, day, 8, &mut |_| {});
    assert!(whole.height() > 0);
    assert!(
        micro.equals_missing(&whole),
        "the day's final anomalies are the whole day's:\n{micro}\n{whole}"
    );
}

/// Windows and sessions close during the day (the batch date is tomorrow's, so the day itself
/// stays open, and the watermark closes what it passes): a final verdict, once given, is the
/// same at every later run — same row, score and first detection — and the day's anomalies,
/// final and provisional, end as one run over it finds them.
#[test]
fn a_final_verdict_stands() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-03-01", 2, 20_000, 7);
    let logs = raw.join("logs");
    let text = std::fs::read_to_string(logs.join(format!("shop-{DAY}.log"))).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let config = tmp.path().join("loglake.toml");
    std::fs::write(&config, "").unwrap();
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1)).to_string();
    let verdict = "SELECT anomaly_id || ' ' || score || ' ' || detected_at FROM anomalies \
                   WHERE NOT provisional AND granularity IN ('window', 'session') ORDER BY 1";
    let mut given: Vec<Vec<String>> = Vec::new();
    let mut check = |db: &Database| {
        let now = db.query_strings(verdict).unwrap();
        for row in &given {
            assert!(now.contains(row), "a final verdict stands: {row:?}");
        }
        given = now;
    };
    let first = logs.join("shop-2026-03-01.log");
    let (micro, whole, provisional) = micro_and_whole_on(
        tmp.path(),
        &config,
        &Source::shop(),
        (&first, &tomorrow, false),
        &lines,
        6,
        &mut check,
    );
    assert!(provisional > 0, "open windows or sessions were judged");
    assert!(
        !given.is_empty(),
        "windows or sessions were judged final during the day"
    );
    assert!(
        micro.equals_missing(&whole),
        "the day's anomalies are the whole day's:\n{micro}\n{whole}"
    );

    // Lines far later than the allowed lateness, into the day's first windows, which were
    // judged closed long ago: a burst of errors there changes no verdict given.
    let lake = tmp.path().join("micro");
    let early = "SELECT COUNT(*) FROM anomalies WHERE granularity = 'window' \
                 AND window_start < '2026-03-02 00:05'";
    let db = database(&lake);
    let (early_before, given) = (
        db.query_i64(early).unwrap(),
        db.query_strings(verdict).unwrap(),
    );
    db.close();
    let growing = tmp
        .path()
        .join("growing")
        .join(format!("shop-{tomorrow}.log"));
    let mut late = String::new();
    for i in 0..3_000 {
        late.push_str(&format!(
            "2026-03-02T00:0{}:{:02}.000Z ERROR checkout: payment gateway timeout after {i} ms\n",
            i % 5,
            i % 60
        ));
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&growing)
        .unwrap();
    file.write_all(late.as_bytes()).unwrap();
    drop(file);
    let source = Source::shop();
    let input = ["01-bronze", "--input", growing.to_str().unwrap()];
    loglake(&lake, &config, &source, &tomorrow, &input, false);
    for stage in ["02-silver", "03-gold", "05-detect"] {
        loglake(&lake, &config, &source, &tomorrow, &[stage], false);
    }
    let db = database(&lake);
    let now = db.query_strings(verdict).unwrap();
    for row in &given {
        assert!(
            now.contains(row),
            "a final verdict stands after late lines: {row:?}"
        );
    }
    assert_eq!(
        db.query_i64(early).unwrap(),
        early_before,
        "no new verdict on the windows judged closed"
    );
    db.close();
}
