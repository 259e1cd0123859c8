//! A day ingested as many micro-batches — its file growing between runs of `01-bronze` and
//! `02-silver` — must end with the silver a single run over the whole file writes: the same
//! events in the same order with the same values and templates (a template id an earlier
//! run wrote and a later one refined away read through its successor), the same templates
//! with the same counts, the same quarantine; each run parsing only the lines that are new,
//! and a run with nothing new writing nothing. Many runs' parts are compacted on their own.
//!
//! The same for gold: `03-gold` after each run reads only the new events, and once the day
//! has closed its features are those of the day built whole at once, row for row.

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use chrono::NaiveDate;
use loglake::lake::{Lake, Layer, tables};
use loglake::stages::template_store::{resolve, successors_of};
use polars::prelude::*;

/// A lateness no test outlives: the test's past dates stay open, as today's would.
const OPEN: (&str, &str) = ("LOGLAKE__GOLD__ALLOWED_LATENESS_MINUTES", "100000000");

fn loglake(lake: &Path, source: &str, date: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap(), "--source", source])
        .args(["--date", date])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Silver's events (retired template ids resolved), templates and quarantine of one day.
fn silver(lake: &Path, source: &str, date: &str) -> (DataFrame, DataFrame, DataFrame) {
    let lake = Lake::new(lake);
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    let read = |layer, table| {
        lake.scan_partition(layer, table, source, date)
            .unwrap()
            .map(|lf| lf.collect().unwrap())
            .unwrap_or_default()
    };
    let events = resolve(
        read(Layer::Silver, tables::EVENTS),
        &successors_of(&lake, source, date).unwrap(),
    )
    .unwrap();
    let templates = read(Layer::Silver, tables::TEMPLATES)
        .sort(["template_id"], Default::default())
        .unwrap();
    let quarantine = read(Layer::Quarantine, tables::UNPARSED);
    (events, templates, quarantine)
}

fn parts(lake: &Path, source: &str, date: &str) -> usize {
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    Lake::new(lake)
        .part_files(Layer::Silver, tables::EVENTS, source, date)
        .unwrap()
        .len()
}

/// One day's gold tables, in a fixed order: window features by service and window, sessions
/// and their template counts by key, event features in silver's order.
fn gold(lake: &Path, source: &str, date: &str) -> [DataFrame; 4] {
    let lake = Lake::new(lake);
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    let read = |table, by: &[&str]| {
        let df = lake
            .scan_partition(Layer::Gold, table, source, date)
            .unwrap()
            .map(|lf| lf.collect().unwrap())
            .unwrap_or_default();
        if by.is_empty() || df.width() == 0 {
            df
        } else {
            df.sort(by.to_vec(), Default::default()).unwrap()
        }
    };
    [
        read(tables::WINDOW_FEATURES, &["service", "window_start"]),
        read(tables::SESSION_FEATURES, &["session_key"]),
        read(
            tables::SESSION_TEMPLATE_COUNTS,
            &["session_key", "template_id"],
        ),
        read(tables::EVENT_FEATURES, &[]),
    ]
}

/// Events a run of `03-gold` says it read.
fn gold_read(said: &str) -> usize {
    if said.contains("03-gold: nothing to do") {
        return 0;
    }
    said.split("03-gold: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("03-gold said: {said}"))
}

/// `lines` ingested whole into one lake, and in `steps` growing micro-batches into another;
/// returns both lakes' silver.
fn whole_and_micro(
    dir: &Path,
    source: &str,
    date: &str,
    lines: &[String],
    steps: usize,
    env: &[(&str, &str)],
) -> [(DataFrame, DataFrame, DataFrame); 2] {
    let (whole, micro) = (dir.join("whole"), dir.join("micro"));
    let whole_file = dir.join("whole.log");
    std::fs::write(&whole_file, lines.concat()).unwrap();
    for lake in [&whole, &micro] {
        loglake(lake, source, date, &["00-init"], env);
    }
    let bronze = |lake: &Path, f: &Path| {
        loglake(
            lake,
            source,
            date,
            &["01-bronze", "--input", f.to_str().unwrap()],
            env,
        )
    };
    bronze(&whole, &whole_file);
    loglake(&whole, source, date, &["02-silver"], env);

    std::fs::create_dir_all(dir.join("growing")).unwrap();
    let growing = dir.join("growing").join("whole.log");
    let mut file = std::fs::File::create(&growing).unwrap();
    let per_step = lines.len().div_ceil(steps);
    let mut gold_events = 0;
    for (k, step) in lines.chunks(per_step).enumerate() {
        file.write_all(step.concat().as_bytes()).unwrap();
        file.flush().unwrap();
        bronze(&micro, &growing);
        let said = loglake(&micro, source, date, &["02-silver"], env);
        assert!(
            said.contains(&format!("02-silver: {} lines parsed", step.len())),
            "run {k} parses only its own lines: {said}"
        );
        if k == steps / 2 {
            // A run of 03-gold that dies after committing its parts, before its state: done
            // again, it must not count its events twice.
            // (Its state and its record of what it built from are committed after its parts.)
            let records: Vec<_> = ["build_state", "built_from"]
                .iter()
                .map(|table| {
                    let at = micro
                        .join("gold")
                        .join(table)
                        .join(format!("source={source}"))
                        .join(format!("date={date}"));
                    (copy_dir(&at, &dir.join(format!("{table}-before"))), at)
                })
                .collect();
            loglake(&micro, source, date, &["03-gold"], env);
            for (before, at) in &records {
                std::fs::remove_dir_all(at).unwrap();
                copy_dir(before, at);
            }
        }
        gold_events += gold_read(&loglake(&micro, source, date, &["03-gold"], env));
    }
    // A run with nothing new for the day writes nothing.
    let said = loglake(&micro, source, date, &["02-silver"], env);
    assert!(said.contains("parsed already"), "{said}");
    assert!(
        parts(&micro, source, date) <= 24,
        "{} parts: compacted",
        parts(&micro, source, date)
    );
    // Gold, once the day has closed: the micro-batches' lake carries on, the other builds
    // the day whole at once.
    let closed: Vec<(&str, &str)> = env.iter().copied().filter(|e| *e != OPEN).collect();
    gold_events += gold_read(&loglake(&micro, source, date, &["03-gold"], &closed));
    loglake(&whole, source, date, &["03-gold"], &closed);
    let events = silver(&whole, source, date).0.height();
    // Each event read about once (a day built again at every run would read it ~steps/2 times);
    // a run that refines templates makes gold build the day again.
    assert!(
        gold_events < 3 * events,
        "03-gold read {gold_events} events for a day of {events}"
    );
    let (g_whole, g_micro) = (gold(&whole, source, date), gold(&micro, source, date));
    for (table, (w, m)) in ["window", "session", "session count", "event"]
        .iter()
        .zip(g_whole.iter().zip(&g_micro))
    {
        assert_eq!(w.height(), m.height(), "gold {table} rows");
        assert!(
            strip_file(w).equals_missing(&strip_file(m)),
            "gold {table} features differ:\n{w}\n{m}"
        );
    }
    [silver(&whole, source, date), silver(&micro, source, date)]
}

/// Copy the files of folder `from` into a new folder `to`; `to`.
fn copy_dir(from: &Path, to: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to.to_path_buf()
}

/// Silver's file column names the file bronze read; the two lakes read it at different paths,
/// so the column is compared by name.
fn strip_file(df: &DataFrame) -> DataFrame {
    let mut df = df.clone();
    if let Ok(file) = df.column("file") {
        let names: StringChunked = file
            .str()
            .unwrap()
            .iter()
            .map(|f| f.map(|f| f.rsplit('/').next().unwrap_or(f).to_string()))
            .collect();
        df.with_column(names.with_name("file".into()).into_column())
            .unwrap();
    }
    df
}

fn assert_same(
    whole: &(DataFrame, DataFrame, DataFrame),
    micro: &(DataFrame, DataFrame, DataFrame),
) {
    let strip = strip_file;
    assert_eq!(whole.0.height(), micro.0.height(), "events");
    assert!(
        strip(&whole.0).equals_missing(&strip(&micro.0)),
        "events differ"
    );
    assert!(
        whole.1.equals_missing(&micro.1),
        "templates differ:\n{}\n{}",
        whole.1,
        micro.1
    );
    assert!(
        strip(&whole.2).equals_missing(&strip(&micro.2)),
        "quarantine differs"
    );
}

#[test]
fn a_generated_day_in_micro_batches_ends_as_the_whole_day() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-03-02", 1, 30_000, 11);
    let text = std::fs::read_to_string(raw.join("logs").join("shop-2026-03-02.log")).unwrap();
    let lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
    let env = common::generator_source("shop");
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .chain([OPEN])
        .collect();
    // 30 runs: more parts than compaction allows.
    let [whole, micro] = whole_and_micro(tmp.path(), "shop", "2026-03-02", &lines, 30, &env);
    assert!(whole.0.height() > 25_000);
    assert_same(&whole, &micro);
    // What makes this day a test of successors: runs refined templates earlier runs wrote.
    let micro_lake = Lake::new(tmp.path().join("micro"));
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    assert!(!successors_of(&micro_lake, "shop", day).unwrap().is_empty());
}

#[test]
fn stack_traces_cut_by_a_run_join_their_event() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = vec!["\tat com.example.Orphan.run(Orphan.java:1)\n".to_string()];
    for n in 1..4_000 {
        let mut line = String::new();
        if n % 250 < 3 {
            writeln!(line, "\tat com.example.Worker.run(Worker.java:{n})").unwrap();
        } else if n == 3_000 {
            line.push_str("garbage that no format reads\n");
        } else if n % 7 == 0 {
            writeln!(
                line,
                "2026-03-02 10:{:02}:{:02} ERROR api: request {n} failed after {} ms",
                (n / 60) % 60,
                n % 60,
                n % 997
            )
            .unwrap();
        } else {
            writeln!(
                line,
                "2026-03-02 10:{:02}:{:02} INFO db: stored block blk_{n} size {}",
                (n / 60) % 60,
                n % 60,
                n * 3
            )
            .unwrap();
        }
        lines.push(line);
    }
    let format = (
        "LOGLAKE__PARSE__FORMAT",
        "<Date> <Time> <Level> <Component>: <Content>",
    );
    // 16 steps of 250 lines: every run ends just before a stack trace's lines.
    let [whole, micro] =
        whole_and_micro(tmp.path(), "app", "2026-03-02", &lines, 16, &[OPEN, format]);
    let messages = micro.0.column("message").unwrap().str().unwrap();
    assert!(
        messages
            .iter()
            .flatten()
            .any(|m| m.contains("\n\tat com.example.Worker.run(Worker.java:500)")),
        "a stack trace cut by a run joined its event"
    );
    assert_same(&whole, &micro);
}

/// Sessions that close while the day is open (a date the wall clock has not closed, realistic
/// lateness and idle time), one of them taken up again by events long after it closed: gold
/// keeps the day's open sessions apart and opens a closed part only for such a session, and
/// still ends with the sessions of the day built at once.
#[test]
fn sessions_closed_during_the_day_and_taken_up_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    // Three hours, a line every 3 s; a request lasts a minute. `req=comeback` is seen at the
    // start and again two hours later, long after its session closed.
    for n in 0..3_600u32 {
        let (h, m, s) = (n * 3 / 3600, (n * 3 / 60) % 60, (n * 3) % 60);
        let key = match n {
            5 | 2_400 | 2_401 => "comeback".to_string(),
            _ => format!("r{}", n / 20),
        };
        let level = if n % 97 == 0 { "ERROR" } else { "INFO" };
        lines.push(format!(
            "2026-03-02 {h:02}:{m:02}:{s:02} {level} api: handled req={key} step {}\n",
            n % 20
        ));
    }
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1)).to_string();
    let env = [
        (
            "LOGLAKE__PARSE__FORMAT",
            "<Date> <Time> <Level> <Component>: <Content>",
        ),
        ("LOGLAKE__PARSE__SESSION_KEY", r"req=(\S+)"),
    ];
    let [whole, micro] = whole_and_micro(tmp.path(), "app", &tomorrow, &lines, 12, &env);
    assert_same(&whole, &micro);
    let [_, sessions, ..] = gold(&tmp.path().join("micro"), "app", &tomorrow);
    let closed = sessions.column("closed").unwrap().bool().unwrap();
    assert!(
        closed.sum().unwrap_or(0) > 100 && closed.any(),
        "sessions closed while the day was open"
    );
    let comeback = sessions
        .clone()
        .lazy()
        .filter(col("session_key").eq(lit("comeback")))
        .collect()
        .unwrap();
    assert_eq!(
        comeback.column("n_events").unwrap().i64().unwrap().get(0),
        Some(3),
        "the session taken up again has all its events"
    );
}
